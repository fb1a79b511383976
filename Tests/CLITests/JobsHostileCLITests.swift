import Foundation
import TestSupport
import XCTest

/// Jobs with settings their base model cannot run are refused at submission, naming the flag,
/// and nothing is queued.
final class JobsHostileCLITests: JobsCLITestCase {
    func testAbsurdRankIsRefusedAtSubmissionNamingTheFlag() throws {
        let r = try lora(["jobs", "submit", "--task", "absurd", "--model", model.path, "--data", trainData.path,
                          "--rank", "100000000"], expectFailure: true)
        XCTAssertTrue(r.stderr.contains("'rank'") && r.stderr.contains("100000000"), r.stderr)
        let seq = try lora(["jobs", "submit", "--task", "absurd", "--model", model.path, "--data", trainData.path,
                            "--rank", "4", "--max-seq-len", "1000000000"], expectFailure: true)
        XCTAssertTrue(seq.stderr.contains("'max-seq-len'") && seq.stderr.contains("1000000000"), seq.stderr)
        let listed = try lora(["jobs", "list", "--json"])
        XCTAssertFalse(listed.stdout.contains("absurd"), listed.stdout)
    }
}
