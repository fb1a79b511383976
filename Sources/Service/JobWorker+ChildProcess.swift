import Foundation
import Model
import Registry
#if canImport(Glibc)
import Glibc
#endif

/// A job in a child process: the worker claims the job and heartbeats it; a child (`lora job-run`,
/// the worker's own binary) trains, stores checkpoints and events, and registers the result under
/// the same attempt guards as an in-process job. A crash of the child (a signal, an allocation
/// failing under its address-space limit, the kernel's OOM killer) ends only that attempt: the
/// worker records it as failed, with the signal and the last lines of the child's stderr.
extension JobWorker {
    public enum Isolation: Sendable {
        case inProcess
        case childProcess(ChildProcess)
    }

    /// How the worker starts the process that runs one attempt.
    public struct ChildProcess: Sendable {
        /// The executable (the worker's own binary) and the arguments before the job's own
        /// (`--job-id N --attempt A [--memory-limit BYTES] --parent-pid P` are appended).
        public var executable: String
        public var arguments: [String]
        /// The child's environment; DATABASE_URL is set to the worker's connection string.
        public var environment: [String: String]
        /// The child's address-space limit in bytes (RLIMIT_AS, set by the child before it
        /// loads anything), nil for none.
        public var memoryLimit: Int?
        /// Lines of the child's stderr kept for the job's events.
        public var stderrLines = 20

        public init(executable: String, arguments: [String], environment: [String: String], memoryLimit: Int?) {
            self.executable = executable; self.arguments = arguments
            self.environment = environment; self.memoryLimit = memoryLimit
        }
    }

    /// The child's side: reads the claimed job back (nil when the attempt is no longer running)
    /// and runs it as an in-process worker would; a stop arrives as `JobChild.stopSignal`, a
    /// worker shutdown as SIGTERM, and a worker that died (`parent` no longer our parent) stops
    /// the job at its next micro-batch.
    @discardableResult
    public func runAttempt(jobID: Int, attempt: Int, parent: pid_t?, prepare: (ClaimedJob) throws -> Void = { _ in }) throws -> Bool {
        guard let job = try registry.pool.withConnection({ try store.claimedJob(id: jobID, attempt: attempt, on: $0) }) else {
            logger.warning("job \(jobID) attempt \(attempt) is no longer running under this attempt; nothing to do")
            return false
        }
        try prepare(job)
        let control = Control(external: { JobChild.stopReceived || (parent.map { getppid() != $0 } ?? false) })
        run(job, control: control)
        return true
    }

    /// The worker's side: starts the child, relays stop and shutdown to it (through `control`,
    /// from the heartbeat thread), waits for it, and fails the attempt if it ended abnormally.
    func runInChild(_ job: ClaimedJob, worker: String, child: ChildProcess, control: Control) {
        var args = [child.executable] + child.arguments + ["--job-id", String(job.id), "--attempt", String(job.attempt),
                                                         "--parent-pid", String(getpid())]
        if let m = child.memoryLimit { args += ["--memory-limit", String(m)] }
        var env = child.environment
        env["DATABASE_URL"] = registry.pool.conninfo
        // The crash report is the runtime's own message; the backtracer (seconds per crash, and an
        // allocation of its own under the memory limit) only when the user asked for it.
        if env["SWIFT_BACKTRACE"] == nil { env["SWIFT_BACKTRACE"] = "enable=no" }

        let outcome: ChildOutcome
        do {
            outcome = try JobChild.spawnAndWait(args, environment: env, keepLines: child.stderrLines,
                                                prefix: "job \(job.id): ", onStart: { control.attach(child: $0) })
        } catch {
            outcome = ChildOutcome(status: .spawnFailed("\(error)"), stderrTail: [])
        }
        control.detach()

        guard let conn = try? Connection(registry.pool.conninfo) else {
            logger.error("job \(job.id): cannot connect to record how its process ended (\(outcome.status.description))")
            return
        }
        // Still this attempt's and running: the child ended without recording how (a crash), or
        // exited cleanly during a shutdown without returning the job.
        guard let rec = try? store.job(id: job.id, on: conn), rec.status == .running, rec.attempt == job.attempt else { return }
        if outcome.status == .exited(0) && options.shouldExit() {
            _ = try? store.release(job: job.id, attempt: job.attempt, on: conn)
            return
        }
        var error = outcome.status.description
        if case .signaled(SIGKILL) = outcome.status {
            error += " (the kernel's OOM killer sends SIGKILL"
            if let m = child.memoryLimit { error += "; the job's memory limit is \(m) bytes" }
            error += ")"
        }
        if let last = outcome.stderrTail.last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            error += "; last line of its stderr: \(last)"
        }
        var data: [String: JSONValue] = ["stderr": .array(outcome.stderrTail.map { .string($0) })]
        switch outcome.status {
        case let .signaled(s): data["signal"] = .number(Double(s)); data["signal_name"] = .string(JobChild.signalName(s))
        case let .exited(c): data["exit_status"] = .number(Double(c))
        case .spawnFailed: break
        }
        try? store.addEvent(job: job.id, attempt: job.attempt, level: .error, type: .message,
                            message: "job process output, last \(outcome.stderrTail.count) line(s) of stderr:\n"
                                + outcome.stderrTail.joined(separator: "\n"),
                            data: .object(data), on: conn)
        let backoff = options.retryBackoff * pow(2, Double(max(0, job.attempt - 1)))
        logger.error("job \(job.id) attempt \(job.attempt) failed: \(error)")
        _ = try? store.markFailed(job: job.id, attempt: job.attempt, error: error, backoff: backoff, on: conn)
    }
}

