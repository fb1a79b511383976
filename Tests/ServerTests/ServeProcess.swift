import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TestSupport
import XCTest

/// A `lora serve` process started as users start it (port 0), for tests over a real socket.
final class ServeProcess {
    let process = Process()
    private let lock = NSLock()
    private var stdoutText = ""
    let stderrFile: URL
    private(set) var port = 0

    init(_ arguments: [String], environment: [String: String], scratch: URL) throws {
        process.executableURL = TestPaths.loraBinary
        process.arguments = ["serve", "--port", "0"] + arguments
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        stderrFile = scratch.appendingPathComponent("serve-\(UUID().uuidString.prefix(6)).err")
        FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        out.fileHandleForReading.readabilityHandler = { [weak self] h in
            let data = h.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock(); self.stdoutText += String(decoding: data, as: UTF8.self); self.lock.unlock()
        }
        try process.run()
    }

    var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    /// Waits (bounded) for the `listening on http://HOST:PORT` line and returns the port.
    func waitForListening(timeout: Double = 120) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            lock.lock(); let text = stdoutText; lock.unlock()
            if let m = text.firstMatch(of: #/listening on http://[0-9.]+:([0-9]+)/#), let p = Int(m.output.1) {
                port = p
                return p
            }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        throw XCTSkipFailure("lora serve did not print its address (running: \(process.isRunning)); stderr:\n\(stderr)")
    }

    /// Waits (bounded) for the process to exit and returns its status.
    func waitForExit(timeout: Double = 60) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { throw XCTSkipFailure("lora serve still running \(timeout) s after the signal; stderr:\n\(stderr)") }
        return process.terminationStatus
    }

    func signal(_ sig: Int32) { Glibc.kill(process.processIdentifier, sig) }

    func kill() {
        if process.isRunning { signal(SIGKILL); process.waitUntilExit() }
    }

    func get(_ path: String) async throws -> String {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.get(path).body.map { String(buffer: $0) } ?? ""
        }
    }

    /// One request on its own connection; the body as text.
    func post(_ path: String, _ json: String) async throws -> (HTTPResponse.Status, String) {
        let (status, _, body) = try await postWithHeaders(path, json)
        return (status, body)
    }

    func postWithHeaders(_ path: String, _ json: String) async throws -> (HTTPResponse.Status, HTTPFields, String) {
        try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(300))) { client in
            let r = try await client.post(path, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
            return (r.status, r.headers, r.body.map { String(buffer: $0) } ?? "")
        }
    }
}

/// A failure thrown as an error (with its message) from a helper.
struct XCTSkipFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
