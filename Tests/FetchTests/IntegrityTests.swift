import Fetch
import Foundation
import XCTest

final class IntegrityTests: FetchTestCase {
    /// Hugging Face-style: /resolve/ answers 302 with the LFS sha256 in X-Linked-Etag; the CDN serves the bytes
    /// with an unrelated ETag.
    func hubServer(_ data: Data, linkedEtag: String) throws -> TestHTTPServer {
        try server { request, _ in
            if request.path.hasPrefix("/org/m/resolve/") {
                return .status(302, [("Location", "/cdn/blob"), ("X-Linked-Etag", linkedEtag),
                                     ("X-Linked-Size", "\(data.count)"), ("ETag", "\"abc\"")])
            }
            if request.path == "/cdn/blob" { return .file(data, etag: "\"cdn-tag\"", request: request) }
            return .status(404)
        }
    }

    func testXLinkedEtagOnTheRedirectVerifiesTheDownload() throws {
        let data = Self.randomData(64_000)
        let s = try hubServer(data, linkedEtag: "\"\(Self.sha(data))\"")
        let model = try fetcher().fetch(s.url("/org/m/resolve/main/model.gguf"))

        XCTAssertEqual(model.files.map(\.verifiedBy), ["X-Linked-Etag"])
        XCTAssertEqual(model.path.lastPathComponent, "model.gguf")
        XCTAssertEqual(try Data(contentsOf: model.path), data)
        XCTAssertEqual(s.requests("/cdn/blob", method: "GET").count, 1)
        XCTAssertEqual(s.requests("/cdn/blob.sha256").count + s.requests("/org/m/resolve/main/model.gguf.sha256").count,
                       0, "no sidecar is needed when the server vouches for the hash")
        try assertCacheHolds([Self.sha(data)])
    }

    func testCacheHitIsConfirmedByXLinkedEtagWithOneHead() throws {
        let data = Self.randomData(20_000)
        let s = try hubServer(data, linkedEtag: Self.sha(data))
        let url = s.url("/org/m/resolve/main/model.gguf")
        _ = try fetcher().fetch(url)
        let before = s.requests().count
        let again = try fetcher().fetch(url)
        XCTAssertEqual(again.files.first?.verifiedBy, "X-Linked-Etag")
        XCTAssertEqual(again.files.first?.fromCache, true)
        // The HEAD follows the redirect like a GET would; no body is transferred.
        XCTAssertEqual(s.requests().dropFirst(before).map(\.method), ["HEAD", "HEAD"])
        XCTAssertEqual(s.requests("/cdn/blob", method: "GET").count, 1)
    }

