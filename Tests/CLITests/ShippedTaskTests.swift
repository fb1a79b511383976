import Foundation
import TestSupport
import XCTest

/// A shipped task learned by the real default model under the default quantization (CI-sized:
/// 40 steps of 8 records, about 2 minutes on 2 cores): held-out exact match rises from near 0 to
/// at least 80%.
final class ShippedTaskTests: XCTestCase {
    func testCategoryCodeIsLearnedFromNearZeroToAtLeast80PercentExactMatch() throws {
        let model = try TestPaths.requireDefaultModel()
        let task = TestPaths.repoRoot.appendingPathComponent("adapters/category-code")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("shipped-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try runProcess(TestPaths.loraBinary, [
            "train", "--model", model.path, "--data", task.appendingPathComponent("train.jsonl").path,
            "--eval-data", task.appendingPathComponent("eval.jsonl").path, "--eval-generate", "30", "--eval-every", "40",
            "--output", out.path, "--max-steps", "40", "--batch-size", "8", "--lr", "1e-3", "--seed", "42", "--threads", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let evals = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["eval_accuracy"] != nil }
        let before = try XCTUnwrap(evals.first?["eval_accuracy"] as? Double)
        let after = try XCTUnwrap(evals.last?["eval_accuracy"] as? Double)
        XCTAssertEqual(evals.first?["step"] as? Int, 0)
        XCTAssertLessThanOrEqual(before, 0.1, "the base model should not already do the task")
        XCTAssertGreaterThanOrEqual(after, 0.8, "held-out exact match after training: \(after)")
    }
}
