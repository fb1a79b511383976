import Foundation

/// Runs a helper program (initdb, pg_ctl, useradd) to completion. Output goes to a temporary
/// file, not a pipe: pg_ctl's server child could inherit a pipe and keep it open forever.
enum ProcessRunner {
    struct Result {
        let status: Int32
        let output: String
    }

    static func run(_ executable: String, _ arguments: [String], asUser user: String? = nil,
                    directory: URL? = nil, environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        if let user {
            // runuser (util-linux) switches user without PAM prompts; root only.
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser"].first { FileManager.default.isExecutableFile(atPath: $0) }
            if let runuser {
                p.executableURL = URL(fileURLWithPath: runuser)
                p.arguments = ["-u", user, "--", executable] + arguments
            } else {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                p.arguments = ["--reuid=\(user)", "--regid=\(user)", "--init-groups", "--", executable] + arguments
            }
        } else {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
        }
        if let directory { p.currentDirectoryURL = directory }
        var env = environment ?? ProcessInfo.processInfo.environment
        // Never let a caller's libpq settings leak into the server tools.
        for k in env.keys where k.hasPrefix("PG") { env.removeValue(forKey: k) }
        env["LC_ALL"] = "C"
        p.environment = env
        let outPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("lora-cmd-\(getpid())-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: outPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outPath) }
        let out = try FileHandle(forWritingTo: outPath)
        defer { try? out.close() }
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = (try? String(contentsOf: outPath, encoding: .utf8)) ?? ""
        return Result(status: p.terminationStatus, output: text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
