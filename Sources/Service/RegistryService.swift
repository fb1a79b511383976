import Fetch
import Foundation
import Logging
import Model
import Registry

/// The registry's use cases, called by the CLI now and the HTTP server later.
/// Thread-safe: each call borrows a pooled connection.
public final class RegistryService: @unchecked Sendable {
    public let pool: ConnectionPool
    public let store: RegistryStore
    public let configuration: RegistryConfiguration
    public let inspector: BaseModelInspector
    public let logger: Logger

    /// Uses an already-migrated database.
    public init(pool: ConnectionPool, configuration: RegistryConfiguration, inspector: BaseModelInspector,
                logger: Logger = Logger(label: "lora.registry")) {
        self.pool = pool
        self.configuration = configuration
        self.inspector = inspector
        self.logger = logger
        self.store = RegistryStore(artifacts: ArtifactStore(cacheDirectory: configuration.cacheDirectory, logger: logger))
    }

    /// Connects (starting the embedded cluster when no URL is configured) and applies the
    /// embedded migrations.
    public static func open(_ configuration: RegistryConfiguration,
                            inspector: BaseModelInspector = DefaultBaseModelInspector(),
                            maxConnections: Int = 4,
                            logger: Logger = Logger(label: "lora.registry")) throws -> RegistryService {
        let conninfo = try configuration.databaseURL ?? configuration.cluster.ensureRunning()
        let pool = ConnectionPool(conninfo: conninfo, maxConnections: maxConnections)
        try pool.withConnection { try MigrationRunner(migrations: try Migration.embedded(), logger: logger).apply(on: $0) }
        return RegistryService(pool: pool, configuration: configuration, inspector: inspector, logger: logger)
    }

    /// `user@host`, recorded as the actor of changes.
    public static func defaultActor() -> String {
        let env = ProcessInfo.processInfo.environment
        let user = env["LORA_ACTOR"] ?? env["USER"] ?? env["LOGNAME"] ?? "uid\(getuid())"
        return env["LORA_ACTOR"] != nil ? user : "\(user)@\(ProcessInfo.processInfo.hostName)"
    }

    // MARK: - Base models

    /// Registers a base model file or directory under `name`, with the sha256 of its files and
    /// what the inspector reads (architecture, quantization, shape).
    /// Registers a base model given as a local path or a URL: a URL is fetched (verified, cached)
    /// to hash and inspect it, and recorded as the source, so any worker can fetch it again.
    public func addBaseModel(name: String, spec: String, fetcher: ModelFetcher = ModelFetcher(),
                             actor: String = RegistryService.defaultActor()) throws -> BaseModelRecord {
        if ModelFetcher.isRemote(spec) {
            let local = try fetcher.fetchModel(spec)
            return try addBaseModel(name: name, source: local, recordedSource: spec, actor: actor)
        }
        return try addBaseModel(name: name, source: URL(fileURLWithPath: (spec as NSString).expandingTildeInPath), actor: actor)
    }

    /// The local path of a registered base model: its file or directory, or, for a model registered
    /// by URL, the verified copy in the fetch cache (downloaded now if this machine lacks it).
    public static func localPath(of base: BaseModelRecord, fetcher: ModelFetcher = ModelFetcher()) throws -> URL {
        if ModelFetcher.isRemote(base.source) {
            let path = try fetcher.fetchModel(base.source)
            let (digest, _) = try hashModelFiles(path)
            guard digest == base.sha256 else {
                throw RegistryError.artifactCorrupt(sha256: base.sha256, source: base.source, detail: "base model '\(base.name)' fetched now has sha256 \(digest)")
            }
            return path
        }
        return URL(fileURLWithPath: base.source)
    }

    public func addBaseModel(name: String, source: URL, recordedSource: String? = nil,
                             actor: String = RegistryService.defaultActor()) throws -> BaseModelRecord {
        try Names.validateBaseModel(name)
        let source = source.standardizedFileURL
        let (digest, files) = try Self.hashModelFiles(source)
        let info = try inspector.inspect(source)
        let config: JSONValue? = try info.config.map { try JSONValue.parse(try JSONEncoder().encode($0)) }
        return try pool.withConnection { c in
            try store.insertBaseModel(name: name, source: recordedSource ?? source.path, sha256: digest, files: files,
                                      architecture: info.architecture, quantization: info.quantization,
                                      config: config, actor: actor, on: c)
        }
    }

    public func baseModels() throws -> [BaseModelRecord] {
        try pool.withConnection { try store.baseModels(on: $0) }
    }

