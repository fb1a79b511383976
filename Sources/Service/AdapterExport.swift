import Foundation
import Model
import Quantization
import Registry
import Training

/// Adapters leaving the registry (PEFT directory, llama.cpp GGUF, Ollama Modelfile) and GGUF
/// adapters coming in (stored as a PEFT tar like any version).
public enum AdapterExportFormat: String, CaseIterable, Sendable {
    case peft, gguf, ollama
}

/// Tensor type of an exported GGUF adapter.
public enum AdapterExportDType: String, CaseIterable, Sendable {
    case f32, f16
    var ggml: GGMLType { self == .f16 ? .f16 : .f32 }
}

public enum AdapterExportError: Error, CustomStringConvertible, Equatable {
    /// The base model has no recorded shape, so the adapter cannot be converted.
    case baseShapeUnknown(base: String)
    /// Ollama needs a GGUF base; `source` is not one.
    case baseNotGGUF(base: String, source: String)
    case exists(path: String)

    public var description: String {
        switch self {
        case let .baseShapeUnknown(base): return "base model '\(base)' has no recorded shape; re-register it with `lora models add`"
        case let .baseNotGGUF(base, source):
            return "base model '\(base)' is \(source), not a GGUF file: Ollama's FROM needs a GGUF base (export --format gguf for llama.cpp, or merge)"
        case let .exists(path): return "\(path) already exists (use --force to overwrite)"
        }
    }
}

public struct AdapterExportResult: Sendable, Encodable {
    public let version: VersionRecord
    public let files: [String]
}

extension RegistryService {
    /// The base's shape and its GGUF architecture name (its own `general.architecture` when the
    /// base is a GGUF file, else llama.cpp's converter's name for it).
    func baseShape(_ name: String) throws -> (record: BaseModelRecord, config: LlamaConfig, architecture: String, gguf: URL?) {
        let b = try baseModel(named: name)
        guard let json = b.config else { throw AdapterExportError.baseShapeUnknown(base: name) }
        let config = try JSONDecoder().decode(LlamaConfig.self, from: try JSONEncoder().encode(json))
        var gguf: URL?
        var arch = config.ggufArchitecture
        let source = URL(fileURLWithPath: b.source).standardizedFileURL
        if source.pathExtension.lowercased() == "gguf", FileManager.default.fileExists(atPath: source.path) {
            gguf = source
            if let a = try? GGUFFile(source).metadata["general.architecture"]?.string { arch = a }
        }
        return (b, config, arch, gguf)
    }

    /// Writes version `reference` into `destination` as `format`. gguf: `adapter.gguf`; ollama:
    /// `adapter.gguf` + `Modelfile` (FROM the base GGUF's absolute path, or `./base.gguf` copied in
    /// with `copyBase`). Existing files are refused unless `overwrite`; each file is written under a
    /// temporary name and renamed.
    public func exportAdapter(_ reference: String, to destination: URL, format: AdapterExportFormat,
                              dtype: AdapterExportDType = .f32, overwrite: Bool = false, copyBase: Bool = false) throws -> AdapterExportResult {
        if format == .peft {
            let v = try export(reference, to: destination, overwrite: overwrite)
            return AdapterExportResult(version: v, files: AdapterArchive.requiredFiles.map { destination.appendingPathComponent($0).path })
        }
        let r = try resolve(reference)
        let base = try baseShape(r.version.base)
        if format == .ollama, base.gguf == nil {
            throw AdapterExportError.baseNotGGUF(base: base.record.name, source: base.record.source)
        }
        let fm = FileManager.default
        let adapterURL = destination.appendingPathComponent(GGUFAdapter.fileName)
        let modelfileURL = destination.appendingPathComponent("Modelfile")
        let baseCopyURL = destination.appendingPathComponent("base.gguf")
        var outputs = [adapterURL]
        if format == .ollama { outputs.append(modelfileURL); if copyBase { outputs.append(baseCopyURL) } }
        for u in outputs where fm.fileExists(atPath: u.path) && !overwrite { throw AdapterExportError.exists(path: u.path) }
        let adapter = try PEFTAdapter.load(from: r.directory, base: base.config).adapter
        try fm.createDirectory(at: destination, withIntermediateDirectories: true)
        try GGUFAdapter.write(adapter, base: base.config, architecture: base.architecture, type: dtype.ggml,
                              name: r.version.reference, to: adapterURL)
        if format == .ollama, let gguf = base.gguf {
            var from = gguf.path
            if copyBase {
                let tmp = destination.appendingPathComponent(".base.gguf.tmp-\(getpid())")
                try? fm.removeItem(at: tmp)
                try fm.copyItem(at: gguf, to: tmp)
                guard rename(tmp.path, baseCopyURL.path) == 0 else {
                    try? fm.removeItem(at: tmp)
                    throw RegistryError.io(path: baseCopyURL.path, reason: "rename failed: errno \(errno)")
                }
                from = "./base.gguf"
            }
            let template = try? GGUFFile(gguf).metadata["tokenizer.chat_template"]?.string
            let text = OllamaModelfile.render(from: from, adapter: "./" + GGUFAdapter.fileName, chatTemplate: template ?? nil)
            try SafetensorsWriter.writeAtomically(Data(text.utf8), to: modelfileURL)
        }
        return AdapterExportResult(version: r.version, files: outputs.map(\.path))
    }

