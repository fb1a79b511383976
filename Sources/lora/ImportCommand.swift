import ArgumentParser
import Foundation
import Registry
import Service

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Register a PEFT adapter directory or a GGUF LoRA file as a task's next version.")
    @Argument(help: "Task name ([a-z0-9][a-z0-9_-]*); created if new.") var task: String
    @Argument(help: "Directory with adapter_config.json and adapter_model.safetensors, or a llama.cpp GGUF LoRA file (.gguf).") var directory: String
    @Option(help: "Base model name (default: the task's current base, else the only registered one).") var base: String?
    @Option(name: .customLong("metric"), help: "A metric to record, NAME=NUMBER (repeatable).") var metrics: [String] = []
    @Option(name: .customLong("tag"), help: "A tag, KEY=VALUE (repeatable).") var tags: [String] = []
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func validate() throws {
        for (k, v) in try parseKeyValues(metrics, option: "--metric") where Double(v) == nil {
            throw ValidationError("--metric \(k)=\(v): the value must be a number")
        }
        _ = try parseKeyValues(tags, option: "--tag")
    }

    func run() throws {
        let m = try parseKeyValues(metrics, option: "--metric").mapValues { Double($0)! }
        let url = URL(fileURLWithPath: directory)
        let t = try parseKeyValues(tags, option: "--tag")
        var isDir: ObjCBool = false
        let v: VersionRecord
        let client = try RegistryClient(registry, server)
        let isGGUF = url.pathExtension.lowercased() == "gguf" && FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && !isDir.boolValue
        try client.refuseOverServer(isGGUF, "a GGUF adapter file", "the server imports PEFT directories (export it with --format peft, or import it on the server's machine)")
        try client.refuseOverServer(!metrics.isEmpty, "--metric", "the API's import takes the adapter alone")
        try client.refuseOverServer(!tags.isEmpty, "--tag", "the API's import takes the adapter alone")
        if case .server = client {
            v = try client.importAdapter(task: task, directory: url, base: base)
        } else if isGGUF {
            v = try registry.open().importGGUFAdapter(task: task, file: url, base: base, metrics: m, tags: t)
        } else {
            v = try registry.open().importAdapter(task: task, directory: url, base: base, metrics: m, tags: t)
        }
        try registry.emit(v) { "registered \(v.reference) (base \(v.base), sha256 \(v.sha256))" }
    }
}

struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List tasks and their aliases.")
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let all = try RegistryClient(registry, server).tasks()
        try registry.emit(ListEnvelope(all)) {
            table(["TASK", "VERSIONS", "ALIASES"], all.map { t in
                [t.name, String(t.versionCount), t.aliases.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
            })
        }
    }
}

struct VersionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "versions", abstract: "List a task's versions.")
    @Argument(help: "Task name.") var task: String
    @Flag(help: "Include archived versions.") var all = false
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let vs = try RegistryClient(registry, server).versions(task: task, includeArchived: all)
        try registry.emit(ListEnvelope(vs)) {
            table(["VERSION", "BASE", "ALIASES", "SHA256", "METRICS", "CREATED", "STATE"], vs.map { v in
                [String(v.version), v.base, v.aliases.joined(separator: ","), String(v.sha256.prefix(12)),
                 v.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                 v.createdAt, v.archived ? "archived" : "live"]
            })
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a version's adapter as PEFT files, a llama.cpp GGUF LoRA, or an Ollama Modelfile + GGUF.")
    @Argument(help: "TASK, TASK@N or TASK@ALIAS.") var reference: String
    @Argument(help: "Destination directory (created if missing).") var directory: String
    @Option(help: "peft (adapter_config.json + adapter_model.safetensors), gguf (adapter.gguf) or ollama (adapter.gguf + Modelfile).")
    var format: String = "peft"
    @Option(help: "Tensor type of a GGUF adapter: f32 or f16.") var dtype: String = "f32"
    @Flag(help: "ollama: copy the base GGUF into the directory as base.gguf (FROM ./base.gguf) instead of naming its absolute path.")
    var copyBase = false
    @Flag(help: "Overwrite adapter files already in the directory.") var force = false
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard AdapterExportFormat(rawValue: format) != nil else {
            throw ValidationError("--format \(format): expected peft, gguf or ollama")
        }
        guard dtype == "f32" || dtype == "f16" else { throw ValidationError("--dtype \(dtype): expected f32 or f16") }
        if dtype != "f32" && format == "peft" { throw ValidationError("--dtype applies to --format gguf and ollama only") }
        if copyBase && format != "ollama" { throw ValidationError("--copy-base applies to --format ollama only") }
    }

    func run() throws {
        let r = try RegistryClient(registry, server).export(reference, to: URL(fileURLWithPath: directory), format: AdapterExportFormat(rawValue: format)!,
                                                            dtype: AdapterExportDType(rawValue: dtype)!, overwrite: force, copyBase: copyBase)
        try registry.emit(r) { "exported \(r.version.reference) as \(format) to \(directory): \(r.files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))" }
    }
}

struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve", abstract: "Print the local (verified, cached) directory of a registry adapter.")
    @Argument(help: "TASK, TASK@N or TASK@ALIAS.") var reference: String
    @OptionGroup var registry: RegistryOptions

    struct Output: Encodable { let directory: String; let version: VersionRecord }

    func run() throws {
        let r = try registry.open().resolve(reference)
        try registry.emit(Output(directory: r.directory.path, version: r.version)) { r.directory.path }
    }
}
