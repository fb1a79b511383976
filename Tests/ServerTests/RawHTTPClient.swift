import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP client for what an HTTP library hides: reading part of a response, then hanging up.
final class RawHTTPClient {
    private let fd: Int32
    private var closed = false

    init(host: String = "127.0.0.1", port: Int) throws {
        struct SocketError: Error, CustomStringConvertible { let description: String }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(description: "socket: errno \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw SocketError(description: "connect to \(host):\(port): errno \(errno)") }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let count = bytes.count
        var off = 0
        while off < count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, count - off, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            off += n
        }
    }

    /// Reads until the received text contains `marker` or the deadline (seconds) passes.
    func read(until marker: String, deadline seconds: Double) throws -> String {
        var received = [UInt8]()
        let end = Date().addingTimeInterval(seconds)
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < end {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            received += buf[0..<n]
            if String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    func close() {
        if !closed { Glibc.close(fd); closed = true }
    }

    deinit { close() }
}