    func testWrongXLinkedEtagDeletesTheDownloadAndNamesBothHashes() throws {
        let data = Self.randomData(64_000)
        let wrong = String(repeating: "ab", count: 32)
        let s = try hubServer(data, linkedEtag: "\"\(wrong)\"")
        let error = try XCTUnwrap(fetchError(s.url("/org/m/resolve/main/model.gguf")))

        guard case let .checksumMismatch(_, expected, actual, source) = error else { return XCTFail("\(error)") }
        XCTAssertEqual(expected, wrong)
        XCTAssertEqual(actual, Self.sha(data))
        XCTAssertEqual(source, "X-Linked-Etag")
        XCTAssertTrue(error.description.contains(wrong) && error.description.contains(Self.sha(data)), error.description)
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [], "the mismatching bytes were kept")
    }

    func testWrongXLinkedSizeFailsAndLeavesNothingInTheCache() throws {
        let data = Self.randomData(10_000)
        let s = try server { request, _ in
            if request.path == "/org/m/resolve/main/model.gguf" {
                return .status(302, [("Location", "/cdn/blob"), ("X-Linked-Size", "\(data.count + 1)")])
            }
            return request.path == "/cdn/blob" ? .file(data, etag: "\"t\"", request: request) : .status(404)
        }
        let error = try XCTUnwrap(fetchError(s.url("/org/m/resolve/main/model.gguf")))
        XCTAssertEqual(error, .sizeMismatch(url: s.url("/org/m/resolve/main/model.gguf"),
                                            expected: Int64(data.count + 1), actual: Int64(data.count)))
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testFortyHexETagAndPlainETagAreNotTreatedAsSha256() throws {
        let data = Self.randomData(5_000)
        // A git blob SHA-1 as ETag (the hub's small files), and a 64-hex plain ETag that is not the content's hash.
        let sha1Like = String(repeating: "1f", count: 20), fake = String(repeating: "cd", count: 32)
        let s = try server { request, _ in
            if request.path == "/a.json" { return .file(data, etag: "\"\(sha1Like)\"", request: request) }
            if request.path == "/b.json" { return .file(data, etag: "\"\(fake)\"", request: request) }
            return .status(404)
        }
        XCTAssertEqual(try Data(contentsOf: fetcher().fetchModel(s.url("/a.json"))), data)
        XCTAssertEqual(try Data(contentsOf: fetcher().fetchModel(s.url("/b.json"))), data)
        try assertCacheHolds([Self.sha(data)])
    }

    func testMatchingSidecarVerifiesTheDownload() throws {
        let data = Self.randomData(20_000)
        let s = try server { request, _ in
            switch request.path {
            case "/m.gguf": return .file(data, etag: "\"e\"", request: request)
            case "/m.gguf.sha256": return Reply(status: 200, body: Data("\(Self.sha(data))  m.gguf\n".utf8))
            default: return .status(404)
            }
        }
        let model = try fetcher().fetch(s.url("/m.gguf"))
        XCTAssertEqual(model.files.first?.verifiedBy, "sidecar \(s.url("/m.gguf.sha256"))")
        try assertCacheHolds([Self.sha(data)])
    }

    func testWrongSidecarFailsAndLeavesNothingInTheCache() throws {
        let data = Self.randomData(20_000)
        let wrong = String(repeating: "0", count: 64)
        let s = try server { request, _ in
            switch request.path {
            case "/m.gguf": return .file(data, etag: "\"e\"", request: request)
            case "/m.gguf.sha256": return Reply(status: 200, body: Data("\(wrong)\n".utf8))
            default: return .status(404)
            }
        }
        let error = try XCTUnwrap(fetchError(s.url("/m.gguf")))
        XCTAssertEqual(error, .checksumMismatch(url: s.url("/m.gguf"), expected: wrong, actual: Self.sha(data),
                                                source: "sidecar \(s.url("/m.gguf.sha256"))"))
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testMissingSidecarIsFineAndTheHashIsStillRecorded() throws {
        let data = Self.randomData(20_000)
        let s = try server { request, _ in
            request.path == "/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        let model = try fetcher().fetch(s.url("/m.gguf"))
        XCTAssertEqual(model.files.first?.sha256, Self.sha(data))
        XCTAssertNil(model.files.first?.verifiedBy)
        XCTAssertEqual(s.requests("/m.gguf.sha256").count, 1)
        XCTAssertEqual(try ContentCache.sha256(ofFile: model.path), Self.sha(data))
        try assertCacheHolds([Self.sha(data)])
    }

    func testPinnedHashMismatchFailsNamingBothHashes() throws {
        let data = Self.randomData(8_000)
        let pinned = String(repeating: "e", count: 64)
        let s = try server { request, _ in .file(data, etag: "\"e\"", request: request) }
        let error = try XCTUnwrap(fetchError(s.url("/m.gguf") + "#sha256=" + pinned))
        XCTAssertEqual(error, .checksumMismatch(url: s.url("/m.gguf"), expected: pinned, actual: Self.sha(data),
                                                source: "model spec"))
        try assertCacheHolds([])
    }

    func testPinnedHashWithTheBlobCachedCostsNoRequest() throws {
        let data = Self.randomData(8_000)
        let s = try server { request, _ in
            request.path == "/m.gguf" ? .file(data, etag: "\"e\"", request: request) : .status(404)
        }
        let spec = s.url("/m.gguf") + "#sha256=" + Self.sha(data).uppercased()
        let first = try fetcher().fetch(spec)
        XCTAssertEqual(first.files.first?.verifiedBy, "model spec")
        let before = s.requests().count
        let second = try fetcher().fetch(spec)
        XCTAssertEqual(s.requests().count, before, "a pinned cache hit must not touch the network")
        XCTAssertEqual(second.path, first.path)
        XCTAssertEqual(second.files.first?.fromCache, true)
    }
}
