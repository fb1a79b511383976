import ArgumentParser
import Fetch
import Foundation
import Registry
import Service

/// `--server URL` (else `$LORA_SERVER`) and `--api-key KEY` (else `$LORA_API_KEY`): the registry
/// and job commands' second transport. Without a server they use PostgreSQL directly.
struct ServerOptions: ParsableArguments {
    @Option(name: .customLong("server"), help: "A `lora serve` URL to send this command to (default: $LORA_SERVER; without one: the database).")
    var server: String?

    @Option(name: .customLong("api-key"), help: "The API key for --server, sent as a Bearer token (default: $LORA_API_KEY).")
    var apiKey: String?

    /// The server to use, nil for the database.
    func remote(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RemoteAPI? {
        guard let url = server ?? environment["LORA_SERVER"].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              parsed.host != nil else {
            throw ValidationError("--server \(url): expected an http:// or https:// URL of a `lora serve`")
        }
        let key = apiKey ?? environment["LORA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if let key, key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ValidationError("--api-key / LORA_API_KEY holds a control character (a line break?); a key is one line")
        }
        return RemoteAPI(base: url.hasSuffix("/") ? String(url.dropLast()) : url, apiKey: key)
    }
}

/// Calls to a `lora serve`'s API. Job routes are asked for the registry's records
/// (`Accept: application/vnd.lora.record+json`), the registry routes answer with them anyway, so
/// the commands print what they print against the database.
struct RemoteAPI {
    let base: String
    let apiKey: String?

    static let recordMediaType = "application/vnd.lora.record+json"

    /// No low-speed abort: a streamed job's events can be minutes apart, and an import's upload or
    /// an export's answer waits on the server's work.
    static let options = FetchOptions(connectTimeout: 30, lowSpeedLimit: 1, lowSpeedTime: 86_400, userAgent: "lora-cli/1")

    /// An error answer of the server in OpenAI's shape: its message, and the field it names.
    struct Failure: Error, CustomStringConvertible {
        let method: String
        let path: String
        let status: Int
        let message: String
        let param: String?
        let code: String?

        var description: String {
            var s = message
            if let param { s += " (param: \(param))" }
            return s + " [\(method) \(path): HTTP \(status)" + (code.map { ", \($0)" } ?? "") + "]"
        }
    }

    func headers(contentType: String?) -> [String] {
        var h = ["Accept: \(Self.recordMediaType), application/json"]
        if let apiKey { h.append("Authorization: Bearer \(apiKey)") }
        if let contentType { h.append("Content-Type: \(contentType)") }
        return h
    }

    /// The body of a 2xx answer; anything else throws `Failure`.
    func call(_ method: HTTPCall.Method, _ path: String, body: Data? = nil, contentType: String? = nil) throws -> Data {
        let r = try HTTPCall(method, base + path, headers: headers(contentType: contentType), body: body).send(options: Self.options)
        guard (200..<300).contains(r.status) else { throw failure(method, path, r.status, r.body) }
        return r.body
    }

    func failure(_ method: HTTPCall.Method, _ path: String, _ status: Int, _ body: Data) -> Failure {
        struct Envelope: Decodable {
            struct Inner: Decodable { let message: String; let param: String?; let code: String? }
            let error: Inner
        }
        if let e = try? JSONDecoder().decode(Envelope.self, from: body) {
            return Failure(method: method.rawValue, path: path, status: status, message: e.error.message, param: e.error.param, code: e.error.code)
        }
        let text = String(decoding: body.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Failure(method: method.rawValue, path: path, status: status, message: text.isEmpty ? "no error message" : text, param: nil, code: nil)
    }

    func get<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        try decode(type, try call(.get, path), path)
    }

    func post<T: Decodable>(_ type: T.Type, _ path: String, json: [String: Any]) throws -> T {
        let body = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        return try decode(type, try call(.post, path, body: body, contentType: "application/json"), path)
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data, _ path: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw ValidationError("the server's answer to \(path) is not what this lora expects (\(UserFacingError.reworded(error))); is it a `lora serve` of the same version?")
        }
    }

    struct Page<T: Decodable>: Decodable {
        let data: [T]
        let hasMore: Bool?
        enum CodingKeys: String, CodingKey { case data, hasMore = "has_more" }
    }

    /// Every item of a paged list (newest first), following `after` until `has_more` is false.
    func all<T: Decodable>(_ type: T.Type, _ path: String, query: [String] = [], id: (T) -> Int) throws -> [T] {
        var out: [T] = []
        var after: Int?
        while true {
            let q = query + ["limit=100"] + (after.map { ["after=\($0)"] } ?? [])
            let page = try get(Page<T>.self, path + "?" + q.joined(separator: "&"))
            out += page.data
            guard page.hasMore == true, let last = page.data.last else { return out }
            after = id(last)
        }
    }

    /// A task name or other path segment, percent-encoded.
    static func segment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    /// Server-sent events of `path` (a GET, or a POST of a JSON body): `onData` gets each `data:`
    /// payload but `[DONE]`, which ends the stream.
    func events(_ path: String, method: HTTPCall.Method = .get, body: Data? = nil, onData: (Data) throws -> Void) throws {
        var pending = Data()
        var errorBody = Data()
        var thrown: Error?
        var done = false
        let call = HTTPCall(method, base + path, headers: headers(contentType: body == nil ? nil : "application/json"), body: body)
        let (code, _) = try call.stream(options: Self.options) { bytes in
            pending.append(bytes)
            if errorBody.count < 65_536 { errorBody.append(bytes) }
            while let nl = pending.firstIndex(of: 0x0A) {
                var line = pending[pending.startIndex..<nl]
                if line.last == 0x0D { line = line.dropLast() }
                pending = Data(pending[(nl + 1)...])
                guard line.starts(with: Data("data: ".utf8)) else { continue }
                let payload = Data(line.dropFirst(6))
                if payload == Data("[DONE]".utf8) { done = true; return false }
                do { try onData(payload) } catch { thrown = error; return false }
            }
            return true
        }
        if let thrown { throw thrown }
        guard (200..<300).contains(code) else { throw failure(method, path, code, errorBody) }
        guard done else { throw ValidationError("\(method.rawValue) \(path): the server closed the event stream before its end ([DONE])") }
    }

    /// A `multipart/form-data` body (RFC 7578): text fields, then one file.
    static func multipart(fields: [(String, String)], file: (name: String, filename: String, bytes: Data)) -> (body: Data, contentType: String) {
        let boundary = "lora-" + UUID().uuidString
        var body = Data()
        func add(_ s: String) { body.append(Data(s.utf8)) }
        for (name, value) in fields {
            add("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
        }
        let quoted = file.filename.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        add("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"\(quoted)\"\r\n")
        add("Content-Type: application/octet-stream\r\n\r\n")
        body.append(file.bytes)
        add("\r\n--\(boundary)--\r\n")
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}
