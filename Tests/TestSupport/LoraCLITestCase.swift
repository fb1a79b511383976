import Foundation
import Model
import XCTest

/// Tests that run the release `lora` binary as users do, against the embedded cluster of a fresh
/// data directory (no DATABASE_URL): `lora(...)` runs a verb with `--data-dir`, `json(...)` parses
/// its `--json` output; the cluster is stopped and the directory removed after each test.
open class LoraCLITestCase: XCTestCase {
    public var dataDir: URL!
    public var scratch: URL!
    /// Processes a test started in the background; killed at tear-down if still running.
    public var started: [Process] = []
    /// Recorded as the actor of registry changes (LORA_ACTOR).
    open var actor: String { "cli-test" }
    /// Where every `lora` run of the test keeps its registry: the data directory (an embedded cluster
    /// created from nothing), or whatever a subclass adds (a test database's `--database-url`).
    open var registryArguments: [String] { ["--data-dir", dataDir.path] }

    override open func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: TestPaths.loraBinary.path) else {
            struct MissingBinary: Error, CustomStringConvertible { let description: String }
            throw MissingBinary(description: "build the release binary first: swift build -c release (looked at \(TestPaths.loraBinary.path))")
        }
        dataDir = URL(fileURLWithPath: "/tmp/lora-cli-\(getpid())-\(UUID().uuidString.prefix(6))")
        scratch = dataDir.appendingPathComponent("scratch")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override open func tearDown() {
        for p in started where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        started = []
        if let dataDir {
            _ = try? runProcess(TestPaths.loraBinary, ["db", "stop", "--data-dir", dataDir.path], environment: environment)
            try? FileManager.default.removeItem(at: dataDir)
        }
    }

    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        env["LORA_ACTOR"] = actor
        return env
    }

    /// Runs `lora ARGS --data-dir DIR`, asserting success (or failure with `expectFailure`).
    @discardableResult
    public func lora(_ args: [String], expectFailure: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try runProcess(TestPaths.loraBinary, args + registryArguments, environment: environment)
        if expectFailure {
            XCTAssertNotEqual(r.status, 0, "lora \(args.joined(separator: " ")) should fail", file: file, line: line)
        } else {
            XCTAssertEqual(r.status, 0, "lora \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        }
        return r
    }

    /// `lora ARGS --json` parsed as a JSON object.
    public func json(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let r = try lora(args + ["--json"], file: file, line: line)
        guard let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            XCTFail("not a JSON object: \(r.stdout)", file: file, line: line)
            return [:]
        }
        return obj
    }

    /// Waits for a process to exit (failing after `timeout` seconds).
    public func waitExit(_ p: Process, timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "process still running after \(timeout) s", file: file, line: line)
    }

    /// Polls until `condition` holds (failing after `timeout` seconds): a bounded wait for something
    /// another process does, never a sleep standing in for it.
    public func waitUntil(_ what: String, timeout: Double = 60, file: StaticString = #filePath, line: UInt = #line,
                          _ condition: () throws -> Bool) rethrows {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(100_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
    }
}

/// F32 tensors of a safetensors file by name, read with the project's own reader (which checks the
/// header, dtypes and offsets).
public func readSafetensorsF32(_ url: URL) throws -> [String: [Float]] {
    let file = try SafetensorsFile(url)
    var out: [String: [Float]] = [:]
    for name in file.names { out[name] = try file.floats(name) }
    return out
}
