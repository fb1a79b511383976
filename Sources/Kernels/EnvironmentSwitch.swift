import Foundation

/// An on/off switch read from the environment once at start, for A/B figures (`LORA_DECODE_GROUPS`,
/// `LORA_DECODE_SPREAD`, `LORA_SERVE_HANDOFF`): one parser for all of them, so a value it does not know is refused at start
/// (the CLI names the variable, the value and the accepted ones) instead of being read as the default.
public struct EnvironmentSwitch: Sendable {
    /// The environment variable.
    public let variable: String
    /// What an unset (or empty) variable means.
    public let defaultValue: Bool
    /// What the switch does, for messages.
    public let purpose: String

    /// The values that turn this switch on and off (`on`/`1` and `off`/`0` unless the switch names its two ways).
    public let onValues: [String]
    public let offValues: [String]
    public var acceptedValues: [String] { onValues + offValues }

    public init(variable: String, default defaultValue: Bool, on onValues: [String] = ["on", "1"],
                off offValues: [String] = ["off", "0"], purpose: String) {
        self.variable = variable; self.defaultValue = defaultValue; self.purpose = purpose
        self.onValues = onValues; self.offValues = offValues
    }

    /// The switch's value in `environment`: nil when the variable holds a value it does not know.
    public func value(in environment: [String: String]) -> Bool? {
        guard let v = environment[variable], !v.isEmpty else { return defaultValue }
        if onValues.contains(v) { return true }
        if offValues.contains(v) { return false }
        return nil
    }

    /// The switch's value in this process's environment (the default for a value it does not know, which
    /// `invalidValue` reports and the CLI refuses).
    public var value: Bool { value(in: ProcessInfo.processInfo.environment) ?? defaultValue }

    /// The variable's value when the switch does not know it, else nil.
    public func invalidValue(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        value(in: environment) == nil ? environment[variable] : nil
    }

    /// "VAR=value is not one of on, 1, off, 0 (purpose)", or nil when the value is known.
    public func error(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        invalidValue(in: environment).map {
            "\(variable)=\($0) is not one of \(acceptedValues.joined(separator: ", ")) (\(purpose))"
        }
    }

    /// `LORA_DECODE_GROUPS`: decode rows' q/k/v and gate/up base products as one pool region each (default on).
    public static let decodeGroups = EnvironmentSwitch(variable: "LORA_DECODE_GROUPS", default: true,
                                                       purpose: "q/k/v and gate/up decode products as one region each")
    /// `LORA_DECODE_SPREAD`: decode rows' attention and low-rank terms spread over the pool (default on).
    public static let decodeSpread = EnvironmentSwitch(variable: "LORA_DECODE_SPREAD", default: true,
                                                       purpose: "decode rows' attention and LoRA terms spread over the thread pool")

    /// `LORA_SERVE_HANDOFF`: `lora serve` hands a step's text to the streams once every row chose its token,
    /// and a one-sequence call reads its stream directly (`step`, the default), or each row's text as soon as it
    /// is chosen, through the merged stream (`token`, the hand-off before, for A/B figures).
    public static let serveHandOff = EnvironmentSwitch(variable: "LORA_SERVE_HANDOFF", default: true, on: ["step"], off: ["token"],
                                                       purpose: "serving's text hand-off: once per step or per token")

    /// Every switch, in the order the CLI checks them.
    public static let all = [decodeGroups, decodeSpread, serveHandOff]
}
