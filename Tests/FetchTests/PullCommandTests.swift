import Fetch
import Foundation
import TestSupport
import XCTest

/// `lora pull` run as a user would: the release binary, built before `swift test`.
final class PullCommandTests: FetchTestCase {
    func environment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["LORA_HOME"] = cacheDirectory.path
        env["no_proxy"] = "127.0.0.1,localhost"
        env["LORA_TOKEN"] = nil
        env["HF_TOKEN"] = nil
        return env
    }

    func requireBinary() throws -> URL {
        let binary = TestPaths.loraBinary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            // Fail, never skip: CI builds the binary before `swift test`.
            struct MissingBinary: Error, CustomStringConvertible { let description: String }
            throw MissingBinary(description: "no lora binary at \(binary.path): run `swift build -c release` first")
        }
        return binary
    }

    func testTwoConcurrentPullsDownloadEachFileOnce() throws {
        let binary = try requireBinary()
        let data = Self.randomData(400_000)
        let s = try server { request, _ in
            guard request.path == "/m.gguf" else { return .status(404) }
            var reply = Reply.file(data, etag: "\"e\"", request: request)
            reply.chunkDelay = 0.02  // ~0.5 s, so the two processes overlap
            return reply
        }
        let env = environment()
        let outputs = try (0..<2).map { _ in
            // Started together; each process blocks in runProcess on its own thread.
            Future { try runProcess(binary, ["pull", s.url("/m.gguf")], environment: env) }
        }.map { try $0.get() }

        for r in outputs { XCTAssertEqual(r.status, 0, r.stderr) }
        XCTAssertEqual(outputs[0].stdout, outputs[1].stdout)
        let path = outputs[0].stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), data)
        XCTAssertEqual(s.requests("/m.gguf", method: "GET").count, 1, "both processes downloaded the file")
        try assertCacheHolds([Self.sha(data)])
    }

    func testPullPrintsJSONWithTheSha256() throws {
        let binary = try requireBinary()
        let data = Self.randomData(10_000)
        let s = try server { request, _ in
            request.path == "/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        let r = try runProcess(binary, ["pull", s.url("/m.gguf"), "--json"], environment: environment())
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let files = try XCTUnwrap(object["files"] as? [[String: Any]])
        XCTAssertEqual(files.first?["sha256"] as? String, Self.sha(data))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: try XCTUnwrap(object["path"] as? String))), data)
    }

    func testPullFailureExitsNonZeroNamingURLAndStatus() throws {
        let binary = try requireBinary()
        let s = try server { _, _ in .status(404) }
        let r = try runProcess(binary, ["pull", s.url("/nope.gguf")], environment: environment())
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "")
        XCTAssertTrue(r.stderr.contains(s.url("/nope.gguf")) && r.stderr.contains("404"), r.stderr)
    }

    func testProxyFromTheEnvironmentIsUsed() throws {
        let binary = try requireBinary()
        let data = Self.randomData(3_000)
        // The test server plays the proxy: it receives the absolute URL of a host that does not exist.
        let proxy = try server { request, _ in
            request.path == "http://model.invalid/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        var env = environment()
        env["no_proxy"] = nil
        env["NO_PROXY"] = nil
        env["http_proxy"] = proxy.baseURL
        let r = try runProcess(binary, ["pull", "http://model.invalid/m.gguf"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(proxy.requests("http://model.invalid/m.gguf", method: "GET").count, 1)
        try assertCacheHolds([Self.sha(data)])
    }

    func testPullSendsTheTokenFromTheFlag() throws {
        let binary = try requireBinary()
        let s = try server { request, _ in
            request.headers["authorization"] == "Bearer t0k" ? .file(Data("x".utf8), etag: nil, request: request)
                : .status(401)
        }
        let r = try runProcess(binary, ["pull", s.url("/m.gguf"), "--token", "t0k"], environment: environment())
        XCTAssertEqual(r.status, 0, r.stderr)
    }
}

/// Runs a throwing closure on a new thread; `get()` waits for its result.
final class Future<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, Error>?

    init(_ body: @escaping () throws -> T) {
        Thread { [self] in
            result = Result { try body() }
            done.signal()
        }.start()
    }

    func get() throws -> T {
        done.wait()
        return try result!.get()
    }
}
