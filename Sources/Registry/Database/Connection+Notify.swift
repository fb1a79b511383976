import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A NOTIFY received on a channel this connection LISTENs to.
public struct Notification: Sendable, Equatable {
    public let channel: String
    public let payload: String
    /// The notifying server process.
    public let senderPID: Int32
}

extension Connection {
    /// Starts listening on `channel` (LISTEN cannot take parameters: the name is quoted by libpq).
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(try quoteIdentifier(channel))")
    }

    public func unlisten(_ channel: String) throws {
        try execute("UNLISTEN \(try quoteIdentifier(channel))")
    }

    /// Sends a notification; delivered when the current transaction commits.
    public func notify(_ channel: String, payload: String = "") throws {
        try execute("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
    }

    /// Waits up to `timeout` seconds for one notification; nil on timeout. Notifications that
    /// arrived earlier (during other statements) are returned first.
    public func waitForNotification(timeout: Double) throws -> Notification? {
        if let n = nextNotification() { return n }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return nil }
            let fd = PQsocket(handle)
            guard fd >= 0 else { throw PostgresError(sqlState: "08003", message: "connection has no socket") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(remaining * 1000, Double(Int32.max)).rounded(.up))
            let r = poll(&pfd, 1, ms)
            if r < 0 {
                if errno == EINTR { continue }
                throw PostgresError(sqlState: nil, message: "poll failed: errno \(errno)")
            }
            if r == 0 { return nil }
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(sqlState: "08006", message: "lost connection while waiting: \(libpqMessage())")
            }
            if let n = nextNotification() { return n }
        }
    }

    func nextNotification() -> Notification? {
        _ = PQconsumeInput(handle)
        guard let p = PQnotifies(handle) else { return nil }
        defer { PQfreemem(p) }
        return Notification(channel: String(cString: p.pointee.relname),
                            payload: String(cString: p.pointee.extra),
                            senderPID: p.pointee.be_pid)
    }
}
