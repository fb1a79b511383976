import Foundation
import TestSupport
import XCTest

/// Foundation's own error text (`NSCocoaErrorDomain Code=516`, `DecodingError...`) never reaches a user:
/// the CLI rewords it, naming the file.
final class ErrorMessageCLITests: XCTestCase {
    func testOutputPathThatIsAFileIsReportedByPathNotAsACocoaError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("errmsg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("taken")
        try Data("a file".utf8).write(to: output)
        let r = try runProcess(TestPaths.loraBinary, ["train", "--model", TestPaths.fixture("models/tiny-llama-tied").path,
                                                      "--data", TestPaths.fixture("peft/train.jsonl").path,
                                                      "--output", output.path, "--max-steps", "1", "--rank", "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain") || r.stderr.contains("Error Domain="), r.stderr)
        XCTAssertTrue(r.stderr.contains(output.path), r.stderr)
    }

    func testADataDirectoryThatCannotBeCreatedIsReportedByPathAndCauseNotAsACocoaError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("errmsg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        let r = try runProcess(TestPaths.loraBinary, ["tasks", "--data-dir", file.appendingPathComponent("data").path], environment: env)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stderr.contains("NSCocoaErrorDomain") || r.stderr.contains("Error Domain=") || r.stderr.contains("UserInfo="), r.stderr)
        XCTAssertTrue(r.stderr.contains("\(file.path) is a file, not a directory"), r.stderr)
    }
}
