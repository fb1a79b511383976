import Foundation
import Logging
import Model
import Registry

/// An adapter directory checked and packed, ready to become a version.
public struct PreparedAdapter: Sendable {
    /// The packed archive (a temporary file under the cache; removed by `discard()`).
    public let archive: URL
    public let sha256: String
    public let size: Int
    public let base: String
    public let loraConfig: JSONValue
    public let source: String
    /// False when the base model's shape is unknown and only names and ranks were checked.
    public let shapesChecked: Bool

    public func discard() { try? FileManager.default.removeItem(at: archive) }
}

/// A registry version available as a local PEFT adapter directory, verified against its sha256.
public struct ResolvedAdapter: Sendable {
    public let directory: URL
    public let version: VersionRecord
    /// True when bytes came from the database now (cache missing or corrupt).
    public let fetched: Bool
}

extension RegistryService {
    /// Registers a PEFT adapter directory as the task's next version.
    ///
    /// `base` defaults to the base of the task's newest version, else the only registered base.
    @discardableResult
    public func importAdapter(task: String, directory: URL, base: String? = nil, metrics: [String: Double] = [:],
                              tags: [String: String] = [:], lineage: Lineage = Lineage(),
                              actor: String = RegistryService.defaultActor()) throws -> VersionRecord {
        try Names.validateTask(task)
        let prepared = try prepareAdapter(directory: directory, task: task, base: base)
        defer { prepared.discard() }
        return try pool.withConnection { c in
            try register(prepared, task: task, metrics: metrics, tags: tags, lineage: lineage, actor: actor, on: c)
        }
    }

