import Foundation
import Registry
import Service

/// `POST /v1/files`'s multipart form, checked: `purpose` "fine-tune", one `file` part (its name at
/// most 255 bytes, "upload.jsonl" when absent), nothing else. The bytes are validated as JSONL by
/// the file service.
struct UploadForm {
    let purpose: String
    let filename: String
    let bytes: [UInt8]

    init(_ body: [UInt8], boundary: String) throws {
        let form = try MultipartForm(body, boundary: boundary)
        guard let purpose = form.part("purpose").map({ String(decoding: $0.bytes, as: UTF8.self) }) else {
            throw APIError.missing("purpose", expected: "\"fine-tune\"")
        }
        guard FileService.purposes.contains(purpose) else {
            throw APIError.invalid("purpose", .string(purpose), expected: "\"fine-tune\" (the only purpose this server stores)")
        }
        guard let file = form.part("file") else { throw APIError.missing("file", expected: "the JSONL file as a form part") }
        let filename = (file.filename?.isEmpty == false ? file.filename! : "upload.jsonl")
        if let extra = form.parts.map(\.name).first(where: { $0 != "file" && $0 != "purpose" }) {
            throw APIError.badRequest("Unrecognized form field supplied: \(extra)", param: extra, code: "unknown_parameter")
        }
        guard filename.utf8.count <= 255 else {
            throw APIError.invalid("file", .string(String(filename.prefix(40))), expected: "a file name of at most 255 bytes")
        }
        self.purpose = purpose
        self.filename = filename
        self.bytes = file.bytes
    }
}

/// The bodies of `POST /v1/tasks/:task/promote` ({version, alias?, reason?}) and `.../rollback`
/// ({alias?, reason?}); the alias defaults to `production`.
enum AliasRequest {
    static func promote(_ body: JSON) throws -> (version: Int, alias: String, reason: String) {
        var r = try FieldReader(body)
        guard let version = try r.int("version", in: 1...Int64(Int32.max), expected: "a version number") else {
            throw APIError.missing("version", expected: "the version number to point the alias at")
        }
        let alias = try r.string("alias") ?? Names.production
        let reason = try r.string("reason") ?? ""
        try r.rejectUnread()
        return (Int(version), alias, reason)
    }

    static func rollback(_ body: JSON) throws -> (alias: String, reason: String) {
        var r = try FieldReader(body)
        let alias = try r.string("alias") ?? Names.production
        let reason = try r.string("reason") ?? ""
        try r.rejectUnread()
        return (alias, reason)
    }
}

/// Every request body the server reads, from bytes to a validated request or the error a client
/// gets, decoded exactly as the routes decode them (up to the service call): the entry point of
/// the request-body fuzzer (Fuzz/Sources/fuzz-server-requests) and of tests of it.
public enum RequestBodies {
    public enum Kind: UInt8, CaseIterable, Sendable {
        case completion, chatCompletion, fineTuningJob, fileUpload, promote, rollback
    }

    /// The boundary `decode` gives a `.fileUpload` body's Content-Type.
    public static let uploadBoundary = "lora-request-boundary"

    /// Decodes `bytes` as a body of `kind`: nil when the server would accept it, else the error the
    /// client would get. An error that is not already an APIError is what a handler would turn into
    /// a 500 (`APIError.from`): for bad input that is a bug, and the fuzzer stops on it.
    public static func decode(_ kind: Kind, _ bytes: [UInt8]) -> APIError? {
        do {
            switch kind {
            case .completion:
                let call = try GenerationCall.completion(try JSON.parse(bytes), requestId: "cmpl-fuzz")
                precondition(!call.requests.isEmpty, "an accepted completion call has no request")
            case .chatCompletion:
                let call = try GenerationCall.chat(try JSON.parse(bytes), requestId: "chatcmpl-fuzz")
                precondition(call.requests.count == 1, "an accepted chat call has \(call.requests.count) requests")
            case .fineTuningJob:
                _ = try JobRequest.decode(try JSON.parse(bytes))
            case .fileUpload:
                let boundary = try MultipartForm.boundary(contentType: "multipart/form-data; boundary=\(uploadBoundary)")
                _ = try UploadForm(bytes, boundary: boundary)
            case .promote:
                _ = try AliasRequest.promote(try JSON.parse(bytes))
            case .rollback:
                _ = try AliasRequest.rollback(bytes.isEmpty ? .object([]) : try JSON.parse(bytes))
            }
            return nil
        } catch {
            return APIError.from(error)
        }
    }
}
