import Foundation

/// A test-only hook for the crash-consistency tests, inert unless `LORA_TEST_PAUSE_AT` is set.
///
/// With `LORA_TEST_PAUSE_AT=POINT` (or `POINT#N`: the Nth time this process reaches it) and
/// `LORA_TEST_PAUSE_MARKER=PATH`, the process reaching POINT creates PATH holding its pid and then
/// blocks until it is killed, in the middle of whatever transaction it has open. PATH is created
/// atomically and only once (a hard link of a complete temporary file): a process finding it
/// already there goes on, so a retried job or a second process passes through. A test waits for
/// PATH (no sleep), SIGKILLs the pid it names, and checks the database.
///
/// Points (each inside the transaction named):
/// - `register.after-chunks`: a version's artifact and its chunks inserted, the version row not yet
///   (`RegistryStore.registerVersion`, used by `lora import` and job registration);
/// - `register.before-commit`: the version row and `latest` moved, before COMMIT;
/// - `alias.moved`: an alias row changed, its history entry not yet written (promote, rollback);
/// - `checkpoint.after-chunks`: a job checkpoint's row and chunks inserted, its digest and size not
///   yet, the job's older checkpoints not yet deleted (`JobStore.saveCheckpoint`).
public enum TestPausePoint {
    private static let spec: (point: String, hit: Int, marker: String)? = {
        let env = ProcessInfo.processInfo.environment
        guard let at = env["LORA_TEST_PAUSE_AT"], !at.isEmpty, let marker = env["LORA_TEST_PAUSE_MARKER"], !marker.isEmpty else {
            return nil
        }
        if let hash = at.lastIndex(of: "#"), let n = Int(at[at.index(after: hash)...]), n >= 1 {
            return (String(at[..<hash]), n, marker)
        }
        return (at, 1, marker)
    }()
    private static let lock = NSLock()
    nonisolated(unsafe) private static var hits: [String: Int] = [:]

    /// Marks `point` as reached; blocks forever when the test hook names it (see the type's comment).
    public static func reach(_ point: String) {
        guard let spec, spec.point == point else { return }
        lock.lock()
        let n = hits[point, default: 0] + 1
        hits[point] = n
        lock.unlock()
        guard n == spec.hit else { return }
        let tmp = spec.marker + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: Data("\(getpid())\n".utf8)) else { return }
        defer { unlink(tmp) }
        guard link(tmp, spec.marker) == 0 else { return }
        unlink(tmp)
        FileHandle.standardError.write(Data("paused at \(point) (LORA_TEST_PAUSE_AT), pid \(getpid()): waiting to be killed\n".utf8))
        while true { pause() }
    }
}
