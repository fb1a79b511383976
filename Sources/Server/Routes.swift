import Foundation
import HTTPTypes
import Hummingbird
import Prometheus
import Service

/// The server's routes: OpenAI-compatible generation and model listing, Prometheus metrics, and
/// health. Each handler decodes, calls the backend, encodes; everything else lives in its own type.
struct Routes: Sendable {
    let backend: ServingBackend
    let limits: ServerLimits
    let metrics: ServerMetrics
    let state: ServerState

    func register(on router: Router<ServerContext>) {
        router.post("/v1/completions") { request, context in
            try await generate(request, context, decode: GenerationCall.completion)
        }
        router.post("/v1/chat/completions") { request, context in
            try await generate(request, context, decode: GenerationCall.chat)
        }
        router.get("/v1/models") { _, _ in
            json(ModelListShape.body(try await offload { [backend] in try backend.listModels() }))
        }
        router.get("/metrics") { _, _ in metrics.response() }
        router.get("/healthz") { _, _ in json(.object([("status", "ok")])) }
        router.get("/readyz") { _, _ in try await readiness() }
    }

    private func generate(_ request: Request, _ context: ServerContext,
                          decode: (JSON, String) throws -> GenerationCall) async throws -> Response {
        guard !state.draining else { throw ServingError.unavailable("the server is shutting down") }
        var request = request
        let call = try decode(try await readBody(&request), context.requestId)
        let admitted = try await AdmittedCall.admit(call, backend: backend)
        context.labels.model = admitted.shapes.model
        return call.stream ? stream(admitted, context) : try await answer(admitted, context)
    }

    /// The whole answer at once; a client that goes away cancels its sequences.
    private func answer(_ admitted: AdmittedCall, _ context: ServerContext) async throws -> Response {
        let results = try await context.onDisconnect({ admitted.cancelAll() }) { try await admitted.results() }
        return json(admitted.shapes.full(results))
    }

    /// Server-sent events; a client that goes away cancels its sequences.
    private func stream(_ admitted: AdmittedCall, _ context: ServerContext) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await context.onDisconnect({ admitted.cancelAll() }) {
                try await EventStreamWriter(admitted: admitted).write(to: &writer)
            }
            try await writer.finish(nil)
        })
    }

    /// The body as JSON, refused with 413 past the size limit.
    private func readBody(_ request: inout Request) async throws -> JSON {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maxBodyBytes {
            throw APIError.bodyTooLarge(limit: limits.maxBodyBytes, size: length)
        }
        do {
            return try JSON.parse(try await request.collectBody(upTo: limits.maxBodyBytes).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError.bodyTooLarge(limit: limits.maxBodyBytes, size: nil)
        }
    }

    private func readiness() async throws -> Response {
        let ready = try await offload { [backend] in backend.ready() }
        let status: String = state.draining ? "draining" : (ready ? "ready" : "not ready")
        return json(.object([("status", .string(status))]), status: status == "ready" ? .ok : .serviceUnavailable)
    }
}

/// A whole byte body (file content, adapter tar or GGUF, SVG): its type, and for downloads the
/// file name (`Content-Disposition: attachment`) and an ETag (the bytes' sha256).
func bytesResponse<Bytes: Sequence>(_ bytes: Bytes, contentType: String, filename: String? = nil, etag: String? = nil) -> Response
    where Bytes.Element == UInt8 {
    var headers = HTTPFields()
    headers[.contentType] = contentType
    if let filename { headers[.contentDisposition] = "attachment; filename=\"\(filename)\"" }
    if let etag { headers[.eTag] = "\"\(etag)\"" }
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}

func json(_ body: JSON, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body.serialized())))
}

extension APIError {
    static func bodyTooLarge(limit: Int, size: Int?) -> APIError {
        let got = size.map { "is \($0) bytes" } ?? "is larger than that"
        return APIError(status: .contentTooLarge, message: "The request body \(got); the limit is \(limit) bytes",
                        type: "invalid_request_error", code: "request_too_large")
    }
}
