import Foundation

/// Where initdb and pg_ctl live: `LORA_PG_BINDIR`, else `pg_config --bindir` (when it holds
/// the server tools: Debian's pg_config may come from libpq-dev alone), else the newest
/// Debian versioned directory /usr/lib/postgresql/<major>/bin.
struct PostgresBinaries {
    let directory: String
    var initdb: String { directory + "/initdb" }
    var pgCtl: String { directory + "/pg_ctl" }

    static func find() throws -> PostgresBinaries {
        var candidates: [String] = []
        if let d = ProcessInfo.processInfo.environment["LORA_PG_BINDIR"], !d.isEmpty { candidates.append(d) }
        for pgConfig in ["/usr/bin/pg_config", "/usr/local/bin/pg_config"]
        where FileManager.default.isExecutableFile(atPath: pgConfig) {
            if let r = try? ProcessRunner.run(pgConfig, ["--bindir"]), r.status == 0, !r.output.isEmpty {
                candidates.append(r.output)
            }
        }
        let root = "/usr/lib/postgresql"
        let majors = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        candidates += majors.map { "\(root)/\($0)/bin" }
        for c in candidates {
            let b = PostgresBinaries(directory: c)
            if FileManager.default.isExecutableFile(atPath: b.initdb) && FileManager.default.isExecutableFile(atPath: b.pgCtl) {
                return b
            }
        }
        throw ClusterError.binariesNotFound(searched: candidates.isEmpty ? [root] : candidates)
    }
}
