import Foundation
import Model
import Registry

/// What the registry records about a base model besides its files' hashes.
public struct BaseModelInfo: Sendable, Equatable {
    public var architecture: String
    public var quantization: String
    /// The shape adapters are checked against; nil when unknown (then imports skip the shape
    /// check and say so).
    public var config: LlamaConfig?

    public init(architecture: String, quantization: String, config: LlamaConfig?) {
        self.architecture = architecture
        self.quantization = quantization
        self.config = config
    }
}

/// Reads a base model's architecture, quantization and shape. The CLI wires the Model target's
/// loader here (GGUF metadata, HF config.json); tests inject small configs.
public protocol BaseModelInspector: Sendable {
    func inspect(_ source: URL) throws -> BaseModelInfo
}

/// An inspector from a closure.
public struct ClosureInspector: BaseModelInspector {
    let body: @Sendable (URL) throws -> BaseModelInfo
    public init(_ body: @escaping @Sendable (URL) throws -> BaseModelInfo) { self.body = body }
    public func inspect(_ source: URL) throws -> BaseModelInfo { try body(source) }
}

/// Reads a base model with the Model target's loaders (metadata only, no tensor data):
/// `ModelLoader.loadConfig` for the shape of an HF directory or a GGUF file; quantization
/// from config.json's `quantization_config.quant_method` (else its dtype), or for GGUF the
/// most common type of the 2-D weight tensors (e.g. "Q4_1").
public struct DefaultBaseModelInspector: BaseModelInspector {
    public init() {}

    public func inspect(_ source: URL) throws -> BaseModelInfo {
        let config = try ModelLoader.loadConfig(source)
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir)
        if isDir.boolValue {
            let json = try? JSONValue.parse(try Data(contentsOf: source.appendingPathComponent("config.json")))
            let quant = json?["quantization_config"]?["quant_method"]?.stringValue
                ?? json?["torch_dtype"]?.stringValue ?? json?["dtype"]?.stringValue ?? "none"
            return BaseModelInfo(architecture: config.architecture, quantization: quant, config: config)
        }
        let gguf = try GGUFFile(source)
        var counts: [String: Int] = [:]
        for t in gguf.tensors where t.shape.count == 2 { counts["\(t.type)".uppercased(), default: 0] += 1 }
        let quant = counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? "unknown"
        return BaseModelInfo(architecture: config.architecture, quantization: quant, config: config)
    }
}
