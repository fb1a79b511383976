import Fetch
import Foundation
import XCTest

/// `lora pull`'s size cap: a declared size is checked against --max-bytes and the free disk before a
/// byte is written; a body without one is cut off at --max-bytes. Either way nothing is left behind.
final class SizeLimitTests: FetchTestCase {
    private func options(maxBytes: Int64) -> FetchOptions {
        var o = Self.testOptions
        o.maxBytes = maxBytes
        return o
    }

    func testAnEndlessBodyIsStoppedAtMaxBytesAndItsPartialBytesDeleted() throws {
        let s = try server { _, _ in Reply(status: 200, endless: true) }
        let limit: Int64 = 1 << 20
        let error = try XCTUnwrap(fetchError(s.url("/endless.gguf"), fetcher: fetcher(options: options(maxBytes: limit))))
        guard case let .tooLarge(_, declared, received, reportedLimit) = error else { return XCTFail("got \(error)") }
        XCTAssertNil(declared)
        XCTAssertEqual(reportedLimit, limit)
        XCTAssertGreaterThan(received, limit)
        XCTAssertTrue(error.description.contains("--max-bytes") && error.description.contains(String(limit)), error.description)
        XCTAssertEqual(s.requests("/endless.gguf").count, 1, "a size refusal is not retried")
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testADeclaredSizeOverMaxBytesIsRefusedBeforeAnyByteIsWritten() throws {
        let data = Self.randomData(50_000)
        let s = try server { request, _ in .file(data, etag: "\"e\"", request: request) }
        let error = try XCTUnwrap(fetchError(s.url("/big.gguf"), fetcher: fetcher(options: options(maxBytes: 40_000))))
        XCTAssertEqual(error, .tooLarge(url: s.url("/big.gguf"), declared: 50_000, received: 0, limit: 40_000))
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
        // At the limit it is fetched.
        let path = try fetcher(options: options(maxBytes: 50_000)).fetchModel(s.url("/big.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
    }

    func testADeclaredSizeLargerThanTheFreeDiskIsRefusedNamingBothSizes() throws {
        // A petabyte declared: more than any test machine's free space; the first body bytes decide.
        let s = try server { _, _ in
            Reply(status: 200, headers: [("Content-Length", "1000000000000000")], body: Data(count: 1000), stallAfterBytes: 1000)
        }
        let error = try XCTUnwrap(fetchError(s.url("/huge.gguf"), fetcher: fetcher(options: options(maxBytes: .max))))
        guard case let .insufficientDisk(_, needed, available, _) = error else { return XCTFail("got \(error)") }
        XCTAssertEqual(needed, 1_000_000_000_000_000)
        XCTAssertLessThan(available, needed)
        XCTAssertTrue(error.description.contains("1000000000000000") && error.description.contains("free"), error.description)
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
    }
}