/// How a job's child process ended, and the last lines it wrote to stderr.
struct ChildOutcome {
    enum Status: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        case spawnFailed(String)

        var description: String {
            switch self {
            case let .exited(c): return "job process exited with status \(c)"
            case let .signaled(s): return "job process killed by signal \(s) (\(JobChild.signalName(s)))"
            case let .spawnFailed(why): return "job process could not be started: \(why)"
            }
        }
    }
    let status: Status
    let stderrTail: [String]
}

/// Process plumbing of a job's child: signals, the address-space limit, spawning and reaping.
public enum JobChild {
    /// The worker's "stop: the job is no longer yours" (cancelled, or rescued elsewhere).
    public static let stopSignal = SIGUSR1

    nonisolated(unsafe) private static var stopped: Int32 = 0

    /// In the child: `stopSignal` sets the flag `stopReceived` reports.
    public static func installStopHandler() {
        signal(stopSignal) { _ in JobChild.stopped = 1 }
    }

    public static var stopReceived: Bool { stopped != 0 }

    /// Limits this process's address space (RLIMIT_AS) to `bytes`: an allocation beyond it
    /// fails, which ends this process only. RLIMIT_AS and not a cgroup: it needs no privilege
    /// and no writable cgroup hierarchy (containers rarely delegate one), and it applies to one
    /// process; it counts reserved address space (thread stacks, malloc arenas), so it is set
    /// above what a job touches.
    public static func limitAddressSpace(bytes: Int) throws {
        var lim = rlimit(rlim_cur: rlim_t(bytes), rlim_max: rlim_t(bytes))
        guard setrlimit(Int32(RLIMIT_AS.rawValue), &lim) == 0 else {
            throw ModelError.invalidArgument("--memory-limit \(bytes): setrlimit(RLIMIT_AS) failed: \(String(cString: strerror(errno)))")
        }
    }

    static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGKILL: "SIGKILL", SIGBUS: "SIGBUS",
                                      SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGFPE: "SIGFPE", SIGTERM: "SIGTERM",
                                      SIGINT: "SIGINT", SIGUSR1: "SIGUSR1", SIGPIPE: "SIGPIPE"]
        let text = strsignal(s).map { String(cString: $0) } ?? "unknown signal"
        return "\(names[s] ?? "signal \(s)"): \(text)"
    }

    private static let spawnLock = NSLock()

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts `argv` with its stdout on this process's stderr, its stderr read line by line
    /// (forwarded to this process's stderr with `prefix`, the last `keepLines` kept), calls
    /// `onStart` with its pid, and waits for it to end.
    static func spawnAndWait(_ argv: [String], environment: [String: String], keepLines: Int, prefix: String,
                             onStart: (pid_t) -> Void) throws -> ChildOutcome {
        // Pipe creation and spawn under one lock: a child spawned by another slot in between must not
        // inherit this pipe's write end (it would hold our reader open until it exits).
        spawnLock.lock()
        var locked = true
        defer { if locked { spawnLock.unlock() } }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)          // its stdout: our stderr
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)   // its stderr: the pipe (dup2 clears CLOEXEC)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGPIPE, stopSignal] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cArgs, cEnv)
        close(writeEnd)
        spawnLock.unlock()
        locked = false
        guard rc == 0 else {
            close(readEnd)
            throw SpawnError(description: "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))")
        }
        onStart(pid)

        // The reader runs until the pipe's end of file (the child and nothing else holds its write end).
        let tail = LineTail(keep: keepLines, prefix: prefix)
        let readerDone = DispatchSemaphore(value: 0)
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n > 0 { tail.append(buffer[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
            }
            close(readEnd)
            tail.flush()
            readerDone.signal()
        }
        reader.start()

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { break }
        }
        readerDone.wait()
        // The wait status's layout (glibc's WIFEXITED / WTERMSIG): low 7 bits the terminating signal, 0 if it exited.
        let signal = status & 0x7f
        let result: ChildOutcome.Status = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
        return ChildOutcome(status: result, stderrTail: tail.lines)
    }
}

/// The last lines of a stream, each forwarded to stderr as it completes.
final class LineTail: @unchecked Sendable {
    private let keep: Int
    private let prefix: String
    private var partial: [UInt8] = []
    private(set) var lines: [String] = []

    init(keep: Int, prefix: String) { self.keep = keep; self.prefix = prefix }

    func append(_ bytes: ArraySlice<UInt8>) {
        for b in bytes {
            if b == UInt8(ascii: "\n") { emit() } else if partial.count < 4096 { partial.append(b) }
        }
    }

    func flush() { if !partial.isEmpty { emit() } }

    private func emit() {
        let line = String(decoding: partial, as: UTF8.self)
        partial.removeAll(keepingCapacity: true)
        FileHandle.standardError.write(Data((prefix + line + "\n").utf8))
        lines.append(line)
        if lines.count > keep { lines.removeFirst(lines.count - keep) }
    }
}
