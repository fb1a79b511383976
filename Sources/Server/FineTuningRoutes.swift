import Model
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Registry
import Service
import Training

/// `/v1/files` and `/v1/fine_tuning/jobs` in OpenAI's shapes. Handlers decode, call the service, encode.
struct FineTuningRoutes: Sendable {
    let api: APIServices
    let limits: ServerLimits

    func register(on router: Router<ServerContext>) {
        router.post("/v1/files") { request, context in try await upload(request, context) }
        router.get("/v1/files") { request, _ in
            let page = try Page(request, prefix: "file")
            let purpose = request.uri.queryParameters.get("purpose")
            let files = try await service { [api] in try api.files.files(before: page.after, limit: page.limit + 1, purpose: purpose) }
            return json(page.list(files.map(FineTuningShapes.file)))
        }
        router.get("/v1/files/:file_id") { _, context in
            let id = try pathID(context, "file_id", prefix: "file", kind: "file")
            return json(FineTuningShapes.file(try await service { [api] in try api.files.file(id) }))
        }
        router.get("/v1/files/:file_id/content") { _, context in
            let id = try pathID(context, "file_id", prefix: "file", kind: "file")
            let bytes = try await service { [api] in try api.files.bytes(id) }
            return bytesResponse(bytes, contentType: "application/octet-stream")
        }
        router.delete("/v1/files/:file_id") { _, context in
            let id = try pathID(context, "file_id", prefix: "file", kind: "file")
            try await service { [api] in try api.files.delete(id) }
            return json(.object([("id", .string("file-\(id)")), ("object", "file"), ("deleted", true)]))
        }

        router.post("/v1/fine_tuning/jobs") { request, context in try await create(request, context) }
        router.get("/v1/fine_tuning/jobs") { request, _ in
            let page = try Page(request, prefix: "ftjob")
            // Files are validated on upload, so no job is ever `validating_files`: the list is empty.
            if request.uri.queryParameters.get("status") == "validating_files" { return json(page.list([])) }
            let status = try request.uri.queryParameters.get("status").map { s -> JobRecord.Status in
                guard let parsed = JobRecord.Status(rawValue: s) else {
                    throw APIError.invalid("status", .string(s), expected: "one of " + JobRecord.Status.allCases.map(\.rawValue).joined(separator: ", "))
                }
                return parsed
            }
            let task = try request.uri.queryParameters.get("task").map { t -> String in
                guard (try? Names.validateTask(t)) != nil else { throw APIError.invalid("task", .string(t), expected: "a task name: " + Names.taskRule) }
                return t
            }
            let jobs = try await service { [api] in
                try api.jobs.jobs(before: page.after, limit: page.limit + 1, status: status, task: task)
            }
            if RecordView.requested(request) { return try RecordView.page(jobs, limit: page.limit) }
            let tokens = try await service { [api] in try api.jobs.trainedTokens(jobs.map(\.id)) }
            return json(page.list(jobs.map { FineTuningShapes.job($0, trainedTokens: tokens[$0.id]) }))
        }
        router.get("/v1/fine_tuning/jobs/:job_id") { request, context in
            let id = try pathID(context, "job_id", prefix: "ftjob", kind: "job")
            return try await jobResponse(try await service { [api] in try api.jobs.job(id) }, request)
        }
        router.post("/v1/fine_tuning/jobs/:job_id/cancel") { request, context in
            let id = try pathID(context, "job_id", prefix: "ftjob", kind: "job")
            let actor = RequestIdentity.actor
            return try await jobResponse(try await service { [api] in
                _ = try api.jobs.job(id)
                return try api.jobs.cancel(id, actor: actor)
            }, request)
        }
        router.get("/v1/fine_tuning/jobs/:job_id/events") { request, context in
            let id = try pathID(context, "job_id", prefix: "ftjob", kind: "job")
            if let stream = request.uri.queryParameters.get("stream"), stream == "true" {
                let after = try request.uri.queryParameters.get("after").map { text -> Int in
                    guard let n = FineTuningShapes.id(text, prefix: "ftevent") else { throw APIError.invalid("after", .string(text), expected: "an event id") }
                    return n
                } ?? 0
                _ = try await service { [api] in try api.jobs.job(id) }
                return JobEventStream(jobs: api.jobs, job: id, after: after, records: RecordView.requested(request)).response(context)
            }
            let page = try Page(request, prefix: "ftevent")
            let events = try await service { [api] in try api.jobs.events(id, before: page.after, limit: page.limit + 1) }
            if RecordView.requested(request) { return try RecordView.page(events, limit: page.limit) }
            return json(page.list(events.map(FineTuningShapes.event)))
        }
        router.get("/v1/fine_tuning/jobs/:job_id/loss.svg") { _, context in
            let id = try pathID(context, "job_id", prefix: "ftjob", kind: "job")
            let svg = try await service { [api] in try api.jobs.lossPlot(id).svg() }
            return bytesResponse(Array(svg.utf8), contentType: "image/svg+xml")
        }
        router.get("/v1/fine_tuning/jobs/:job_id/checkpoints") { request, context in
            let id = try pathID(context, "job_id", prefix: "ftjob", kind: "job")
            let page = try Page(request, prefix: "ftckpt")
            let (job, checkpoints) = try await service { [api] in (try api.jobs.job(id), try api.jobs.checkpoints(id)) }
            let below = checkpoints.filter { page.after == nil || $0.id < page.after! }
            return json(page.list(below.prefix(page.limit + 1).map { FineTuningShapes.checkpoint($0, job: job) }))
        }
    }

