import Foundation

/// A small blocking pool: at most `maxConnections` open, idle ones reused, broken ones dropped.
public final class ConnectionPool: @unchecked Sendable {
    public let conninfo: String
    public let maxConnections: Int
    private let condition = NSCondition()
    private var idle: [Connection] = []
    private var open = 0

    public init(conninfo: String, maxConnections: Int = 4) {
        self.conninfo = conninfo
        self.maxConnections = max(1, maxConnections)
    }

    /// Borrows a connection for the duration of `body`. Blocks while all are in use.
    public func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let conn = try acquire()
        defer { release(conn) }
        return try body(conn)
    }

    /// Borrows a connection and runs `body` in a transaction on it.
    public func withTransaction<T>(_ body: (Connection) throws -> T) throws -> T {
        try withConnection { try $0.withTransaction(body) }
    }

    func acquire() throws -> Connection {
        condition.lock()
        while idle.isEmpty && open >= maxConnections { condition.wait() }
        if let c = idle.popLast() {
            condition.unlock()
            return c
        }
        open += 1
        condition.unlock()
        do {
            return try Connection(conninfo)
        } catch {
            condition.lock(); open -= 1; condition.signal(); condition.unlock()
            throw error
        }
    }

    func release(_ conn: Connection) {
        condition.lock()
        if conn.isHealthy && conn.transactionDepth == 0 {
            idle.append(conn)
        } else {
            open -= 1
        }
        condition.signal()
        condition.unlock()
    }

    /// Closes the idle connections (borrowed ones close when returned and dropped).
    public func close() {
        condition.lock()
        open -= idle.count
        idle.removeAll()
        condition.unlock()
    }
}
