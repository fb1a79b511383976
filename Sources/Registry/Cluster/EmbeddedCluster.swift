import Diagnostics
import Crypto
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster under a data directory, started on demand and left running.
///
/// Layout under `dataDirectory`: `pg/` (PGDATA, mode 0700, owned by the server's OS user),
/// `run/` (the unix socket; or /tmp/lora-pg-<hash> when the path would be too long for a
/// socket), `cluster.lock` (serializes concurrent starts). No TCP port: `listen_addresses = ''`.
/// PostgreSQL refuses to run as root, so when this process is root the server runs as the
/// system user `lora-pg`, created on first use.
public final class EmbeddedCluster: @unchecked Sendable {
    public static let serviceUser = "lora-pg"
    /// The superuser role initdb creates; local socket connections are trusted (the socket
    /// directory is 0700, so only its owner and root reach it).
    public static let role = "lora"
    public static let database = "lora"
    static let port = 5432

    /// `.full` for real data; `.fastUnsafe` (no fsync anywhere) for throwaway test clusters,
    /// where a power cut may lose or corrupt data. Applies when the cluster is created.
    public enum Durability: Sendable { case full, fastUnsafe }

    public let dataDirectory: URL
    public let durability: Durability
    let logger: Logger

    public init(dataDirectory: URL, durability: Durability = .full, logger: Logger = Logger(label: "lora.registry.cluster")) {
        self.dataDirectory = dataDirectory.standardizedFileURL
        self.durability = durability
        self.logger = logger
    }