    /// Validates an adapter directory against its base model and packs it (no database writes).
    public func prepareAdapter(directory: URL, task: String? = nil, base: String? = nil) throws -> PreparedAdapter {
        let directory = directory.standardizedFileURL
        let names = try AdapterArchive.files(in: directory)
        let config = try AdapterValidation.readConfig(directory.appendingPathComponent("adapter_config.json"))
        let tensorsURL = directory.appendingPathComponent("adapter_model.safetensors")
        let header = try SafetensorsFile(tensorsURL)
        let baseRecord = try baseModel(named: try chooseBase(base, task: task))
        var llama: LlamaConfig?
        if let c = baseRecord.config {
            llama = try JSONDecoder().decode(LlamaConfig.self, from: try JSONEncoder().encode(c))
        } else {
            logger.warning("base model '\(baseRecord.name)' has no recorded shape: checking tensor names and ranks only",
                           metadata: ["adapter": "\(directory.path)"])
        }
        try AdapterValidation.checkTensors(header, config: config, base: llama, path: tensorsURL.path)
        let tmpDir = configuration.cacheDirectory.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmpDir, withIntermediateDirectories: true)
        Self.removeStaleArchives(in: tmpDir)
        let archive = tmpDir.appendingPathComponent("import-\(getpid())-\(UUID().uuidString).tar")
        do {
            let (sha, size) = try AdapterArchive.write(directory: directory, names: names, to: archive)
            return PreparedAdapter(archive: archive, sha256: sha, size: size, base: baseRecord.name,
                                   loraConfig: config.json, source: directory.path, shapesChecked: llama != nil)
        } catch {
            try? FileManager.default.removeItem(at: archive)
            throw error
        }
    }

    /// Registers a prepared adapter on `conn` (its own transaction, or a savepoint inside the
    /// caller's: the job daemon finishes its job and registers the version atomically).
    public func register(_ prepared: PreparedAdapter, task: String, metrics: [String: Double] = [:],
                         tags: [String: String] = [:], lineage: Lineage = Lineage(),
                         actor: String = RegistryService.defaultActor(), on conn: Connection) throws -> VersionRecord {
        let v = try store.registerVersion(task: task, base: prepared.base, archive: prepared.archive, sha256: prepared.sha256,
                                          size: prepared.size, loraConfig: prepared.loraConfig, metrics: metrics, tags: tags,
                                          lineage: lineage, source: prepared.source, actor: actor, on: conn)
        logger.info("registered \(v.reference) (\(v.sha256.prefix(12)), \(v.size) bytes)", metadata: ["task": "\(task)"])
        return v
    }

    /// Removes `import-PID-*.tar` archives whose process is gone (a SIGKILL between packing and
    /// `discard()` leaves one behind); archives of live processes are theirs.
    static func removeStaleArchives(in tmpDir: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tmpDir.path)) ?? []
        for name in names where name.hasPrefix("import-") && name.hasSuffix(".tar") {
            let fields = name.dropFirst("import-".count).split(separator: "-", maxSplits: 1)
            guard let pid = fields.first.flatMap({ pid_t($0) }), pid > 0, pid != getpid() else { continue }
            // kill(pid, 0) fails with ESRCH when no such process exists.
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            try? FileManager.default.removeItem(at: tmpDir.appendingPathComponent(name))
        }
    }

    func chooseBase(_ base: String?, task: String?) throws -> String {
        if let base { return base }
        if let task, let t = try pool.withConnection({ try store.task(named: task, on: $0) }), t.versionCount > 0,
           let newest = try versions(task: task, includeArchived: true).last {
            return newest.base
        }
        let all = try baseModels()
        if all.count == 1 { return all[0].name }
        if all.isEmpty { throw ModelError.invalidArgument("no base model is registered: run `lora models add NAME SRC` first") }
        throw ModelError.invalidArgument("several base models are registered (\(all.map(\.name).joined(separator: ", "))): choose one with --base")
    }

    /// A local directory holding the adapter a reference names, verified: the stored archive
    /// hashes to the version's sha256 (a corrupt cache copy is fetched again from the database)
    /// and so do the extracted files (re-extracted when they don't).
    public func resolve(_ reference: String) throws -> ResolvedAdapter {
        let v = try version(reference)
        let (dir, fetched) = try adapterDirectory(sha256: v.sha256)
        return ResolvedAdapter(directory: dir, version: v, fetched: fetched)
    }

    /// The local, verified directory of the adapter artifact `sha256` (content-addressed, so an
    /// alias moving meanwhile cannot change what it holds); `fetched` when its bytes came from the
    /// database now.
    public func adapterDirectory(sha256: String) throws -> (directory: URL, fetched: Bool) {
        return try pool.withConnection { c in
            let blob = try store.artifacts.fetch(sha256, on: c)
            let dir = configuration.cacheDirectory.appendingPathComponent("adapters").appendingPathComponent(sha256)
            if FileManager.default.fileExists(atPath: dir.path), !blob.fetched,
               let names = try? AdapterArchive.files(in: dir),
               let d = try? AdapterArchive.digest(directory: dir, names: names), d.sha256 == sha256 {
                return (dir, false)
            }
            let tmp = dir.deletingLastPathComponent().appendingPathComponent(".\(sha256).\(getpid()).\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: tmp) }
            try AdapterArchive.extract(blob.url, to: tmp)
            let names = try AdapterArchive.files(in: tmp)
            let check = try AdapterArchive.digest(directory: tmp, names: names)
            guard check.sha256 == sha256 else {
                throw RegistryError.artifactCorrupt(sha256: sha256, source: "cache",
                                                    detail: "extracted files repack to \(check.sha256)")
            }
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.moveItem(at: tmp, to: dir)
            return (dir, blob.fetched)
        }
    }

    /// Writes the adapter a reference names into `destination` (created if missing). Refuses
    /// to overwrite adapter files already there unless `overwrite`.
    @discardableResult
    public func export(_ reference: String, to destination: URL, overwrite: Bool = false) throws -> VersionRecord {
        let r = try resolve(reference)
        let fm = FileManager.default
        try fm.createDirectory(at: destination, withIntermediateDirectories: true)
        let names = try AdapterArchive.files(in: r.directory)
        for n in names where fm.fileExists(atPath: destination.appendingPathComponent(n).path) && !overwrite {
            throw RegistryError.alreadyExists(kind: "file", name: destination.appendingPathComponent(n).path)
        }
        for n in names {
            let tmp = destination.appendingPathComponent(".\(n).\(UUID().uuidString).tmp")
            try fm.copyItem(at: r.directory.appendingPathComponent(n), to: tmp)
            guard rename(tmp.path, destination.appendingPathComponent(n).path) == 0 else {
                try? fm.removeItem(at: tmp)
                throw RegistryError.io(path: destination.appendingPathComponent(n).path, reason: "rename failed: errno \(errno)")
            }
        }
        return r.version
    }

    /// For `--adapter ARG` of generate/score: a directory when such a path exists, else a
    /// registry reference (`TASK`, `TASK@N`, `TASK@ALIAS`). Opens the registry only when needed.
    /// `fallbackReference` is the reference to use when `argument` (e.g. an expanded path) is
    /// not a directory; it defaults to `argument` itself.
    public static func adapterDirectory(for argument: String, configuration: RegistryConfiguration,
                                        inspector: BaseModelInspector = DefaultBaseModelInspector(),
                                        fallbackReference: String? = nil) throws -> URL {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: argument, isDirectory: &isDir),
           isDir.boolValue || argument.lowercased().hasSuffix(".gguf") {
            // A directory (PEFT) or a GGUF LoRA file (llama.cpp's layout), read by TrainingService.loadAdapter.
            return URL(fileURLWithPath: argument)
        }
        let reference = fallbackReference ?? argument
        guard (try? AdapterReference.parse(reference)) != nil else {
            throw ModelError.invalidArgument("--adapter: '\(reference)' is neither an adapter directory nor a registry reference (TASK, TASK@N, TASK@ALIAS)")
        }
        return try open(configuration, inspector: inspector, maxConnections: 1).resolve(reference).directory
    }
}
