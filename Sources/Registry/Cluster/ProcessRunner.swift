import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a helper program (initdb, pg_ctl, useradd) to completion with posix_spawn + waitpid.
///
/// Not Foundation's Process: on Linux it learns that a child exited from a socket the child
/// inherits, and `pg_ctl start` leaves a server holding every inherited descriptor, so the
/// wait would never end. Output goes to a temporary file, never a pipe, for the same reason,
/// and every descriptor above stderr is closed in the child.
enum ProcessRunner {
    struct Result {
        let status: Int32
        let output: String
    }

    static func run(_ executable: String, _ arguments: [String], asUser user: String? = nil,
                    directory: URL? = nil) throws -> Result {
        var argv: [String]
        if let user {
            // runuser (util-linux) switches user without PAM prompts; root only.
            if let runuser = ["/usr/sbin/runuser", "/sbin/runuser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
                argv = [runuser, "-u", user, "--", executable] + arguments
            } else {
                argv = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups", "--", executable] + arguments
            }
        } else {
            argv = [executable] + arguments
        }
        if let directory {
            // coreutils env -C: start the tool in a directory its user can enter (not root's home).
            argv = ["/usr/bin/env", "-C", directory.path] + argv
        }
        var env = ProcessInfo.processInfo.environment
        // Never let a caller's libpq settings leak into the server tools.
        for k in env.keys where k.hasPrefix("PG") { env.removeValue(forKey: k) }
        env["LC_ALL"] = "C"

        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("lora-cmd-\(getpid())-\(UUID().uuidString).out")
        defer { unlink(outPath.path) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else inherited: a server started by pg_ctl would hold any descriptor it got
        // forever, e.g. the socket Foundation's Process (in whoever ran lora) watches to learn
        // that lora exited.
        closeInheritedDescriptors(&actions)

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        guard rc == 0 else {
            throw ClusterError.commandFailed(command: argv.joined(separator: " "), status: rc, output: "posix_spawn failed: errno \(rc)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { throw ClusterError.commandFailed(command: argv[0], status: -1, output: "waitpid failed: errno \(errno)") }
        }
        // WIFEXITED / WEXITSTATUS by hand (the macros are not imported).
        let exitCode: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let text = (try? String(contentsOf: outPath, encoding: .utf8)) ?? ""
        return Result(status: exitCode, output: text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc >= 2.34 has posix_spawn_file_actions_addclosefrom_np (not visible to Swift's Glibc
    /// module, hence dlsym); otherwise every descriptor listed in /proc/self/fd is closed (glibc
    /// ignores a close action on a descriptor closed meanwhile).
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let f = unsafeBitCast(sym, to: AddCloseFrom.self)
            if f(&actions, 3) == 0 { return }
        }
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in fds where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    }
}