    /// `LORA_DATA_DIR`, else /var/lib/lora for root (outside root's home, which the server user
    /// cannot enter), else `$XDG_DATA_HOME/lora` or ~/.local/share/lora.
    public static func defaultDataDirectory() -> URL {
        let env = ProcessInfo.processInfo.environment
        if let d = env["LORA_DATA_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        if geteuid() == 0 { return URL(fileURLWithPath: "/var/lib/lora") }
        if let x = env["XDG_DATA_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("lora") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".local/share/lora")
    }

    public var pgData: URL { dataDirectory.appendingPathComponent("pg") }

    public var socketDirectory: URL {
        let local = dataDirectory.appendingPathComponent("run")
        // A unix socket path holds at most 107 bytes; the file is ".s.PGSQL.5432" inside the dir.
        if local.path.utf8.count + 15 <= 100 { return local }
        let h = SHA256.hash(data: Data(dataDirectory.path.utf8)).hexString.prefix(12)
        return URL(fileURLWithPath: "/tmp/lora-pg-\(h)")
    }

    var runsAsRoot: Bool { geteuid() == 0 }
    var serverUser: String? { runsAsRoot ? Self.serviceUser : nil }

    /// libpq keyword/value connection string for the cluster's `lora` database.
    public var conninfo: String { conninfo(database: Self.database) }

    /// The connection string for another database of the cluster.
    public func conninfo(database: String) -> String {
        func q(_ s: String) -> String {
            "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        return "host=\(q(socketDirectory.path)) port=\(Self.port) user=\(Self.role) dbname=\(q(database)) connect_timeout=10"
    }

    // MARK: - Status, start, stop

    public func status() throws -> ClusterStatus {
        let initialized = FileManager.default.fileExists(atPath: pgData.appendingPathComponent("PG_VERSION").path)
        var running = false
        var pid: Int?
        if initialized {
            let bin = try PostgresBinaries.find()
            let r = try ProcessRunner.run(bin.pgCtl, ["-D", pgData.path, "status"], asUser: serverUser, directory: dataDirectory)
            running = r.status == 0
            if running, let text = try? String(contentsOf: pgData.appendingPathComponent("postmaster.pid"), encoding: .utf8) {
                pid = text.split(separator: "\n").first.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            }
        }
        return ClusterStatus(running: running, initialized: initialized, pid: pid, dataDirectory: pgData.path,
                             socketDirectory: socketDirectory.path,
                             osUser: serverUser ?? (ProcessInfo.processInfo.environment["USER"] ?? "\(geteuid())"))
    }

    /// Starts the cluster unless it is running (creating it first if needed) and returns the
    /// connection string. Safe to call from many processes at once.
    @discardableResult
    public func ensureRunning() throws -> String {
        // Fast path: a live server answers without taking the lock or running pg_ctl.
        if FileManager.default.fileExists(atPath: pgData.appendingPathComponent("postmaster.pid").path),
           (try? Connection(conninfo)) != nil {
            return conninfo
        }
        try createDirectory(dataDirectory, mode: 0o755)
        return try withFileLock(dataDirectory.appendingPathComponent("cluster.lock")) {
            let bin = try PostgresBinaries.find()
            if runsAsRoot {
                try ensureServiceUser()
                try checkReachable()
            }
            if !FileManager.default.fileExists(atPath: pgData.appendingPathComponent("PG_VERSION").path) {
                try initialize(bin)
            }
            try prepareSocketDirectory()
            let st = try ProcessRunner.run(bin.pgCtl, ["-D", pgData.path, "status"], asUser: serverUser, directory: dataDirectory)
            if st.status != 0 {
                logger.info("starting PostgreSQL in \(pgData.path)")
                let r = try ProcessRunner.run(bin.pgCtl, ["-D", pgData.path, "-l", pgData.appendingPathComponent("server.log").path,
                                                          "-w", "-t", "60", "start"],
                                              asUser: serverUser, directory: dataDirectory)
                guard r.status == 0 else {
                    let log = (try? String(contentsOf: pgData.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
                    throw ClusterError.commandFailed(command: "pg_ctl start", status: r.status,
                                                     output: r.output + "\n" + String(log.suffix(1500)))
                }
            }
            try createDatabaseIfMissing()
            return conninfo
        }
    }

    /// Stops the server (fast shutdown: open sessions are disconnected). No-op when stopped.
    /// Returns whether a running server was stopped.
    @discardableResult
    public func stop() throws -> Bool {
        guard FileManager.default.fileExists(atPath: pgData.appendingPathComponent("PG_VERSION").path) else { return false }
        let bin = try PostgresBinaries.find()
        return try withFileLock(dataDirectory.appendingPathComponent("cluster.lock")) {
            let st = try ProcessRunner.run(bin.pgCtl, ["-D", pgData.path, "status"], asUser: serverUser, directory: dataDirectory)
            guard st.status == 0 else { return false }
            let r = try ProcessRunner.run(bin.pgCtl, ["-D", pgData.path, "-m", "fast", "-w", "-t", "60", "stop"],
                                          asUser: serverUser, directory: dataDirectory)
            guard r.status == 0 else { throw ClusterError.commandFailed(command: "pg_ctl stop", status: r.status, output: r.output) }
            logger.info("stopped PostgreSQL in \(pgData.path)")
            return true
        }
    }

    // MARK: - Setup

    func initialize(_ bin: PostgresBinaries) throws {
        logger.info("creating a PostgreSQL cluster in \(pgData.path)")
        try createDirectory(pgData, mode: 0o700)
        try chownToServer(pgData)
        let r = try ProcessRunner.run(bin.initdb, [
            "-D", pgData.path, "-U", Self.role, "--auth-local=trust", "--auth-host=reject",
            "-E", "UTF8", "--locale=C", "--no-instructions",
        ] + (durability == .fastUnsafe ? ["--no-sync"] : []), asUser: serverUser, directory: dataDirectory)
        guard r.status == 0 else { throw ClusterError.commandFailed(command: "initdb", status: r.status, output: r.output) }
        let conf = """

            # lora: a private cluster reached only through its unix socket.
            listen_addresses = ''
            port = \(Self.port)
            unix_socket_directories = '\(socketDirectory.path.replacingOccurrences(of: "'", with: "''"))'
            unix_socket_permissions = 0700
            max_connections = 100
            shared_buffers = 32MB
            logging_collector = off

            """ + (durability == .fastUnsafe ? "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" : "")
        let confURL = pgData.appendingPathComponent("postgresql.conf")
        let h = try FileHandle(forWritingTo: confURL)
        defer { try? h.close() }
        h.seekToEndOfFile()
        h.write(Data(conf.utf8))
    }

    func prepareSocketDirectory() throws {
        try createDirectory(socketDirectory, mode: 0o700)
        try chownToServer(socketDirectory)
    }

    func createDatabaseIfMissing() throws {
        let c = try Connection(conninfo(database: "postgres"))
        let exists = try c.execute("SELECT 1 FROM pg_database WHERE datname = $1", [.text(Self.database)])
        if exists.isEmpty {
            do {
                try c.execute("CREATE DATABASE \(try c.quoteIdentifier(Self.database))")
            } catch let e as PostgresError where e.sqlState == "42P04" {
                // Created by another process meanwhile.
            }
        }
    }

    func ensureServiceUser() throws {
        if getpwnam(Self.serviceUser) != nil { return }
        let r = try ProcessRunner.run("/usr/sbin/useradd", [
            "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", "--comment", "lora embedded PostgreSQL", Self.serviceUser,
        ])
        // Another process may have created it at the same moment (status 9: already exists).
        if getpwnam(Self.serviceUser) == nil {
            throw ClusterError.cannotCreateUser(name: Self.serviceUser, output: "status \(r.status): \(r.output)")
        }
    }

    /// Every ancestor of the data directory must be searchable by the server user.
    func checkReachable() throws {
        var dir = dataDirectory
        while dir.path != "/" {
            var st = stat()
            if stat(dir.path, &st) == 0 && st.st_mode & 0o001 == 0 {
                throw ClusterError.dataDirUnreachable(path: dataDirectory.path, blockedAt: dir.path)
            }
            dir = dir.deletingLastPathComponent()
        }
    }

    func chownToServer(_ url: URL) throws {
        guard runsAsRoot, let pw = getpwnam(Self.serviceUser) else { return }
        if chown(url.path, pw.pointee.pw_uid, pw.pointee.pw_gid) != 0 {
            throw ClusterError.io(path: url.path, reason: "chown to \(Self.serviceUser) failed: errno \(errno)")
        }
    }

    func createDirectory(_ url: URL, mode: Int) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: mode])
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        } catch {
            throw ClusterError.io(path: url.path, reason: "cannot create directory: \(ErrorText.describe(error))")
        }
    }

    func withFileLock<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        // O_CLOEXEC: a server started under the lock must not inherit (and keep holding) it.
        let fd = open(url.path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClusterError.io(path: url.path, reason: "cannot open lock file: errno \(errno)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw ClusterError.io(path: url.path, reason: "flock failed: errno \(errno)") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
