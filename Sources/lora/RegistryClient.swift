import ArgumentParser
import Fetch
import Foundation
import Model
import Registry
import Service
import Training

/// What the registry and job commands do, over one of two transports: PostgreSQL through the
/// services (`--database-url` / `--data-dir`), or a `lora serve`'s HTTP API (`--server`). Both
/// return the registry's records, so each command prints the same thing either way.
enum RegistryClient {
    case database(RegistryOptions)
    case server(RemoteAPI)

    init(_ registry: RegistryOptions, _ server: ServerOptions) throws {
        if let remote = try server.remote() {
            if registry.databaseURL != nil || registry.dataDir != nil {
                throw ValidationError("--server and --database-url/--data-dir name two registries: give one")
            }
            self = .server(remote)
        } else {
            self = .database(registry)
        }
    }

    /// A flag this transport cannot carry (the server applies its own settings): refused, never ignored.
    func refuseOverServer(_ given: Bool, _ flag: String, _ why: String) throws {
        if case .server = self, given { throw ValidationError("\(flag) is not available with --server: \(why)") }
    }

    // MARK: - Registry

    func tasks() throws -> [TaskRecord] {
        switch self {
        case let .database(r): return try r.open().tasks()
        case let .server(api): return try api.get(RemoteAPI.Page<TaskRecord>.self, "/v1/tasks").data
        }
    }

    func versions(task: String, includeArchived: Bool) throws -> [VersionRecord] {
        switch self {
        case let .database(r): return try r.open().versions(task: task, includeArchived: includeArchived)
        case let .server(api):
            return try api.get(RemoteAPI.Page<VersionRecord>.self,
                               "/v1/tasks/\(RemoteAPI.segment(task))/versions" + (includeArchived ? "?include_archived=true" : "")).data
        }
    }

    private struct AliasAnswer: Decodable { let move: AliasMove? }

    func promote(task: String, version: Int, alias: String, reason: String) throws -> AliasMove? {
        switch self {
        case let .database(r): return try r.open().promote(task: task, version: version, alias: alias, reason: reason)
        case let .server(api):
            return try api.post(AliasAnswer.self, "/v1/tasks/\(RemoteAPI.segment(task))/promote",
                                json: ["version": version, "alias": alias, "reason": reason]).move
        }
    }

    func rollback(task: String, alias: String, reason: String) throws -> AliasMove {
        switch self {
        case let .database(r): return try r.open().rollback(task: task, alias: alias, reason: reason)
        case let .server(api):
            let path = "/v1/tasks/\(RemoteAPI.segment(task))/rollback"
            guard let move = try api.post(AliasAnswer.self, path, json: ["alias": alias, "reason": reason]).move else {
                throw ValidationError("POST \(path): the server answered without the alias move")
            }
            return move
        }
    }

    func history(task: String, alias: String?) throws -> [AliasMove] {
        switch self {
        case let .database(r): return try r.open().history(task: task, alias: alias)
        case let .server(api):
            let q = alias.map { "?alias=" + RemoteAPI.segment($0) } ?? ""
            return try api.get(RemoteAPI.Page<AliasMove>.self, "/v1/tasks/\(RemoteAPI.segment(task))/history" + q).data
        }
    }

    /// The version `TASK`, `TASK@N` or `TASK@ALIAS` names, as the registry resolves it: a bare
    /// task is its production version, else its latest.
    func version(_ reference: String) throws -> VersionRecord {
        guard case let .server(api) = self else { return try database.open().resolve(reference).version }
        let (task, selector) = reference.firstIndex(of: "@").map { (String(reference[..<$0]), String(reference[reference.index(after: $0)...])) }
            ?? (reference, nil)
        var number = selector.flatMap { Int($0) }
        if number == nil {
            let t = try api.get(TaskRecord.self, "/v1/tasks/\(RemoteAPI.segment(task))")
            let alias = selector ?? (t.aliases[Names.production] != nil ? Names.production : Names.latest)
            guard let n = t.aliases[alias] else { throw RegistryError.notFound(kind: "alias", name: "\(task)@\(alias)") }
            number = n
        }
        return try api.get(VersionRecord.self, "/v1/tasks/\(RemoteAPI.segment(task))/versions/\(number!)")
    }

    struct Exported: Encodable { let version: VersionRecord; let files: [String] }

