import ArgumentParser
import Foundation
import Registry
import Service

struct AliasOptions: ParsableArguments {
    @Option(help: "The alias to move.") var alias: String = Names.production
    @Option(help: "Why (recorded in the history).") var reason: String = ""
}

struct PromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Point an alias (default production) at a version.")
    @Argument(help: "Task name.") var task: String
    @Argument(help: "Version number.") var version: Int
    @OptionGroup var aliasOptions: AliasOptions
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    struct Output: Encodable { let task: String; let alias: String; let version: Int; let changed: Bool; let move: AliasMove? }

    func run() throws {
        let move = try RegistryClient(registry, server).promote(task: task, version: version, alias: aliasOptions.alias, reason: aliasOptions.reason)
        try registry.emit(Output(task: task, alias: aliasOptions.alias, version: version, changed: move != nil, move: move)) {
            guard let move else { return "\(task)@\(aliasOptions.alias) already points at version \(version)" }
            return "\(task)@\(aliasOptions.alias): \(move.fromVersion.map(String.init) ?? "none") -> \(version)"
        }
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Return an alias to the version it had before its latest promotion still in effect.")
    @Argument(help: "Task name.") var task: String
    @OptionGroup var aliasOptions: AliasOptions
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let move = try RegistryClient(registry, server).rollback(task: task, alias: aliasOptions.alias, reason: aliasOptions.reason)
        try registry.emit(move) {
            "\(task)@\(move.alias): \(move.fromVersion.map(String.init) ?? "none") -> \(move.toVersion.map(String.init) ?? "none")"
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List every move of a task's aliases.")
    @Argument(help: "Task name.") var task: String
    @Option(help: "Only this alias.") var alias: String?
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var server: ServerOptions

    func run() throws {
        let moves = try RegistryClient(registry, server).history(task: task, alias: alias)
        try registry.emit(ListEnvelope(moves)) {
            table(["WHEN", "ALIAS", "FROM", "TO", "ACTION", "ACTOR", "REASON"], moves.map { m in
                [m.createdAt, m.alias, m.fromVersion.map(String.init) ?? "-", m.toVersion.map(String.init) ?? "-",
                 m.action.rawValue, m.actor, m.reason]
            })
        }
    }
}

struct ArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive", abstract: "Archive a version (refused while an alias points at it).")
    @Argument(help: "TASK@N.") var reference: String
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let v = try registry.open().archive(reference)
        try registry.emit(v) { "archived \(v.reference)" }
    }
}

struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Set or clear tags of a version.")
    @Argument(help: "TASK@N (or TASK@ALIAS).") var reference: String
    @Argument(help: "Tags to set, KEY=VALUE.") var set: [String] = []
    @Option(name: .customLong("clear"), help: "A tag key to clear (repeatable).") var clear: [String] = []
    @OptionGroup var registry: RegistryOptions

    func validate() throws {
        if set.isEmpty && clear.isEmpty { throw ValidationError("give KEY=VALUE to set or --clear KEY") }
        _ = try parseKeyValues(set, option: "tag")
    }

    func run() throws {
        let service = try registry.open()
        let pinned = try service.version(reference).reference
        var v: VersionRecord?
        for (k, value) in try parseKeyValues(set, option: "tag").sorted(by: { $0.key < $1.key }) {
            v = try service.setTag(pinned, key: k, value: value)
        }
        for k in clear { v = try service.clearTag(pinned, key: k) }
        let result = v!
        try registry.emit(result) {
            "\(result.reference) tags: " + result.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
    }
}
