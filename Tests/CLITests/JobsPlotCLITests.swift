import Foundation
import ServiceTestSupport
import TestSupport
import XCTest

/// `lora jobs plot ID --output FILE.svg`: the loss curves of a job run by `lora worker`.
final class JobsPlotCLITests: JobsCLITestCase {
    func testPlotWritesOnePointPerStepOfTheJob() throws {
        let id = try submit("plotted", hyper(steps: 3))
        try lora(["worker", "--once", "--poll-interval", "0.1"])
        let out = scratch.appendingPathComponent("loss.svg")
        let r = try json(["jobs", "plot", "ftjob-\(id)", "--output", out.path])
        XCTAssertEqual(r["train_points"] as? String, "3")
        let svg = try String(contentsOf: out, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        let group = try XCTUnwrap(svg.firstMatch(of: #/<g id="train-loss-points"[^>]*>(.*?)</g>/#)).output.1
        XCTAssertEqual(group.matches(of: #/<circle /#).count, 3)
        XCTAssertTrue(svg.contains("plotted@1"), "the title names the version")
        XCTAssertTrue(try lora(["jobs", "plot", "99", "--output", out.path], expectFailure: true).stderr.contains("99"))
        XCTAssertEqual(try String(contentsOf: out, encoding: .utf8), svg, "a failed plot leaves the file as it was")
    }
}