    func export(_ reference: String, to destination: URL, format: AdapterExportFormat, dtype: AdapterExportDType,
                overwrite: Bool, copyBase: Bool) throws -> Exported {
        guard case let .server(api) = self else {
            let r = try database.open().exportAdapter(reference, to: destination, format: format, dtype: dtype,
                                                      overwrite: overwrite, copyBase: copyBase)
            return Exported(version: r.version, files: r.files)
        }
        guard format != .ollama else {
            throw ValidationError("--format ollama is not available with --server: its Modelfile names the base model's file on the server's disk")
        }
        let v = try version(reference)
        let fm = FileManager.default
        let path = "/v1/tasks/\(RemoteAPI.segment(v.task))/versions/\(v.version)/adapter"
        if format == .gguf {
            let target = destination.appendingPathComponent(GGUFAdapter.fileName)
            if fm.fileExists(atPath: target.path) && !overwrite { throw AdapterExportError.exists(path: target.path) }
            let bytes = try api.call(.get, path + "?format=gguf&dtype=\(dtype.rawValue)")
            try fm.createDirectory(at: destination, withIntermediateDirectories: true)
            try SafetensorsWriter.writeAtomically(bytes, to: target)
            return Exported(version: v, files: [target.path])
        }
        // PEFT: the registry's stored tar, unpacked beside the destination and renamed into it.
        for n in AdapterArchive.requiredFiles where fm.fileExists(atPath: destination.appendingPathComponent(n).path) && !overwrite {
            throw RegistryError.alreadyExists(kind: "file", name: destination.appendingPathComponent(n).path)
        }
        try fm.createDirectory(at: destination, withIntermediateDirectories: true)
        let staging = destination.appendingPathComponent(".export-\(getpid())-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: staging) }
        try fm.createDirectory(at: staging, withIntermediateDirectories: false)
        let tar = staging.appendingPathComponent("adapter.tar")
        try api.call(.get, path).write(to: tar)
        let unpacked = staging.appendingPathComponent("files")
        try AdapterArchive.extract(tar, to: unpacked)
        for n in try AdapterArchive.files(in: unpacked) {
            let target = destination.appendingPathComponent(n)
            guard rename(unpacked.appendingPathComponent(n).path, target.path) == 0 else {
                throw RegistryError.io(path: target.path, reason: "rename failed: errno \(errno)")
            }
        }
        return Exported(version: v, files: AdapterArchive.requiredFiles.map { destination.appendingPathComponent($0).path })
    }

    /// A PEFT directory as the task's next version (over HTTP: the deterministic tar the registry stores, uploaded).
    func importAdapter(task: String, directory: URL, base: String?) throws -> VersionRecord {
        guard case let .server(api) = self else { return try database.open().importAdapter(task: task, directory: directory, base: base) }
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.appendingPathComponent("lora-import-\(getpid())-\(UUID().uuidString).tar")
        defer { try? fm.removeItem(at: tmp) }
        _ = try AdapterArchive.write(directory: directory, names: try AdapterArchive.files(in: directory), to: tmp)
        let q = base.map { "?base=" + RemoteAPI.segment($0) } ?? ""
        let path = "/v1/tasks/\(RemoteAPI.segment(task))/versions" + q
        return try api.decode(VersionRecord.self, try api.call(.post, path, body: try Data(contentsOf: tmp), contentType: "application/x-tar"), path)
    }

    // MARK: - Jobs

    func jobs(status: JobRecord.Status?, task: String?) throws -> [JobRecord] {
        switch self {
        case let .database(r): return try r.openJobs().jobs(status: status, task: task)
        case let .server(api):
            // The server filters (and refuses a bad task name as the database transport does).
            var query = status.map { ["status=\($0.rawValue)"] } ?? []
            if let task { query.append("task=" + RemoteAPI.segment(task)) }
            return try api.all(JobRecord.self, "/v1/fine_tuning/jobs", query: query, id: \.id)
        }
    }

    func job(_ id: Int) throws -> JobRecord {
        switch self {
        case let .database(r): return try r.openJobs().job(id)
        case let .server(api): return try api.get(JobRecord.self, "/v1/fine_tuning/jobs/\(id)")
        }
    }

    func cancel(_ id: Int) throws -> JobRecord {
        switch self {
        case let .database(r): return try r.openJobs().cancel(id)
        case let .server(api):
            let path = "/v1/fine_tuning/jobs/\(id)/cancel"
            return try api.decode(JobRecord.self, try api.call(.post, path), path)
        }
    }

    /// Every event of a job, oldest first.
    func events(_ id: Int) throws -> [JobEvent] {
        switch self {
        case let .database(r): return try r.openJobs().events(id)
        case let .server(api): return try api.all(JobEvent.self, "/v1/fine_tuning/jobs/\(id)/events", id: \.id).reversed()
        }
    }

    /// Every event of the job, then each new one as it is logged, until the job is over.
    func follow(_ id: Int, onEvent: (JobEvent) throws -> Void) throws {
        switch self {
        case let .database(r): try r.openJobs().follow(id, onEvent: onEvent)
        case let .server(api):
            try api.events("/v1/fine_tuning/jobs/\(id)/events?stream=true") { payload in
                try onEvent(try api.decode(JobEvent.self, payload, "/v1/fine_tuning/jobs/\(id)/events"))
            }
        }
    }

    func lossPlot(_ id: Int) throws -> LossPlot {
        switch self {
        case let .database(r): return try r.openJobs().lossPlot(id)
        case .server:
            // The same plot the server draws at .../loss.svg, from the same records.
            return LossPlot(job: try job(id), events: try events(id))
        }
    }

    private var database: RegistryOptions {
        if case let .database(r) = self { return r }
        preconditionFailure("database transport expected")
    }
}
