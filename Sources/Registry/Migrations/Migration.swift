import Crypto
import Foundation

/// One numbered SQL file, `NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// The file name it comes from: `0001_registry.sql`.
    public var fileName: String { String(format: "%04d_%@.sql", version, name) }

    /// sha256 of the SQL text, recorded when applied: a landed migration is never edited.
    public var checksum: String { SHA256.hash(data: Data(sql.utf8)).hexString }
}

public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case badFileName(String)
    case duplicate(version: Int, files: [String])
    case gap(missing: Int, after: Int)
    /// The database has a migration this binary does not know (a newer binary ran on it).
    case unknownApplied(version: Int, name: String)
    /// An applied migration's SQL differs from this binary's.
    case edited(version: Int, name: String)

    public var description: String {
        switch self {
        case .badFileName(let f):
            return "migration file '\(f)' is not named NNNN_name.sql (four digits, lowercase name)"
        case .duplicate(let v, let files):
            return "migration number \(v) is used twice: \(files.joined(separator: ", "))"
        case .gap(let missing, let after):
            return "migrations jump from \(after) to a later number: \(String(format: "%04d", missing)) is missing"
        case .unknownApplied(let v, let name):
            return "the database has migration \(v) (\(name)) that this binary does not know: upgrade lora"
        case .edited(let v, let name):
            return "migration \(v) (\(name)) was edited after it was applied: migrations are never edited, add a new one"
        }
    }
}

extension Migration {
    /// Parses file names and orders them, refusing bad names, duplicates and gaps (numbers
    /// must run 1, 2, 3, ... with none missing).
    public static func validated(_ files: [(fileName: String, sql: String)]) throws -> [Migration] {
        var parsed: [Migration] = []
        for f in files {
            parsed.append(try parse(fileName: f.fileName, sql: f.sql))
        }
        parsed.sort { $0.version < $1.version }
        var byVersion: [Int: [String]] = [:]
        for m in parsed { byVersion[m.version, default: []].append(m.fileName) }
        if let dup = byVersion.filter({ $0.value.count > 1 }).min(by: { $0.key < $1.key }) {
            throw MigrationError.duplicate(version: dup.key, files: dup.value.sorted())
        }
        var expected = 1
        for m in parsed {
            if m.version != expected { throw MigrationError.gap(missing: expected, after: expected - 1) }
            expected += 1
        }
        return parsed
    }

    static func parse(fileName: String, sql: String) throws -> Migration {
        guard fileName.hasSuffix(".sql") else { throw MigrationError.badFileName(fileName) }
        let stem = fileName.dropLast(4)
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 4, parts[0].allSatisfy(\.isASCIIDigit),
              let v = Int(parts[0]), v >= 1,
              !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCIILowerAlnum || $0 == "_" }) else {
            throw MigrationError.badFileName(fileName)
        }
        return Migration(version: v, name: String(parts[1]), sql: sql)
    }

    /// Reads every `*.sql` file of a directory (the repository's migrations/ folder).
    public static func load(directory: URL) throws -> [Migration] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
        return try validated(names.map { name in
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            return (name, String(decoding: data, as: UTF8.self))
        })
    }

    /// The migrations compiled into this binary (EmbeddedMigrations.swift, a byte-identical
    /// copy of migrations/*.sql that a test keeps honest).
    public static func embedded() throws -> [Migration] {
        try validated(EmbeddedMigrations.files.map { ($0.fileName, $0.sql) })
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILowerAlnum: Bool { isASCII && (isNumber || isLowercase) }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex, two digits a byte.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in self { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

extension SHA256.Digest {
    public var hexString: String { Array(self).hexString }
}