    public func baseModel(named name: String) throws -> BaseModelRecord {
        guard let b = try pool.withConnection({ try store.baseModel(named: name, on: $0) }) else {
            throw RegistryError.notFound(kind: "base model", name: name)
        }
        return b
    }

    /// A file hashes to its own sha256; a directory to the sha256 of its sorted
    /// "relative/path\0<sha256>\n" lines (hidden files skipped).
    public static func hashModelFiles(_ source: URL) throws -> (sha256: String, files: [BaseModelRecord.File]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir) else {
            throw ModelError.fileNotFound(path: source.path)
        }
        if !isDir.boolValue {
            let (h, size) = try ArtifactStore.hashFile(source)
            return (h, [.init(path: source.lastPathComponent, size: size, sha256: h)])
        }
        guard let e = FileManager.default.enumerator(at: source, includingPropertiesForKeys: [.isRegularFileKey],
                                                      options: [.skipsHiddenFiles]) else {
            throw ModelError.fileNotFound(path: source.path)
        }
        var files: [BaseModelRecord.File] = []
        let prefix = source.path.hasSuffix("/") ? source.path : source.path + "/"
        for case let url as URL in e where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            let rel = url.standardizedFileURL.path.replacingOccurrences(of: prefix, with: "")
            let (h, size) = try ArtifactStore.hashFile(url)
            files.append(.init(path: rel, size: size, sha256: h))
        }
        guard !files.isEmpty else { throw ModelError.invalidArgument("\(source.path): directory holds no files") }
        files.sort { $0.path < $1.path }
        let manifest = files.map { "\($0.path)\u{0}\($0.sha256)\n" }.joined()
        return (ArtifactStore.sha256(Data(manifest.utf8)), files)
    }

    // MARK: - Tasks and versions

    public func tasks() throws -> [TaskRecord] { try pool.withConnection { try store.tasks(on: $0) } }

    public func task(named name: String) throws -> TaskRecord {
        guard let t = try pool.withConnection({ try store.task(named: name, on: $0) }) else {
            throw RegistryError.notFound(kind: "task", name: name)
        }
        return t
    }

    public func versions(task: String, includeArchived: Bool = false) throws -> [VersionRecord] {
        try pool.withConnection { try store.versions(task: task, includeArchived: includeArchived, on: $0) }
    }

    /// The version a reference (`TASK`, `TASK@N`, `TASK@ALIAS`) names.
    public func version(_ reference: String) throws -> VersionRecord {
        let ref = try AdapterReference.parse(reference)
        return try pool.withConnection { try store.resolve(ref, on: $0) }
    }

    // MARK: - Aliases

    /// Points `alias` (default `production`) at `TASK@version`. Returns nil when it already did.
    @discardableResult
    public func promote(task: String, version: Int, alias: String = Names.production,
                        actor: String = RegistryService.defaultActor(), reason: String = "") throws -> AliasMove? {
        try pool.withConnection { try store.promote(task: task, version: version, alias: alias, actor: actor, reason: reason, on: $0) }
    }

    /// Returns `alias` to the version before its most recent promotion still in effect.
    @discardableResult
    public func rollback(task: String, alias: String = Names.production,
                         actor: String = RegistryService.defaultActor(), reason: String = "") throws -> AliasMove {
        try pool.withConnection { try store.rollback(task: task, alias: alias, actor: actor, reason: reason, on: $0) }
    }

    public func history(task: String, alias: String? = nil) throws -> [AliasMove] {
        try pool.withConnection { try store.history(task: task, alias: alias, on: $0) }
    }

    // MARK: - Archive and tags

    /// Archives `TASK@N` (refused while an alias other than `latest` points at it).
    @discardableResult
    public func archive(_ reference: String, actor: String = RegistryService.defaultActor()) throws -> VersionRecord {
        let (task, n) = try pinned(reference)
        return try pool.withConnection { try store.archive(task: task, version: n, actor: actor, on: $0) }
    }

    @discardableResult
    public func setTag(_ reference: String, key: String, value: String) throws -> VersionRecord {
        let (task, n) = try pinned(reference)
        return try pool.withConnection { try store.setTag(task: task, version: n, key: key, value: value, on: $0) }
    }

    @discardableResult
    public func clearTag(_ reference: String, key: String) throws -> VersionRecord {
        let (task, n) = try pinned(reference)
        return try pool.withConnection { try store.clearTag(task: task, version: n, key: key, on: $0) }
    }

    /// A reference resolved to its task and version number (aliases resolved now).
    func pinned(_ reference: String) throws -> (String, Int) {
        let v = try version(reference)
        return (v.task, v.version)
    }
}
