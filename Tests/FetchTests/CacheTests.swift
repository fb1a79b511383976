import Fetch
import Foundation
import XCTest

final class CacheTests: FetchTestCase {
    func testCacheHitCostsOneHeadAndNoGet() throws {
        let data = Self.randomData(30_000)
        let s = try server { request, _ in
            request.path == "/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        let first = try fetcher().fetchModel(s.url("/m.gguf"))
        let before = s.requests().count
        let second = try fetcher().fetch(s.url("/m.gguf"))

        let after = s.requests().dropFirst(before)
        XCTAssertEqual(after.map(\.method), ["HEAD"])
        XCTAssertEqual(second.path, first)
        XCTAssertEqual(second.files.first?.fromCache, true)
        XCTAssertEqual(first.resolvingSymlinksInPath().deletingLastPathComponent().path,
                       cacheDirectory.appendingPathComponent("blobs/sha256").resolvingSymlinksInPath().path)
    }

    func testChangedSourceIsDownloadedAgain() throws {
        let v1 = Self.randomData(10_000), v2 = Self.randomData(12_000)
        var current = (v1, "\"1\"")
        let s = try server { request, _ in
            request.path == "/m.gguf" ? .file(current.0, etag: current.1, request: request) : .status(404)
        }
        XCTAssertEqual(try Data(contentsOf: fetcher().fetchModel(s.url("/m.gguf"))), v1)
        current = (v2, "\"2\"")
        XCTAssertEqual(try Data(contentsOf: fetcher().fetchModel(s.url("/m.gguf"))), v2)
        XCTAssertEqual(s.requests("/m.gguf").map(\.method), ["GET", "HEAD", "GET"])
        try assertCacheHolds([Self.sha(v1), Self.sha(v2)])
    }

    func testBearerTokenIsSent() throws {
        let data = Self.randomData(1_000)
        let s = try server { request, _ in
            guard request.headers["authorization"] == "Bearer sekrit" else { return .status(401) }
            return request.path == "/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        let error = try XCTUnwrap(fetchError(s.url("/m.gguf")))
        XCTAssertEqual(error.httpStatus, 401)
        XCTAssertEqual(try Data(contentsOf: fetcher(token: "sekrit").fetchModel(s.url("/m.gguf"))), data)
    }

    func testTokenIsNotSentToAnotherHostAfterARedirect() throws {
        let data = Self.randomData(1_000)
        var port = 0
        let s = try server { request, _ in
            // 127.0.0.1 and localhost are different hosts to the client, though the same server here.
            if request.path == "/m.gguf" { return .status(302, [("Location", "http://localhost:\(port)/cdn/m.gguf")]) }
            return request.path == "/cdn/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        port = s.port
        XCTAssertEqual(try Data(contentsOf: fetcher(token: "sekrit").fetchModel(s.url("/m.gguf"))), data)
        XCTAssertEqual(s.requests("/m.gguf").first?.headers["authorization"], "Bearer sekrit")
        XCTAssertNil(s.requests("/cdn/m.gguf").first?.headers["authorization"], "the token leaked to the CDN")
    }

    func testTokenComesFromLoraTokenThenHFToken() {
        XCTAssertEqual(FetchOptions.tokenFromEnvironment(["LORA_TOKEN": "a", "HF_TOKEN": "b"]), "a")
        XCTAssertEqual(FetchOptions.tokenFromEnvironment(["HF_TOKEN": "b"]), "b")
        XCTAssertNil(FetchOptions.tokenFromEnvironment(["LORA_TOKEN": " "]))
    }

    func testFileURLIsCopiedIntoTheCacheAndRevalidatedWithoutNetwork() throws {
        let data = Self.randomData(70_000)
        let source = cacheDirectory.appendingPathComponent("source.gguf")
        try data.write(to: source)
        let spec = source.absoluteString
        XCTAssertTrue(spec.hasPrefix("file://"))
        let first = try fetcher().fetch(spec)
        XCTAssertEqual(try Data(contentsOf: first.path), data)
        XCTAssertEqual(first.path.lastPathComponent, "source.gguf")
        XCTAssertEqual(try fetcher().fetch(spec).files.first?.fromCache, true)
        try assertCacheHolds([Self.sha(data)])
    }

    func testLocalPathIsReturnedAsIs() throws {
        let file = cacheDirectory.appendingPathComponent("local.gguf")
        try Data([1, 2, 3]).write(to: file)
        XCTAssertFalse(ModelFetcher.isRemote(file.path))
        XCTAssertEqual(try fetcher().fetchModel(file.path), file)
    }
}
