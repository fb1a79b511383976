import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A request as the test server saw it.
struct RecordedRequest {
    var method: String
    var path: String
    /// Header names lowercased.
    var headers: [String: String]
    var time: Date
}

/// What the server answers, and how badly it behaves while doing so.
struct Reply {
    var status: Int
    var headers: [(String, String)] = []
    var body = Data()
    /// Send only this many body bytes (after a full Content-Length), then close the connection.
    var dropAfter: Int?
    /// Send the headers, then nothing until the client hangs up (counted in `abandonedStalls`) or the
    /// server stops.
    var stallAfterHeaders = false
    /// Send this many body bytes, then nothing until the server stops (the connection stays open).
    var stallAfterBytes: Int?
    /// Pause between 16 KB chunks, to make a transfer slow.
    var chunkDelay: TimeInterval = 0
    /// No Content-Length: zero bytes sent until the client hangs up or the server stops.
    var endless = false

    static func status(_ code: Int, _ headers: [(String, String)] = []) -> Reply {
        Reply(status: code, headers: headers)
    }

    /// Serves `data` like a static file server: HEAD, `Range: bytes=N-`, and `If-Range` against `etag`.
    static func file(_ data: Data, etag: String?, request: RecordedRequest, lastModified: String? = nil,
                     extra: [(String, String)] = []) -> Reply {
        var headers = extra + [("Accept-Ranges", "bytes")]
        if let etag { headers.append(("ETag", etag)) }
        if let lastModified { headers.append(("Last-Modified", lastModified)) }
        let validator = etag ?? lastModified
        if let range = request.headers["range"], range.hasPrefix("bytes="), range.hasSuffix("-"),
           let start = Int(range.dropFirst(6).dropLast()),
           request.headers["if-range"] == nil || request.headers["if-range"] == validator {
            guard start < data.count else {
                return Reply(status: 416, headers: [("Content-Range", "bytes */\(data.count)")])
            }
            headers.append(("Content-Range", "bytes \(start)-\(data.count - 1)/\(data.count)"))
            return Reply(status: 206, headers: headers, body: data.subdata(in: start..<data.count))
        }
        return Reply(status: 200, headers: headers, body: data)
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 (ephemeral port), one thread per connection, one request per
/// connection. It records every request and lets the test decide each reply.
final class TestHTTPServer: @unchecked Sendable {
    typealias Handler = (_ request: RecordedRequest, _ nth: Int) -> Reply

    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private let listener: Int32
    private let handler: Handler
    private let lock = NSLock()
    private var recorded: [RecordedRequest] = []
    private var sentBytes: [String: Int] = [:]
    private let stopped = DispatchSemaphore(value: 0)
    private var isStopped = false
    private var abandoned = 0

    /// Stalled replies whose client closed the connection first (a client-side timeout fired).
    var abandonedStalls: Int {
        lock.lock(); defer { lock.unlock() }
        return abandoned
    }

    /// Waits (polling every 50 ms) until the peer closes `fd` (true) or the server stops (false).
    private func waitForClientHangUp(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            lock.lock(); let stop = isStopped; lock.unlock()
            if stop { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 50) > 0 {
                if p.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return true }
            }
        }
    }

    init(handler: @escaping Handler) throws {
        self.handler = handler
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        guard listener >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [unowned self] in self.acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    func stop() {
        lock.lock()
        let already = isStopped
        isStopped = true
        lock.unlock()
        guard !already else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for _ in 0..<64 { stopped.signal() }  // wake stalled connections
    }

    func url(_ path: String) -> String { baseURL + path }

    private var isStoppedNow: Bool { lock.lock(); defer { lock.unlock() }; return isStopped }

    func requests(_ path: String? = nil, method: String? = nil) -> [RecordedRequest] {
        lock.lock(); defer { lock.unlock() }
        return recorded.filter { (path == nil || $0.path == path) && (method == nil || $0.method == method) }
    }

    /// Body bytes actually written to clients for `path`.
    func bytesSent(_ path: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        return sentBytes[path] ?? 0
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in self.serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return }
            buffer += chunk[0..<n]
            if buffer.count >= 4, (0...(buffer.count - 4)).contains(where: { Array(buffer[$0..<$0 + 4]) == terminator }) {
                break
            }
        }
        let text = String(decoding: buffer, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count >= 2 else { return }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let request = RecordedRequest(method: String(requestLine[0]), path: String(requestLine[1]),
                                      headers: headers, time: Date())
        lock.lock()
        recorded.append(request)
        let nth = recorded.filter { $0.path == request.path }.count
        lock.unlock()

        let reply = handler(request, nth)
        var head = "HTTP/1.1 \(reply.status) Reply\r\n"
        var fields = reply.headers
        if !reply.endless && !fields.contains(where: { $0.0.lowercased() == "content-length" }) {
            fields.append(("Content-Length", "\(reply.body.count)"))
        }
        fields.append(("Connection", "close"))
        for (name, value) in fields { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        guard sendAll(fd, Data(head.utf8)) else { return }
        if reply.stallAfterHeaders {
            if waitForClientHangUp(fd) {
                lock.lock(); abandoned += 1; lock.unlock()
            }
            return
        }
        guard request.method != "HEAD" else { return }
        if reply.endless {
            let zeros = Data(count: 16384)
            while !isStoppedNow, sendAll(fd, zeros) {
                lock.lock(); sentBytes[request.path, default: 0] += zeros.count; lock.unlock()
            }
            return
        }
        var body = reply.body
        if let drop = reply.dropAfter ?? reply.stallAfterBytes { body = body.prefix(drop) }
        var offset = 0
        while offset < body.count {
            let piece = body.subdata(in: offset..<min(body.count, offset + 16384))
            guard sendAll(fd, piece) else { return }
            lock.lock()
            sentBytes[request.path, default: 0] += piece.count
            lock.unlock()
            offset += piece.count
            if reply.chunkDelay > 0 { Thread.sleep(forTimeInterval: reply.chunkDelay) }
        }
        if reply.stallAfterBytes != nil { _ = stopped.wait(timeout: .now() + 10) }
        if reply.dropAfter != nil { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func sendAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = send(fd, raw.baseAddress! + done, raw.count - done, Int32(MSG_NOSIGNAL))
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
    }
}
