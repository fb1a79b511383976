import CCurl
import Foundation

/// One libcurl easy transfer (GET, HEAD, or a POST/DELETE with a request body for API calls;
/// redirects followed) whose body is handed to a sink.
/// Every hop's headers are kept, because Hugging Face sends X-Linked-Etag / X-Linked-Size on the
/// redirect response, not on the final one.
final class CurlTransfer {
    enum Method {
        case get, head, delete
        /// POST with these bytes as the body (sent from memory, with their Content-Length).
        case post(Data)
    }

    struct Result {
        /// libcurl's CURLcode (0 = CURLE_OK).
        var code: Int
        var message: String
        /// Heads of every response in the redirect chain, in order.
        var heads: [HTTPResponseHead]
        var final: HTTPResponseHead? { heads.last }
        /// Up to 2 KB of the body of a non-2xx final response, for error messages.
        var errorBody: String
    }

    /// Decides what to do with body bytes of the final response; return false to abort the transfer.
    typealias Sink = (_ head: HTTPResponseHead, _ bytes: UnsafeRawBufferPointer) -> Bool

    private static let globalInit: Bool = { lora_curl_global_init() == CURLE_OK }()

    let url: String
    private var heads: [HTTPResponseHead] = []
    private var partialLine = Data()
    private var errorBody = Data()
    private let isFileURL: Bool
    private var sink: Sink?
    /// Hand the body of every final response to the sink, whatever its status (API clients read
    /// error bodies as JSON); downloads keep only 2 KB of an error body for the message.
    private var sinkEveryStatus = false

    init(url: String) {
        self.url = url
        self.isFileURL = url.lowercased().hasPrefix("file:")
    }

    /// Runs the transfer to completion on the calling thread.
    func perform(method: Method, headers: [String], range: Int64?, options: FetchOptions, sinkEveryStatus: Bool = false,
                 sink: Sink = { _, _ in true }) -> Result {
        withoutActuallyEscaping(sink) { sink in
            self.sink = sink
            self.sinkEveryStatus = sinkEveryStatus
            defer { self.sink = nil }
            return run(method: method, headers: headers, range: range, options: options)
        }
    }

    private func run(method: Method, headers: [String], range: Int64?, options: FetchOptions) -> Result {
        _ = Self.globalInit
        guard let h = curl_easy_init() else {
            return Result(code: Int(CURLE_FAILED_INIT.rawValue), message: "curl_easy_init failed", heads: [], errorBody: "")
        }
        defer { curl_easy_cleanup(h) }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        _ = lora_curl_setopt_str(h, CURLOPT_URL, url)
        _ = lora_curl_setopt_ptr(h, CURLOPT_ERRORBUFFER, errorBuffer)
        // Proxies: libcurl reads http_proxy / https_proxy / all_proxy / no_proxy itself; nothing here overrides them.
        _ = lora_curl_setopt_str(h, CURLOPT_PROTOCOLS_STR, "http,https,file")
        _ = lora_curl_setopt_str(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        _ = lora_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 1)
        _ = lora_curl_setopt_long(h, CURLOPT_MAXREDIRS, 10)
        // Timeouts must not use signals in a multi-threaded process.
        _ = lora_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = lora_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(options.connectTimeout * 1000)))
        _ = lora_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, max(1, options.lowSpeedLimit))
        _ = lora_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, max(1, Int(options.lowSpeedTime.rounded(.up))))
        _ = lora_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        _ = lora_curl_setopt_str(h, CURLOPT_USERAGENT, options.userAgent)
        if list != nil { _ = lora_curl_setopt_slist(h, CURLOPT_HTTPHEADER, list) }
        // The request body must outlive curl_easy_perform: libcurl reads CURLOPT_POSTFIELDS in place.
        var postBody = Data()
        switch method {
        case .get: break
        case .head: _ = lora_curl_setopt_long(h, CURLOPT_NOBODY, 1)
        case .delete: _ = lora_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, "DELETE")
        case let .post(body):
            postBody = body
            _ = lora_curl_setopt_long(h, CURLOPT_POST, 1)
            _ = lora_curl_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        }
        if let range, range > 0 { _ = lora_curl_setopt_str(h, CURLOPT_RANGE, "\(range)-") }

        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = lora_curl_setopt_data_callback(h, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            let n = size * count
            guard let data, let user else { return n }
            let t = Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue()
            t.headerLine(UnsafeRawBufferPointer(start: data, count: n))
            return n
        }
        _ = lora_curl_setopt_ptr(h, CURLOPT_HEADERDATA, me)
        _ = lora_curl_setopt_data_callback(h, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            let n = size * count
            guard let data, let user else { return n }
            let t = Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue()
            return t.body(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
        }
        _ = lora_curl_setopt_ptr(h, CURLOPT_WRITEDATA, me)

        let code = postBody.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> CURLcode in
            if case .post = method {
                // An empty body still needs a non-nil pointer, or libcurl reads one from a callback.
                _ = lora_curl_setopt_ptr(h, CURLOPT_POSTFIELDS, raw.baseAddress ?? UnsafeMutableRawPointer(errorBuffer))
            }
            return curl_easy_perform(h)
        }
        var status = 0
        _ = lora_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        if var last = heads.last, last.status == 0 { last.status = status; heads[heads.count - 1] = last }
        var message = String(cString: errorBuffer)
        if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
        return Result(code: Int(code.rawValue), message: message, heads: heads,
                      errorBody: String(decoding: errorBody, as: UTF8.self)
                          .trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private func headerLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            // A new response (a redirect hop, or a 100 Continue) starts.
            let parts = line.split(separator: " ", maxSplits: 2)
            heads.append(HTTPResponseHead(status: parts.count > 1 ? Int(parts[1]) ?? 0 : 0))
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        if heads.isEmpty { heads.append(HTTPResponseHead(status: isFileURL ? 200 : 0)) }
        heads[heads.count - 1].fields.append((name, value))
    }

    private func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if heads.isEmpty { heads.append(HTTPResponseHead(status: isFileURL ? 200 : 0)) }
        let head = heads[heads.count - 1]
        if sinkEveryStatus || (200..<300).contains(head.status) {
            return sink?(head, bytes) ?? true
        }
        // Error (or unfollowed redirect) bodies are kept only for the message.
        if errorBody.count < 2048 { errorBody.append(contentsOf: bytes.prefix(2048 - errorBody.count)) }
        return true
    }
}

/// Which libcurl failures are worth retrying (the network, not the request, was at fault).
enum CurlCodes {
    static let fileCouldntRead = 37
    static let writeError = 23
    static let retryable: Set<Int> = [
        5,   // COULDNT_RESOLVE_PROXY
        6,   // COULDNT_RESOLVE_HOST
        7,   // COULDNT_CONNECT
        16,  // HTTP2 framing
        18,  // PARTIAL_FILE: the connection closed before Content-Length bytes
        28,  // OPERATION_TIMEDOUT: connect timeout or low-speed limit
        35,  // SSL_CONNECT_ERROR
        52,  // GOT_NOTHING
        55,  // SEND_ERROR
        56,  // RECV_ERROR
        92,  // HTTP2_STREAM
        95,  // HTTP3
    ]
}
