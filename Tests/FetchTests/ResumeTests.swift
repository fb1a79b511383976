import Fetch
import Foundation
import XCTest

final class ResumeTests: FetchTestCase {
    func testDropMidBodyResumesWithRangeAndIfRangeTransferringTheFileOnce() throws {
        let data = Self.randomData(200_000)
        let s = try server { request, nth in
            var reply = Reply.file(data, etag: "\"v1\"", request: request)
            if nth == 1 { reply.dropAfter = 80_000 }
            return reply
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))

        XCTAssertEqual(try Data(contentsOf: path), data)
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 2)
        XCTAssertNil(gets[0].headers["range"])
        XCTAssertEqual(gets[1].headers["range"], "bytes=80000-")
        XCTAssertEqual(gets[1].headers["if-range"], "\"v1\"")
        XCTAssertEqual(s.bytesSent("/m.gguf"), data.count, "the resumed transfer re-sent bytes")
        try assertCacheHolds([Self.sha(data)])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testChangedValidatorRestartsFromByteZero() throws {
        let old = Self.randomData(150_000), new = Self.randomData(120_000)
        let s = try server { request, nth in
            if nth == 1 {
                var reply = Reply.file(old, etag: "\"old\"", request: request)
                reply.dropAfter = 60_000
                return reply
            }
            // The file changed: If-Range "old" no longer matches, so the server sends all of the new one.
            return Reply.file(new, etag: "\"new\"", request: request)
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))

        XCTAssertEqual(try Data(contentsOf: path), new)
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 2)
        XCTAssertEqual(gets[1].headers["if-range"], "\"old\"")
        try assertCacheHolds([Self.sha(new)])
    }

    func testServerIgnoringIfRangeWithANewETagMakesTheClientStartOver() throws {
        let old = Self.randomData(150_000), new = Self.randomData(150_000)
        let s = try server { request, nth in
            if nth == 1 {
                var reply = Reply.file(old, etag: "\"old\"", request: request)
                reply.dropAfter = 60_000
                return reply
            }
            // A broken server: honours Range but ignores If-Range, serving the tail of a different file.
            var stripped = request
            stripped.headers["if-range"] = nil
            return Reply.file(new, etag: "\"new\"", request: stripped)
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))

        XCTAssertEqual(try Data(contentsOf: path), new, "old and new bytes were spliced together")
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 3)
        XCTAssertNil(gets[2].headers["range"], "the restart must ask for the whole file")
        try assertCacheHolds([Self.sha(new)])
    }

    func testPartialLeftByAnEarlierProcessIsResumedAndVerified() throws {
        let data = Self.randomData(100_000)
        var dropping = true
        let s = try server { request, _ in
            var reply = Reply.file(data, etag: "\"e\"", request: request)
            if dropping { reply.dropAfter = 30_000 }
            return reply
        }
        // First run gives up after one dropped attempt, keeping its bytes for later.
        let impatient = FetchOptions(connectTimeout: 2, lowSpeedTime: 1, maxAttempts: 1, initialBackoff: 0.01)
        XCTAssertNotNil(fetchError(s.url("/m.gguf"), fetcher: fetcher(options: impatient)))
        XCTAssertEqual(cache.partialDownloads().count, 1)
        try assertCacheHolds([])

        dropping = false
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        XCTAssertEqual(s.requests("/m.gguf", method: "GET").last?.headers["range"], "bytes=30000-")
        try assertCacheHolds([Self.sha(data)])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testLastModifiedIsTheIfRangeValidatorWhenThereIsNoETag() throws {
        let data = Self.randomData(90_000)
        let date = "Wed, 21 Oct 2026 07:28:00 GMT"
        let s = try server { request, nth in
            var reply = Reply.file(data, etag: nil, request: request, lastModified: date)
            if nth == 1 { reply.dropAfter = 45_000 }
            return reply
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 2)
        XCTAssertEqual(gets[1].headers["range"], "bytes=45000-")
        XCTAssertEqual(gets[1].headers["if-range"], date)
        XCTAssertEqual(s.bytesSent("/m.gguf"), data.count)
        try assertCacheHolds([Self.sha(data)])
    }

    func testStallMidBodyTimesOutAndResumesFromTheBytesAlreadyReceived() throws {
        let data = Self.randomData(120_000)
        let s = try server { request, nth in
            var reply = Reply.file(data, etag: "\"e\"", request: request)
            if nth == 1 { reply.stallAfterBytes = 100 }  // small: libcurl averages speed over ~5 s
            return reply
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 2)
        XCTAssertEqual(gets[1].headers["range"], "bytes=100-")
        XCTAssertEqual(s.bytesSent("/m.gguf"), data.count)
        try assertCacheHolds([Self.sha(data)])
    }
}
