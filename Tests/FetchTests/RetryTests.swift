import Fetch
import Foundation
import XCTest

final class RetryTests: FetchTestCase {
    func test500ThenSuccessRetriesAndVerifies() throws {
        let data = Self.randomData(50_000)
        let s = try server { request, nth in
            nth == 1 ? .status(500) : .file(data, etag: "\"e\"", request: request)
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        XCTAssertEqual(s.requests("/m.gguf", method: "GET").count, 2)
        try assertCacheHolds([Self.sha(data)])
    }

    func test429WithRetryAfterTwoSecondsDelaysTheRetryAtLeastTwoSeconds() throws {
        let data = Self.randomData(10_000)
        let s = try server { request, nth in
            nth == 1 ? .status(429, [("Retry-After", "2")]) : .file(data, etag: "\"e\"", request: request)
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        let gets = s.requests("/m.gguf", method: "GET")
        XCTAssertEqual(gets.count, 2)
        XCTAssertGreaterThanOrEqual(gets[1].time.timeIntervalSince(gets[0].time), 2.0)
    }

    func testPersistent503GivesUpNamingURLStatusAndAttempts() throws {
        let s = try server { _, _ in .status(503) }
        let url = s.url("/m.gguf")
        let error = try XCTUnwrap(fetchError(url))
        XCTAssertEqual(error.httpStatus, 503)
        XCTAssertTrue(error.description.contains(url), error.description)
        XCTAssertTrue(error.description.contains("503"), error.description)
        XCTAssertTrue(error.description.contains("4 attempts"), error.description)
        XCTAssertEqual(s.requests("/m.gguf").count, 4)
        try assertCacheHolds([])
    }

    func test404FailsAtOnceNamingURLAndStatus() throws {
        let s = try server { _, _ in .status(404) }
        let url = s.url("/missing.gguf")
        let error = try XCTUnwrap(fetchError(url))
        XCTAssertEqual(error, .http(url: url, status: 404, body: ""))
        XCTAssertTrue(error.description.contains("HTTP 404"), error.description)
        XCTAssertEqual(s.requests("/missing.gguf").count, 1, "a 404 must not be retried")
        try assertCacheHolds([])
        XCTAssertEqual(cache.partialDownloads(), [])
    }

    func testStallAfterHeadersTimesOutAndTheRetrySucceeds() throws {
        let data = Self.randomData(40_000)
        let s = try server { request, nth in
            var reply = Reply.file(data, etag: "\"e\"", request: request)
            reply.stallAfterHeaders = nth == 1
            return reply
        }
        let path = try fetcher().fetchModel(s.url("/m.gguf"))
        XCTAssertEqual(try Data(contentsOf: path), data)
        XCTAssertEqual(s.requests("/m.gguf", method: "GET").count, 2)
        // The stalled reply never ends by itself: only the client's low-speed timeout closes it.
        XCTAssertGreaterThanOrEqual(s.abandonedStalls, 1, "the low-speed timeout did not fire")
        try assertCacheHolds([Self.sha(data)])
    }

    func testServerThatAlwaysStallsGivesATimeoutErrorAndNoCacheEntry() throws {
        let s = try server { request, _ in
            var reply = Reply.file(Self.randomData(1000), etag: "\"e\"", request: request)
            reply.stallAfterHeaders = true
            return reply
        }
        var options = Self.testOptions
        options.maxAttempts = 2
        let error = try XCTUnwrap(fetchError(s.url("/m.gguf"), fetcher: fetcher(options: options)))
        guard case let .retriesExhausted(_, attempts, .transport(url, code, _)) = error else {
            return XCTFail("expected a timeout, got \(error)")
        }
        XCTAssertEqual(attempts, 2)
        XCTAssertEqual(code, 28, "CURLE_OPERATION_TIMEDOUT")
        XCTAssertEqual(url, s.url("/m.gguf"))
        try assertCacheHolds([])
    }

    func testConnectionRefusedIsRetriedThenReported() throws {
        let s = try server { _, _ in .status(200) }
        let url = s.url("/m.gguf")
        s.stop()
        var options = Self.testOptions
        options.maxAttempts = 2
        let error = try XCTUnwrap(fetchError(url, fetcher: fetcher(options: options)))
        guard case .retriesExhausted(_, 2, .transport(_, 7, _)) = error else {
            return XCTFail("expected connection refused twice, got \(error)")
        }
        XCTAssertTrue(error.description.contains(url))
    }

    func testRetryAfterAcceptsSecondsAndHTTPDates() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT
        XCTAssertEqual(RetryPolicy.parseRetryAfter("2", now: now), 2)
        XCTAssertEqual(RetryPolicy.parseRetryAfter(" 120 ", now: now), 120)
        XCTAssertEqual(RetryPolicy.parseRetryAfter("Tue, 14 Nov 2023 22:13:25 GMT", now: now), 5)
        XCTAssertEqual(RetryPolicy.parseRetryAfter("Tuesday, 14-Nov-23 22:13:30 GMT", now: now), 10)
        XCTAssertEqual(RetryPolicy.parseRetryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now: now), 0, "a past date")
        XCTAssertNil(RetryPolicy.parseRetryAfter("soon", now: now))
        XCTAssertNil(RetryPolicy.parseRetryAfter("-1", now: now))
    }

    func testBackoffGrowsExponentiallyWithJitterAndIsCapped() {
        for _ in 0..<100 {
            let third = RetryPolicy.backoff(retry: 3, initial: 1, max: 60)
            XCTAssert((2...4).contains(third), "\(third)")
            let capped = RetryPolicy.backoff(retry: 20, initial: 1, max: 60)
            XCTAssert((30...60).contains(capped), "\(capped)")
        }
        let samples = Set((0..<20).map { _ in RetryPolicy.backoff(retry: 2, initial: 1, max: 60) })
        XCTAssertGreaterThan(samples.count, 1, "no jitter")
    }
}
