import Foundation

/// `.sha256` sidecars: a file `<url>.sha256` beside the download, in `sha256sum` format, checked when neither
/// the spec nor the server (X-Linked-Etag) gives a hash. A missing sidecar is not an error.
extension FileDownloader {
    /// `<url>.sha256`, placed before any query string.
    static func sidecarURL(_ url: String) -> String {
        if let q = url.firstIndex(of: "?") { return url[..<q] + ".sha256" + url[q...] }
        return url + ".sha256"
    }

    /// The hash a `.sha256` sidecar names (`sha256sum` format: hex first), nil when there is none.
    func sidecarSHA256(_ url: String) throws -> String? {
        var failures = 0
        while true {
            var body = Data()
            let result = CurlTransfer(url: url).perform(method: .get, headers: authorizationHeaders, range: nil,
                                                        options: options) { _, bytes in
                body.append(contentsOf: bytes)
                return body.count <= 4096  // a sidecar is one line; anything bigger is not one
            }
            let status = result.final?.status ?? 0
            let error: FetchError
            if result.code == 0 && ((200..<300).contains(status) || Self.isFileURL(url)) {
                let text = String(decoding: body, as: UTF8.self)
                let token = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
                    .first.map(String.init) ?? ""
                return SHA256Hex.isValid(token) ? token.lowercased() : nil
            } else if result.code == 0 && !RetryPolicy.isRetryable(status: status) {
                return nil  // 404 and friends: no sidecar
            } else if result.code == CurlCodes.fileCouldntRead || result.code == CurlCodes.writeError {
                return nil  // no such local file, or an oversized body
            } else if result.code == 0 {
                error = .http(url: url, status: status, body: String(result.errorBody.prefix(300)))
            } else if CurlCodes.retryable.contains(result.code) {
                error = .transport(url: url, code: result.code, message: result.message)
            } else {
                throw FetchError.transport(url: url, code: result.code, message: result.message)
            }
            failures += 1
            if failures >= options.maxAttempts { throw FetchError.retriesExhausted(url: url, attempts: failures, last: error) }
            Thread.sleep(forTimeInterval: RetryPolicy.backoff(retry: failures, initial: options.initialBackoff,
                                                             max: options.maxBackoff))
        }
    }
}
