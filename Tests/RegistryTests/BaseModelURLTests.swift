import Fetch
import Foundation
import Registry
import Service
import TestSupport
import ServiceTestSupport
import XCTest

/// A base model registered by URL: fetched (verified, cached) to hash it, recorded by its URL, and
/// fetched again wherever it is needed.
final class BaseModelURLTests: RegistryTestCase {
    func testABaseModelRegisteredByURLKeepsItsURLAndIsFetchedByWhoeverNeedsIt() throws {
        let src = TestPaths.fixture("models/tiny-llama-gguf/tiny-llama.gguf")
        let cacheA = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-a-\(UUID().uuidString)")
        let cacheB = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-b-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cacheA); try? FileManager.default.removeItem(at: cacheB) }
        let record = try service.addBaseModel(name: "tiny-url", spec: src.absoluteString,
                                              fetcher: ModelFetcher(cacheDirectory: cacheA, token: nil))
        XCTAssertEqual(record.source, src.absoluteString)
        XCTAssertEqual(record.sha256, try RegistryService.hashModelFiles(src).sha256)
        // Another machine (another cache) gets its own verified copy.
        let path = try RegistryService.localPath(of: record, fetcher: ModelFetcher(cacheDirectory: cacheB, token: nil))
        XCTAssertTrue(path.path.hasPrefix(cacheB.path), path.path)
        XCTAssertEqual(try Data(contentsOf: path), try Data(contentsOf: src))
    }
}
