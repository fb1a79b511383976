import Foundation
import HTTPTypes
import Hummingbird
import Registry
import Service
import Training

/// `/v1/tasks...`: the registry over HTTP (tasks, versions, aliases and their history, adapter
/// tars). Alias moves record the acting API key's name.
struct RegistryRoutes: Sendable {
    let api: APIServices
    let limits: ServerLimits

    func register(on router: Router<ServerContext>) {
        router.get("/v1/tasks") { _, _ in
            try encoded(ListEnvelope(try await service { [api] in try api.registry.tasks() }))
        }
        router.get("/v1/tasks/:task") { _, context in
            let task = try context.parameters.require("task")
            return try encoded(try await service { [api] in try api.registry.task(named: task) })
        }
        router.get("/v1/tasks/:task/versions") { request, context in
            let task = try context.parameters.require("task")
            let archived = request.uri.queryParameters.get("include_archived") == "true"
            return try encoded(ListEnvelope(try await service { [api] in try api.registry.versions(task: task, includeArchived: archived) }))
        }
        router.get("/v1/tasks/:task/versions/:version") { _, context in
            let (task, n) = try taskVersion(context)
            return try encoded(try await service { [api] in try api.registry.version("\(task)@\(n)") })
        }
        router.get("/v1/tasks/:task/versions/:version/adapter") { request, context in
            let (task, n) = try taskVersion(context)
            // `format=peft` (the default): the registry's stored tar. `format=gguf`: llama.cpp's
            // LoRA layout (`lora export --format gguf`), `dtype=f32|f16`.
            let query = request.uri.queryParameters
            let format = query.get("format") ?? "peft"
            guard format == "peft" || format == "gguf" else {
                throw APIError.invalid("format", .string(format), expected: "\"peft\" or \"gguf\"")
            }
            guard let dtype = AdapterExportDType(rawValue: query.get("dtype") ?? "f32") else {
                throw APIError.invalid("dtype", .string(query.get("dtype") ?? ""), expected: "\"f32\" or \"f16\"")
            }
            if format == "gguf" {
                let bytes = try await service { [api] in
                    let tmp = api.registry.configuration.cacheDirectory.appendingPathComponent("tmp")
                        .appendingPathComponent("gguf-export-\(getpid())-\(UUID().uuidString)")
                    defer { try? FileManager.default.removeItem(at: tmp) }
                    _ = try api.registry.exportAdapter("\(task)@\(n)", to: tmp, format: .gguf, dtype: dtype)
                    return try Data(contentsOf: tmp.appendingPathComponent(GGUFAdapter.fileName))
                }
                return bytesResponse(bytes, contentType: "application/octet-stream", filename: "\(task)-\(n).gguf",
                                     etag: ArtifactStore.sha256(bytes))
            }
            let (version, bytes) = try await service { [api] in
                let (v, file) = try api.registry.adapterArchive(task: task, version: n)
                return (v, try Data(contentsOf: file))
            }
            return bytesResponse(bytes, contentType: "application/x-tar", filename: "\(task)-\(n).tar", etag: version.sha256)
        }
        router.post("/v1/tasks/:task/versions") { request, context in
            let task = try context.parameters.require("task")
            let base = request.uri.queryParameters.get("base")
            let bytes = try await readTar(request)
            let actor = RequestIdentity.actor
            let version = try await service { [api] in
                let tmp = api.registry.configuration.cacheDirectory.appendingPathComponent("tmp")
                try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
                let file = tmp.appendingPathComponent("upload-\(getpid())-\(UUID().uuidString).tar")
                defer { try? FileManager.default.removeItem(at: file) }
                try Data(bytes).write(to: file)
                return try api.registry.importArchive(task: task, archive: file, base: base, actor: actor)
            }
            return try encoded(version, status: .created)
        }
        router.post("/v1/tasks/:task/versions/:version/archive") { _, context in
            let (task, n) = try taskVersion(context)
            let actor = RequestIdentity.actor, key = RequestIdentity.key?.name
            return try encoded(try await service { [api] in try api.registry.archive(task: task, version: n, actor: actor, apiKey: key) })
        }
        router.post("/v1/tasks/:task/promote") { request, context in
            let task = try context.parameters.require("task")
            var request = request
            let (version, alias, reason) = try AliasRequest.promote(try await readJSON(&request))
            let actor = RequestIdentity.actor, key = RequestIdentity.key?.name
            let move = try await service(param: "alias") { [api] in
                try api.registry.promote(task: task, version: version, alias: alias, actor: actor, reason: reason, apiKey: key)
            }
            let t = try await service { [api] in try api.registry.task(named: task) }
            return try encoded(AliasAnswer(task: t, move: move))
        }
        router.post("/v1/tasks/:task/rollback") { request, context in
            let task = try context.parameters.require("task")
            var request = request
            let (alias, reason) = try AliasRequest.rollback(try await readJSON(&request, allowEmpty: true))
            let actor = RequestIdentity.actor, key = RequestIdentity.key?.name
            let move = try await service(param: "alias") { [api] in
                try api.registry.rollback(task: task, alias: alias, actor: actor, reason: reason, apiKey: key)
            }
            let t = try await service { [api] in try api.registry.task(named: task) }
            return try encoded(AliasAnswer(task: t, move: move))
        }
        router.get("/v1/tasks/:task/history") { request, context in
            let task = try context.parameters.require("task")
            let alias = request.uri.queryParameters.get("alias")
            let (moves, keys) = try await service { [api] in
                (try api.registry.history(task: task, alias: alias), try api.registry.historyKeys(task: task))
            }
            return try encoded(ListEnvelope(moves.map { HistoryEntry(move: $0, apiKey: keys[$0.id]) }))
        }
    }

    private func taskVersion(_ context: ServerContext) throws -> (String, Int) {
        let task = try context.parameters.require("task")
        let text = try context.parameters.require("version")
        // Version numbers are PostgreSQL integers: anything past Int32.max cannot name one.
        guard let n = Int(text), n >= 1, n <= Int(Int32.max) else {
            throw APIError(status: .notFound, message: "No version '\(text)' of task '\(task)': versions are numbered from 1",
                           type: "invalid_request_error", param: "version", code: "not_found")
        }
        return (task, n)
    }

    private func readJSON(_ request: inout Request, allowEmpty: Bool = false) async throws -> JSON {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limits.maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limits.maxBodyBytes, size: nil)
        }
        if allowEmpty && buffer.readableBytes == 0 { return .object([]) }
        return try JSON.parse(buffer.readableBytesView)
    }

    private func readTar(_ request: Request) async throws -> [UInt8] {
        let limit = api.maxUploadBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.bodyTooLarge(limit: limit, size: length)
        }
        do {
            var request = request
            return Array(try await request.collectBody(upTo: limit).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limit, size: nil)
        }
    }
}

/// A promote or rollback's answer: the move and the task's aliases afterwards.
struct AliasAnswer: Encodable {
    let task: TaskRecord
    let move: AliasMove?
}

/// One alias move with the API key that made it (null for the CLI and the job daemon).
struct HistoryEntry: Encodable {
    let move: AliasMove
    let apiKey: String?

    enum CodingKeys: String, CodingKey { case apiKey = "api_key" }

    func encode(to encoder: Encoder) throws {
        try move.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiKey, forKey: .apiKey)
    }
}
