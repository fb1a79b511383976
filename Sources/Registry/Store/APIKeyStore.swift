import Crypto
import Foundation

/// An API key's record. The secret itself is never stored: only its sha256.
public struct APIKeyRecord: Sendable, Equatable, Encodable {
    public enum Role: String, Sendable, Codable, CaseIterable, Comparable {
        case inference, trainer, admin
        /// inference < trainer < admin: each role may do what the ones below it may.
        public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
        var rank: Int { self == .inference ? 0 : (self == .trainer ? 1 : 2) }
    }

    public let name: String
    public let role: Role
    public let createdBy: String
    public let createdAt: String
    public let revokedAt: String?

    enum CodingKeys: String, CodingKey {
        case name, role
        case createdBy = "created_by"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(role, forKey: .role)
        try c.encode(createdBy, forKey: .createdBy)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(revokedAt, forKey: .revokedAt)
    }
}

/// An active key as servers hold it: the sha256 of its secret, its name and role.
public struct ActiveAPIKey: Sendable, Equatable {
    public let name: String
    public let role: APIKeyRecord.Role
    /// sha256 of the secret, 32 bytes.
    public let digest: [UInt8]
}

/// The API keys' SQL. Changes are announced on `lora_api_keys` by a trigger (migration 0004).
public struct APIKeyStore: Sendable {
    public static let channel = "lora_api_keys"
    public static let nameRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"

    public init() {}

    public static func validateName(_ name: String) throws {
        guard let f = name.utf8.first, Self.isAlnum(f), name.utf8.count <= 100,
              name.utf8.allSatisfy({ Self.isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }) else {
            throw RegistryError.invalidName(kind: "API key", name: name, rule: nameRule)
        }
    }

    static func isAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) }

    static let columns = """
        name, role, created_by, \(RegistryStore.iso("created_at")) AS created_at, \(RegistryStore.iso("revoked_at")) AS revoked_at
        """

    static func record(_ r: Row) throws -> APIKeyRecord {
        let role = try r.string("role")
        guard let parsed = APIKeyRecord.Role(rawValue: role) else {
            throw SQLDecodingError(column: "role", row: r.index, expected: "a role", value: role)
        }
        return APIKeyRecord(name: try r.string("name"), role: parsed, createdBy: try r.string("created_by"),
                            createdAt: try r.string("created_at"), revokedAt: try r.optionalString("revoked_at"))
    }

    /// Stores a new key's name, role and secret digest (hex). A name already used (even by a
    /// revoked key) is refused.
    public func insert(name: String, role: APIKeyRecord.Role, sha256: String, actor: String, on conn: Connection) throws -> APIKeyRecord {
        try Self.validateName(name)
        do {
            try conn.execute("INSERT INTO api_keys (name, role, sha256, created_by) VALUES ($1, $2, $3, $4)",
                             [.text(name), .text(role.rawValue), .text(sha256), .text(actor)])
        } catch let e as PostgresError where e.isUniqueViolation {
            throw RegistryError.alreadyExists(kind: "API key", name: name)
        }
        return try key(named: name, on: conn)!
    }

    public func key(named name: String, on conn: Connection) throws -> APIKeyRecord? {
        try conn.execute("SELECT \(Self.columns) FROM api_keys WHERE name = $1", [.text(name)]).first.map(Self.record)
    }

    /// Every key, revoked ones included, oldest first.
    public func keys(on conn: Connection) throws -> [APIKeyRecord] {
        try conn.execute("SELECT \(Self.columns) FROM api_keys ORDER BY id").rows.map(Self.record)
    }

    /// Revokes a key (at once on every server: the trigger NOTIFYs). Revoking twice changes nothing.
    public func revoke(name: String, on conn: Connection) throws -> APIKeyRecord {
        try conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", [.text(name)])
        guard let k = try key(named: name, on: conn) else { throw RegistryError.notFound(kind: "API key", name: name) }
        return k
    }

    /// The keys in force now.
    public func active(on conn: Connection) throws -> [ActiveAPIKey] {
        try conn.execute("SELECT name, role, sha256 FROM api_keys WHERE revoked_at IS NULL ORDER BY id").rows.map { r in
            let hex = try r.string("sha256")
            return ActiveAPIKey(name: try r.string("name"), role: APIKeyRecord.Role(rawValue: try r.string("role")) ?? .inference,
                                digest: Self.bytes(hex: hex))
        }
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(RowHex.value(a) << 4 | RowHex.value(b)) }
        return out
    }
}

enum RowHex {
    static func value(_ c: UInt8) -> UInt8 {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return 0
        }
    }
}
