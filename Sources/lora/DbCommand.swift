import ArgumentParser
import Foundation
import Registry
import Service

struct DbCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Manage the embedded PostgreSQL cluster.",
        subcommands: [DbStatus.self, DbStart.self, DbStop.self])
}

struct DbStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show whether the embedded cluster runs.")
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        let s = try registry.configuration.cluster.status()
        try registry.emit(s) {
            guard s.initialized else { return "not created (\(s.dataDirectory))" }
            return (s.running ? "running" : "stopped") + (s.pid.map { " (pid \($0))" } ?? "")
                + " data \(s.dataDirectory) socket \(s.socketDirectory) user \(s.osUser)"
        }
    }
}

struct DbStart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Create and start the embedded cluster, then apply migrations (other commands do this themselves).")
    @OptionGroup var registry: RegistryOptions

    func run() throws {
        var conf = registry.configuration
        conf.databaseURL = nil
        _ = try RegistryService.open(conf, maxConnections: 1)
        let s = try conf.cluster.status()
        try registry.emit(s) { "running" + (s.pid.map { " (pid \($0))" } ?? "") + " data \(s.dataDirectory)" }
    }
}

struct DbStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the embedded cluster.")
    @OptionGroup var registry: RegistryOptions

    struct Output: Encodable { let stopped: Bool; let data_directory: String }

    func run() throws {
        let cluster = registry.configuration.cluster
        let stopped = try cluster.stop()
        try registry.emit(Output(stopped: stopped, data_directory: cluster.pgData.path)) {
            stopped ? "stopped" : "not running"
        }
    }
}