    /// Registers a GGUF LoRA adapter (llama.cpp's layout) as the task's next version: read against
    /// the base's shape (q/k permutation undone), written as a PEFT directory and imported like one.
    @discardableResult
    public func importGGUFAdapter(task: String, file: URL, base: String? = nil, metrics: [String: Double] = [:],
                                  tags: [String: String] = [:], actor: String = RegistryService.defaultActor()) throws -> VersionRecord {
        try Names.validateTask(task)
        let baseName = try chooseBase(base, task: task)
        let shape = try baseShape(baseName)
        let adapter = try GGUFAdapter.read(file, base: shape.config, architecture: shape.architecture)
        let tmpDir = configuration.cacheDirectory.appendingPathComponent("tmp")
            .appendingPathComponent("gguf-import-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmpDir) }
        try PEFTAdapter.save(adapter, base: .init(name: baseName, sha256: shape.record.sha256), to: tmpDir)
        var t = tags
        t["source_format"] = t["source_format"] ?? "gguf"
        return try importAdapter(task: task, directory: tmpDir, base: baseName, metrics: metrics, tags: t, actor: actor)
    }
}

/// Ollama's Modelfile (ollama docs/modelfile.md): `FROM`, `ADAPTER`, `TEMPLATE` (a Go template),
/// `PARAMETER stop`. The TEMPLATE is written only for chat templates this code recognises as
/// ChatML (`<|im_start|>ROLE\nCONTENT<|im_end|>\n`, SmolLM2's and Qwen2's family); others are
/// left out (Ollama then uses the base GGUF's own template handling). A default system prompt that
/// a Jinja template inserts when the chat has none (SmolLM2's) is not reproduced.
public enum OllamaModelfile {
    public static let chatMLTemplate = """
        {{- range .Messages }}<|im_start|>{{ .Role }}
        {{ .Content }}<|im_end|>
        {{ end }}<|im_start|>assistant

        """

    public static func isChatML(_ template: String?) -> Bool {
        guard let t = template else { return false }
        return t.contains("<|im_start|>") && t.contains("<|im_end|>")
    }

    public static func render(from: String, adapter: String, chatTemplate: String?) -> String {
        var out = "FROM \(quoted(from))\nADAPTER \(quoted(adapter))\n"
        if isChatML(chatTemplate) {
            out += "TEMPLATE \"\"\"\(chatMLTemplate)\"\"\"\n"
            out += "PARAMETER stop \"<|im_end|>\"\n"
        }
        return out
    }

    /// Paths with spaces or quotes are written in double quotes.
    static func quoted(_ s: String) -> String {
        s.contains(where: { $0 == " " || $0 == "\"" || $0 == "\t" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : s
    }
}
