import Foundation

/// An on/off switch read from the environment once at start, for A/B figures (`LORA_DECODE_GROUPS`,
/// `LORA_DECODE_SPREAD`): one parser for all of them, so a value it does not know is refused at start
/// (the CLI names the variable, the value and the accepted ones) instead of being read as the default.
public struct EnvironmentSwitch: Sendable {
    /// The environment variable.
    public let variable: String
    /// What an unset (or empty) variable means.
    public let defaultValue: Bool
    /// What the switch does, for messages.
    public let purpose: String

    /// The values that turn a switch on and off (the documented `off` and `0` forms among them).
    public static let onValues = ["on", "1"]
    public static let offValues = ["off", "0"]
    public static var acceptedValues: [String] { onValues + offValues }

    public init(variable: String, default defaultValue: Bool, purpose: String) {
        self.variable = variable; self.defaultValue = defaultValue; self.purpose = purpose
    }

    /// The switch's value in `environment`: nil when the variable holds a value it does not know.
    public func value(in environment: [String: String]) -> Bool? {
        guard let v = environment[variable], !v.isEmpty else { return defaultValue }
        if Self.onValues.contains(v) { return true }
        if Self.offValues.contains(v) { return false }
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
            "\(variable)=\($0) is not one of \(Self.acceptedValues.joined(separator: ", ")) (\(purpose))"
        }
    }

    /// `LORA_DECODE_GROUPS`: decode rows' q/k/v and gate/up base products as one pool region each (default on).
    public static let decodeGroups = EnvironmentSwitch(variable: "LORA_DECODE_GROUPS", default: true,
                                                       purpose: "q/k/v and gate/up decode products as one region each")
    /// `LORA_DECODE_SPREAD`: decode rows' attention and low-rank terms spread over the pool (default on).
    public static let decodeSpread = EnvironmentSwitch(variable: "LORA_DECODE_SPREAD", default: true,
                                                       purpose: "decode rows' attention and LoRA terms spread over the thread pool")

    /// Every switch, in the order the CLI checks them.
    public static let all = [decodeGroups, decodeSpread]
}
