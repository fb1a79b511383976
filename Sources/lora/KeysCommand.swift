import ArgumentParser
import Foundation
import Registry
import Service

extension APIKeyRecord.Role: ExpressibleByArgument {}

/// `lora keys create|list|revoke`: API keys of `lora serve`, managed here only (never over HTTP).
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke API keys of `lora serve` (in force on running servers within a second).",
        subcommands: [KeysCreate.self, KeysList.self, KeysRevoke.self])
}

struct KeysCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a key and print it, once (only its sha256 is stored).")
    @Argument(help: "The key's name (recorded as who acted).") var name: String
    @Option(help: "inference (completions, chat, models), trainer (also files, jobs, registry reads, downloads) or admin (also promote, rollback, import, archive).")
    var role: APIKeyRecord.Role
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let (rec, key) = try APIKeyService(registry: registry.open()).create(name: name, role: role)
        if registry.json {
            try printJSON(CreatedKey(name: rec.name, role: rec.role.rawValue, key: key, createdAt: rec.createdAt))
        } else {
            print(key)
        }
    }

    struct CreatedKey: Encodable {
        let name, role, key, createdAt: String
        enum CodingKeys: String, CodingKey {
            case name, role, key
            case createdAt = "created_at"
        }
    }
}

struct KeysList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Keys (never their secrets), oldest first.")
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let keys = try APIKeyService(registry: registry.open()).list()
        try registry.emit(ListEnvelope(keys)) {
            table(["NAME", "ROLE", "CREATED", "REVOKED"], keys.map { [$0.name, $0.role.rawValue, $0.createdAt, $0.revokedAt ?? "-"] })
        }
    }
}

struct KeysRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a key (refused by running servers within a second).")
    @Argument(help: "The key's name.") var name: String
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let rec = try APIKeyService(registry: registry.open()).revoke(name: name)
        try registry.emit(rec) { "revoked API key \(rec.name) (\(rec.role.rawValue))" }
    }
}