    // MARK: - Handlers

    private func upload(_ request: Request, _ context: ServerContext) async throws -> Response {
        let boundary = try MultipartForm.boundary(contentType: request.headers[.contentType])
        let upload = try UploadForm(try await readUpload(request), boundary: boundary)
        let actor = RequestIdentity.actor
        let record = try await service(param: "file") { [api] in
            try api.files.upload(filename: upload.filename, purpose: upload.purpose, bytes: upload.bytes, actor: actor)
        }
        return json(FineTuningShapes.file(record))
    }

    private func create(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        let raw = try await readJSONBytes(&request)
        var submission = try JobRequest.decode(try JSON.parse(raw))
        if let key = request.headers[Self.idempotencyKey] {
            guard (1...255).contains(key.utf8.count) else {
                throw APIError.badRequest("Idempotency-Key must be 1 to 255 bytes", param: "Idempotency-Key", code: "invalid_value")
            }
            submission.idempotency = (key, SHA256.hash(data: Data(raw)).map { String(format: "%02x", $0) }.joined())
        }
        let s = submission
        let (job, _) = try await service { [api] in
            do {
                return try api.jobs.submit(files: s)
            } catch let RegistryError.notFound(kind, name) where kind == "file" {
                let param = name == "file-\(s.trainingFile)" ? "training_file" : "validation_file"
                throw APIError(status: .notFound, message: "No file named '\(name)' (\(param))", type: "invalid_request_error",
                               param: param, code: "file_not_found")
            } catch let e as ModelError {
                throw APIError.domain(e, param: "hyperparameters")
            } catch let e as TrainingError {
                throw APIError.domain(e, param: "hyperparameters")
            }
        }
        return try await jobResponse(job, request)
    }

    /// A job in OpenAI's shape (with the tokens trained so far), or as the registry's record when
    /// the client asked for it.
    private func jobResponse(_ job: JobRecord, _ request: Request) async throws -> Response {
        if RecordView.requested(request) { return try encoded(job) }
        let tokens = try await service { [api] in try api.jobs.trainedTokens([job.id])[job.id] }
        return json(FineTuningShapes.job(job, trainedTokens: tokens))
    }

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    /// An upload's bytes, refused with 413 past `maxUploadBytes`.
    private func readUpload(_ request: Request) async throws -> [UInt8] {
        let limit = api.maxUploadBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.bodyTooLarge(limit: limit, size: length)
        }
        do {
            var request = request
            let buffer = try await request.collectBody(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limit, size: nil)
        }
    }

    /// A JSON body's bytes, refused with 413 past the server's body limit.
    private func readJSONBytes(_ request: inout Request) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maxBodyBytes {
            throw APIError.bodyTooLarge(limit: limits.maxBodyBytes, size: length)
        }
        do {
            return Array(try await request.collectBody(upTo: limits.maxBodyBytes).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limits.maxBodyBytes, size: nil)
        }
    }
}

/// A path parameter `prefix-N` (or `N`); anything else is a 404 naming it.
func pathID(_ context: ServerContext, _ name: String, prefix: String, kind: String) throws -> Int {
    let text = context.parameters.get(name) ?? ""
    guard let id = FineTuningShapes.id(text, prefix: prefix) else {
        throw APIError(status: .notFound, message: "No \(kind) named '\(text)'", type: "invalid_request_error", param: name, code: "not_found")
    }
    return id
}

/// `after` (the last id of the previous page, newest first) and `limit` (1...100, default 20).
struct Page {
    let after: Int?
    let limit: Int

    init(_ request: Request, prefix: String) throws {
        let q = request.uri.queryParameters
        if let a = q.get("after") {
            guard let n = FineTuningShapes.id(a, prefix: prefix) else { throw APIError.invalid("after", .string(a), expected: "an id (\(prefix)-N)") }
            after = n
        } else {
            after = nil
        }
        if let l = q.get("limit") {
            guard let n = Int(l), (1...100).contains(n) else { throw APIError.invalid("limit", .string(l), expected: "an integer in 1...100") }
            limit = n
        } else {
            limit = 20
        }
    }

    /// The first `limit` items; `has_more` when the query found one more.
    func list(_ items: [JSON]) -> JSON { FineTuningShapes.list(Array(items.prefix(limit)), hasMore: items.count > limit) }
}
