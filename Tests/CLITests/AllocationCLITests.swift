import Foundation
import TestSupport
import XCTest

/// Decoding allocates nothing per token (issue 15 item 4): `lora bench decode --count-allocations` run
/// with the allocation counter preloaded (`libLoraAllocCounter.so`, built beside `lora`; it counts
/// every malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign call of every thread)
/// reports, for runs of N and 2N new tokens on the default model, both runs' counts and their
/// difference over N. One allocation a token anywhere in the step (a Swift array, a closure box, a
/// class instance) makes the difference N or more, so the exact-zero assertions fail; the first
/// run's count being positive shows the counter is live.
final class AllocationCLITests: XCTestCase {
    var counterLibrary: URL { TestPaths.loraBinary.deletingLastPathComponent().appendingPathComponent("libLoraAllocCounter.so") }

    /// The figures of `lora bench decode --count-allocations ARGS` on the default model, 2 threads.
    func countAllocations(_ args: [String]) throws -> [(name: String, perToken: Double, runs: [Double])] {
        let model = try TestPaths.requireDefaultModel()
        XCTAssertTrue(FileManager.default.fileExists(atPath: counterLibrary.path), "swift build -c release builds \(counterLibrary.path)")
        var env = ProcessInfo.processInfo.environment
        env["LD_PRELOAD"] = counterLibrary.path
        let r = try runProcess(TestPaths.loraBinary, ["bench", "decode", "--count-allocations", "--model", model.path, "--threads", "2",
                                                      "--new-tokens", "8", "--json"] + args, environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        return try XCTUnwrap(out["figures"] as? [[String: Any]]).map { f in
            (f["name"] as? String ?? "", f["median"] as? Double ?? -1, f["samples"] as? [Double] ?? [])
        }
    }

    func check(_ figures: [(name: String, perToken: Double, runs: [Double])], names: [String],
               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(figures.map(\.name), names, file: file, line: line)
        for f in figures {
            XCTAssertEqual(f.runs.count, 2, f.name, file: file, line: line)
            // The counter counts: a run creates its KV cache and prefills its prompt.
            XCTAssertGreaterThan(f.runs.first ?? 0, 0, "\(f.name): the counter saw nothing", file: file, line: line)
            XCTAssertEqual(f.runs.first, f.runs.last, "\(f.name): 2N tokens allocated more than N", file: file, line: line)
            XCTAssertEqual(f.perToken, 0, "\(f.name): allocations per token", file: file, line: line)
        }
    }

    /// Batch 1: the forward / logits / greedy-sampler loop, and `LlamaModel.generate` itself, greedy and
    /// sampling (temperature, top-k, top-p: the sampler's candidate sort in place).
    func testBatchOneDecodingAllocatesNothingPerToken() throws {
        check(try countAllocations([]), names: ["decode_allocations_per_token", "generate_allocations_per_token",
                                                "generate_sampled_allocations_per_token"])
    }

    /// A serving step of 8 one-row segments under one LoRA adapter (rank 16, every linear module).
    func testAnEightRowStepOnOneAdapterAllocatesNothing() throws {
        check(try countAllocations(["--rows", "8", "--adapter-rank", "16"]), names: ["decode_rows_allocations_per_step"])
    }

    /// 8 rows on 8 different adapters: the adapters' low-rank terms spread over the pool.
    func testAnEightRowStepOnEightAdaptersAllocatesNothing() throws {
        check(try countAllocations(["--rows", "8", "--adapter-rank", "16", "--adapters", "8"]), names: ["decode_rows_allocations_per_step"])
    }

    /// Without the library preloaded there is nothing to count: an error naming LD_PRELOAD and the library.
    func testWithoutTheCounterPreloadedItIsAnErrorNamingIt() throws {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "LD_PRELOAD")
        let r = try runProcess(TestPaths.loraBinary, ["bench", "decode", "--count-allocations", "--model",
                                                      TestPaths.fixture("models/tiny-llama-tied").path], environment: env)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("LD_PRELOAD=") && r.stderr.contains("libLoraAllocCounter.so"), r.stderr)
        let prefill = try runProcess(TestPaths.loraBinary, ["bench", "prefill", "--count-allocations", "--model",
                                                            TestPaths.fixture("models/tiny-llama-tied").path], environment: env)
        XCTAssertNotEqual(prefill.status, 0)
        XCTAssertTrue(prefill.stderr.contains("--count-allocations applies to decode only"), prefill.stderr)
    }
}
