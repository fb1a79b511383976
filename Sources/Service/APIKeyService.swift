import Crypto
import Foundation
import Logging
import Registry

/// API keys: created and revoked by the CLI only, checked by servers. A key is `lora-` and 64 hex
/// digits (a 256-bit random secret); only its sha256 is stored.
public final class APIKeyService: @unchecked Sendable {
    public let registry: RegistryService
    public let store = APIKeyStore()
    public static let prefix = "lora-"

    public init(registry: RegistryService) { self.registry = registry }

    /// Creates a key and returns its record and the secret (shown once, never stored).
    public func create(name: String, role: APIKeyRecord.Role, actor: String = RegistryService.defaultActor())
        throws -> (record: APIKeyRecord, key: String) {
        try APIKeyStore.validateName(name)
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let key = Self.prefix + secret.map { String(format: "%02x", $0) }.joined()
        let digest = Self.digest(key).map { String(format: "%02x", $0) }.joined()
        let rec = try registry.pool.withConnection { try store.insert(name: name, role: role, sha256: digest, actor: actor, on: $0) }
        registry.logger.info("API key '\(name)' created with role \(role.rawValue)")
        return (rec, key)
    }

    public func list() throws -> [APIKeyRecord] { try registry.pool.withConnection { try store.keys(on: $0) } }

    @discardableResult
    public func revoke(name: String) throws -> APIKeyRecord {
        let rec = try registry.pool.withConnection { try store.revoke(name: name, on: $0) }
        registry.logger.info("API key '\(name)' revoked")
        return rec
    }

    public func active() throws -> [ActiveAPIKey] { try registry.pool.withConnection { try store.active(on: $0) } }

    static func digest(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Data(key.utf8))) }
}

/// The keys in force, as a running server holds them: reloaded when the database announces a
/// change (LISTEN `lora_api_keys`) and every `recheckInterval` seconds besides, so a key created
/// or revoked anywhere is in force here within about a second.
public final class APIKeyRing: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [ActiveAPIKey] = []
    private var loaded = false
    private var stopped = false
    private let conninfo: String
    private let store = APIKeyStore()
    private let logger: Logger
    public let recheckInterval: Double

    public init(conninfo: String, recheckInterval: Double = 5, logger: Logger = Logger(label: "lora.keys")) {
        self.conninfo = conninfo
        self.recheckInterval = recheckInterval
        self.logger = logger
    }

    /// Loads the keys now (an error here is the caller's: a server must not start unable to read them).
    public func reload() throws {
        let conn = try Connection(conninfo)
        try set(store.active(on: conn))
    }

    private func set(_ k: [ActiveAPIKey]) {
        lock.lock(); keys = k; loaded = true; lock.unlock()
    }

    /// Starts the thread that follows changes.
    public func start() {
        let t = Thread { [self] in follow() }
        t.name = "api-key-ring"
        t.start()
    }

    public func stop() { lock.lock(); stopped = true; lock.unlock() }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func follow() {
        var conn: Connection?
        while !isStopped {
            do {
                if conn == nil || conn?.isHealthy == false {
                    let c = try Connection(conninfo)
                    // LISTEN before reading, so no change between the read and the LISTEN is missed.
                    try c.listen(APIKeyStore.channel)
                    conn = c
                    set(try store.active(on: c))
                }
                var next = Date().addingTimeInterval(recheckInterval)
                while !isStopped, Date() < next {
                    if try conn!.waitForNotification(timeout: min(0.25, max(0.01, next.timeIntervalSinceNow))) != nil {
                        // Drain a burst, then read once.
                        while try conn!.waitForNotification(timeout: 0) != nil {}
                        next = Date()
                    }
                }
                if !isStopped { set(try store.active(on: conn!)) }
            } catch {
                logger.warning("API keys: \(error); retrying")
                conn = nil
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// True when at least one key is in force (then every /v1 request needs one).
    public var enforcing: Bool { lock.lock(); defer { lock.unlock() }; return !keys.isEmpty }

    /// The key a presented secret belongs to, nil when none. The presented key's sha256 is compared
    /// with every stored digest in constant time (no early exit on a mismatch or a match), so the
    /// time taken says nothing about how close a guess was.
    public func authenticate(_ presented: String) -> ActiveAPIKey? {
        let digest = APIKeyService.digest(presented)
        lock.lock(); let all = keys; lock.unlock()
        var found: ActiveAPIKey?
        for k in all where k.digest.count == digest.count {
            var diff: UInt8 = 0
            for i in 0..<digest.count { diff |= k.digest[i] ^ digest[i] }
            if diff == 0 { found = k }
        }
        return found
    }
}
