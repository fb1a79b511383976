import Fetch
import Foundation
import XCTest

/// Shared set-up: a fresh cache directory per test, short timeouts, and cache-integrity assertions.
class FetchTestCase: XCTestCase {
    var cacheDirectory: URL!
    var servers: [TestHTTPServer] = []

    /// Short timeouts and backoff so failure cases finish in about a second.
    static let testOptions = FetchOptions(connectTimeout: 2, lowSpeedLimit: 1024, lowSpeedTime: 1, maxAttempts: 4,
                                          initialBackoff: 0.05, maxBackoff: 0.2, parallelDownloads: 4)

    override func setUpWithError() throws {
        cacheDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lora-fetch-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        // The test server is local: never route it through a proxy from the environment.
        setenv("no_proxy", "127.0.0.1,localhost", 1)
        setenv("NO_PROXY", "127.0.0.1,localhost", 1)
    }

    override func tearDownWithError() throws {
        servers.forEach { $0.stop() }
        servers = []
        try? FileManager.default.removeItem(at: cacheDirectory)
    }

    func server(_ handler: @escaping TestHTTPServer.Handler) throws -> TestHTTPServer {
        let s = try TestHTTPServer(handler: handler)
        servers.append(s)
        return s
    }

    func fetcher(token: String? = nil, options: FetchOptions = FetchTestCase.testOptions) -> ModelFetcher {
        ModelFetcher(cacheDirectory: cacheDirectory, token: token, options: options)
    }

    var cache: ContentCache { ContentCache(root: cacheDirectory) }

    static func randomData(_ count: Int) -> Data {
        var g = SystemRandomNumberGenerator()
        return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    static func sha(_ data: Data) -> String { ContentCache.sha256(data) }

    /// Nothing but complete, verified blobs is in the cache: every blob hashes to its name,
    /// and the blob set is exactly `expected`.
    func assertCacheHolds(_ expected: Set<String>, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try cache.corruptBlobs(), [], "corrupt blobs in the cache", file: file, line: line)
        XCTAssertEqual(Set(cache.blobs().map(\.lastPathComponent)), expected, "blobs in the cache", file: file, line: line)
    }

    /// Fetches and returns the error, failing the test if the fetch succeeded.
    func fetchError(_ spec: String, fetcher f: ModelFetcher? = nil, file: StaticString = #filePath,
                    line: UInt = #line) -> FetchError? {
        do {
            let path = try (f ?? fetcher()).fetchModel(spec)
            XCTFail("expected an error, got \(path.path)", file: file, line: line)
            return nil
        } catch let error as FetchError {
            return error
        } catch {
            XCTFail("expected a FetchError, got \(error)", file: file, line: line)
            return nil
        }
    }
}
