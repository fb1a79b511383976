import Foundation
import TestSupport
import XCTest

/// `lora generate` and `lora chat` share one sampling option group: the same flags, each command's own
/// `--max-tokens` default and least value, and the same checks, refused before any model is loaded.
final class SamplingOptionsCLITests: XCTestCase {
    private func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try runProcess(TestPaths.loraBinary, args)
        return (r.status, r.stdout, r.stderr)
    }

    func testBothCommandsListTheSameSamplingFlagsWithTheirOwnMaxTokensDefault() throws {
        for (command, maxTokensDefault) in [("generate", 256), ("chat", 512)] {
            let help = try run([command, "--help"])
            XCTAssertEqual(help.status, 0, help.stderr)
            for flag in ["--max-tokens", "--temperature", "--top-p", "--top-k", "--seed"] {
                XCTAssertTrue(help.stdout.contains(flag), "\(command) --help lacks \(flag): \(help.stdout)")
            }
            // The option's help text follows on the next line.
            let lines = help.stdout.split(separator: "\n").map(String.init)
            let at = try XCTUnwrap(lines.firstIndex { $0.contains("--max-tokens") }, help.stdout)
            XCTAssertTrue(lines[at...].prefix(2).joined().contains("(default: \(maxTokensDefault))"), "\(command): \(help.stdout)")
        }
    }

    func testEachCommandsLeastMaxTokensAndTheSamplingChecksAreEnforced() throws {
        // The model path does not exist: validation runs before anything is loaded.
        let cases: [([String], String)] = [
            (["generate", "--model", "/nonexistent", "--max-tokens=-1", "hi"], "--max-tokens must be >= 0, got -1"),
            (["chat", "--max-tokens", "0"], "--max-tokens must be >= 1, got 0"),
            (["generate", "--model", "/nonexistent", "--temperature=-1", "hi"], "temperature must be >= 0, got -1"),
            (["chat", "--top-p", "1.5"], "top-p must be in (0, 1], got 1.5"),
            (["chat", "--top-k", "0"], "top-k must be >= 1, got 0"),
        ]
        for (args, expected) in cases {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, "\(args) was accepted")
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
    }
}
