import Fetch
import Foundation
import XCTest

final class RepositoryTests: FetchTestCase {
    /// An HF-style repository at /org/m: small JSON files, a sharded checkpoint, no generation config.
    func shardedRepository() throws -> (TestHTTPServer, [String: Data]) {
        let index = #"{"metadata": {"total_size": 3000}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors", "c.weight": "model-00001-of-00002.safetensors"}}"#
        let files: [String: Data] = [
            "config.json": Data(#"{"model_type": "llama"}"#.utf8),
            "tokenizer.json": Data(#"{"model": {"type": "BPE"}}"#.utf8),
            "tokenizer_config.json": Data(#"{"chat_template": "{{ x }}"}"#.utf8),
            "model.safetensors.index.json": Data(index.utf8),
            "model-00001-of-00002.safetensors": Self.randomData(40_000),
            "model-00002-of-00002.safetensors": Self.randomData(30_000),
        ]
        let s = try server { request, _ in
            let prefix = "/org/m/resolve/main/"
            guard request.path.hasPrefix(prefix), let data = files[String(request.path.dropFirst(prefix.count))] else {
                return .status(404)
            }
            return .file(data, etag: "\"\(Self.sha(data).prefix(40))\"", request: request)
        }
        return (s, files)
    }

    func testRepositoryRootFetchesConfigTokenizerIndexAndShardsIntoOneDirectory() throws {
        let (s, files) = try shardedRepository()
        let model = try fetcher().fetch(s.url("/org/m"))

        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: model.path.path, isDirectory: &isDirectory))
        XCTAssertTrue(isDirectory.boolValue)
        let listed = try FileManager.default.contentsOfDirectory(atPath: model.path.path)
        XCTAssertEqual(Set(listed), Set(files.keys))
        for (name, data) in files {
            XCTAssertEqual(try Data(contentsOf: model.path.appendingPathComponent(name)), data, name)
        }
        XCTAssertEqual(s.requests("/org/m/resolve/main/generation_config.json").count, 1)
        XCTAssertEqual(s.requests("/org/m/resolve/main/model.safetensors").count, 1)
        for name in files.keys {
            XCTAssertEqual(s.requests("/org/m/resolve/main/\(name)", method: "GET").count, 1, name)
        }
        try assertCacheHolds(Set(files.values.map(Self.sha)))
    }

    func testRepositoryCacheHitCostsOneHeadPerPresentFileAndNothingForAbsentOnes() throws {
        let (s, files) = try shardedRepository()
        let first = try fetcher().fetchModel(s.url("/org/m"))
        let before = s.requests().count
        let second = try fetcher().fetch(s.url("/org/m"))

        let after = Array(s.requests().dropFirst(before))
        XCTAssertEqual(second.path, first)
        XCTAssertEqual(after.count, files.count, after.map(\.path).joined(separator: " "))
        XCTAssertTrue(after.allSatisfy { $0.method == "HEAD" })
        XCTAssertTrue(second.files.allSatisfy(\.fromCache))
    }

    /// No timing: each shard's reply waits until all three shard requests are in flight at once (a
    /// barrier with a generous deadline). A fetcher that downloads one file after another never gets
    /// the second request out while the first waits, so the barrier times out and the test fails.
    func testAModelsFilesAreDownloadedInParallel() throws {
        let shard = Self.randomData(160_000)
        let index = #"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s3.safetensors"}}"#
        let barrier = NSCondition()
        var arrived = 0
        var allInFlight = false
        let s = try server { request, _ in
            let name = request.path.split(separator: "/").last.map(String.init) ?? ""
            switch name {
            case "config.json", "tokenizer.json": return .file(Data("{}".utf8), etag: nil, request: request)
            case "model.safetensors.index.json": return .file(Data(index.utf8), etag: nil, request: request)
            case "s1.safetensors", "s2.safetensors", "s3.safetensors":
                barrier.lock()
                arrived += 1
                if arrived == 3 { allInFlight = true; barrier.broadcast() }
                let deadline = Date().addingTimeInterval(30)
                while !allInFlight && barrier.wait(until: deadline) {}
                barrier.unlock()
                return .file(shard, etag: "\"s\"", request: request)
            default: return .status(404)
            }
        }
        let model = try fetcher().fetch(s.url("/org/m"))
        XCTAssertEqual(model.files.filter { $0.name.hasPrefix("s") }.count, 3)
        barrier.lock()
        let parallel = allInFlight
        barrier.unlock()
        XCTAssertTrue(parallel, "the three shard downloads were never in flight at the same time")
    }

    func testResolveFormWithARevisionNamesTheRepositoryAtThatRevision() throws {
        let weights = Self.randomData(25_000)
        let files: [String: Data] = [
            "config.json": Data("{}".utf8), "tokenizer.json": Data("{}".utf8), "model.safetensors": weights,
        ]
        let s = try server { request, _ in
            let prefix = "/org/m/resolve/v1.0/"
            guard request.path.hasPrefix(prefix), let data = files[String(request.path.dropFirst(prefix.count))] else {
                return .status(404)
            }
            return .file(data, etag: "\"x\"", request: request)
        }
        let model = try fetcher().fetch(s.url("/org/m/resolve/v1.0"))
        XCTAssertEqual(Set(model.files.map(\.name)), Set(files.keys))
        XCTAssertEqual(try Data(contentsOf: model.path.appendingPathComponent("model.safetensors")), weights)
        XCTAssertEqual(s.requests("/org/m/resolve/v1.0/model.safetensors.index.json").count, 0)
    }

    func testRepositoryWithoutWeightsFailsClearly() throws {
        let s = try server { request, _ in
            request.path.hasSuffix("/config.json") || request.path.hasSuffix("/tokenizer.json")
                ? .file(Data("{}".utf8), etag: nil, request: request) : .status(404)
        }
        let error = try XCTUnwrap(fetchError(s.url("/org/m")))
        XCTAssertTrue(error.description.contains("model.safetensors"), error.description)
    }

    func testMissingConfigFailsNamingItsURL() throws {
        let s = try server { _, _ in .status(404) }
        let error = try XCTUnwrap(fetchError(s.url("/org/m")))
        XCTAssertTrue(error.isNotFound)
        XCTAssertTrue(error.description.contains("/org/m/resolve/main/"), error.description)
    }

    func testShardNamesEscapingTheDirectoryAreRejected() throws {
        let files: [String: Data] = [
            "config.json": Data("{}".utf8), "tokenizer.json": Data("{}".utf8),
            "model.safetensors.index.json": Data(#"{"weight_map": {"a": "../../evil"}}"#.utf8),
        ]
        let s = try server { request, _ in
            let prefix = "/org/m/resolve/main/"
            guard request.path.hasPrefix(prefix), let data = files[String(request.path.dropFirst(prefix.count))] else {
                return .status(404)
            }
            return .file(data, etag: nil, request: request)
        }
        let error = try XCTUnwrap(fetchError(s.url("/org/m")))
        guard case .invalidModelFile = error else { return XCTFail("\(error)") }
    }
}

final class ModelSpecTests: XCTestCase {
    func testGGUFURLIsOneFile() throws {
        let spec = try ModelSpec.parse("https://example.com/models/SmolLM2.Q4_1.gguf")
        XCTAssertEqual(spec.kind, .file(url: "https://example.com/models/SmolLM2.Q4_1.gguf", name: "SmolLM2.Q4_1.gguf"))
        XCTAssertNil(spec.pinnedSHA256)
    }

    func testPinnedSha256IsLowercasedAndStrippedFromTheURL() throws {
        let hex = String(repeating: "AB", count: 32)
        let spec = try ModelSpec.parse("https://h/x.gguf#sha256=\(hex)")
        XCTAssertEqual(spec.kind, .file(url: "https://h/x.gguf", name: "x.gguf"))
        XCTAssertEqual(spec.pinnedSHA256, hex.lowercased())
        XCTAssertThrowsError(try ModelSpec.parse("https://h/x.gguf#sha256=123"))
        XCTAssertThrowsError(try ModelSpec.parse("https://h/org/repo#sha256=\(hex)"))
    }

    func testRepositoryRootsIncludingDottedNames() throws {
        XCTAssertEqual(try ModelSpec.parse("https://huggingface.co/Qwen/Qwen2.5-0.5B").kind,
                       .repository(root: "https://huggingface.co/Qwen/Qwen2.5-0.5B", revision: "main"))
        XCTAssertEqual(try ModelSpec.parse("https://huggingface.co/org/m/").kind,
                       .repository(root: "https://huggingface.co/org/m", revision: "main"))
    }

    func testResolveForms() throws {
        XCTAssertEqual(try ModelSpec.parse("https://huggingface.co/org/m/resolve/abc123/model.safetensors").kind,
                       .file(url: "https://huggingface.co/org/m/resolve/abc123/model.safetensors",
                             name: "model.safetensors"))
        XCTAssertEqual(try ModelSpec.parse("https://huggingface.co/org/m/resolve/dev").kind,
                       .repository(root: "https://huggingface.co/org/m", revision: "dev"))
        XCTAssertEqual(ModelSpec.fileURL(root: "https://h/org/m", revision: "main", file: "config.json"),
                       "https://h/org/m/resolve/main/config.json")
    }

    func testUnsupportedSpecsAreRejected() {
        XCTAssertThrowsError(try ModelSpec.parse("ftp://h/x.gguf"))
        XCTAssertThrowsError(try ModelSpec.parse("https:///x.gguf"))
        XCTAssertThrowsError(try ModelSpec.parse("https://h/x.gguf#md5=00"))
        XCTAssertThrowsError(try ModelSpec.parse("https://h/org/m/resolve/main/.."))
    }

    func testIsRemote() {
        XCTAssertTrue(ModelFetcher.isRemote("https://h/x.gguf"))
        XCTAssertTrue(ModelFetcher.isRemote("HTTP://h/x.gguf"))
        XCTAssertTrue(ModelFetcher.isRemote("file:///tmp/x.gguf"))
        XCTAssertFalse(ModelFetcher.isRemote("/tmp/x.gguf"))
        XCTAssertFalse(ModelFetcher.isRemote("models/x.gguf"))
        XCTAssertFalse(ModelFetcher.isRemote("c:x"))
    }
}
