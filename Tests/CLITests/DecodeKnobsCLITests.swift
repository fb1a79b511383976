import Foundation
import TestSupport
import XCTest

/// The knobs read from the environment (`LORA_DECODE_ACTIVATIONS`, `LORA_DECODE_GROUPS`,
/// `LORA_DECODE_SPREAD`, `LORA_SERVE_HANDOFF`) go through one parser: a value it does not know makes `lora` refuse to start,
/// naming the variable, the value and the accepted ones; known values start it.
final class DecodeKnobsCLITests: XCTestCase {
    var lora: URL { TestPaths.loraBinary }

    private func run(_ variable: String, _ value: String) throws -> (status: Int32, stderr: String) {
        var env = ProcessInfo.processInfo.environment
        for v in ["LORA_DECODE_ACTIVATIONS", "LORA_DECODE_GROUPS", "LORA_DECODE_SPREAD", "LORA_SERVE_HANDOFF"] { env[v] = nil }
        env[variable] = value
        let r = try runProcess(lora, ["bench", "--help"], environment: env)
        return (r.status, r.stderr)
    }

    func testUnknownValuesRefuseToStartNamingTheVariableValueAndAcceptedOnes() throws {
        let cases: [(String, String, [String])] = [
            ("LORA_DECODE_GROUPS", "maybe", ["on", "off", "1", "0"]),
            ("LORA_DECODE_GROUPS", "OFF", ["on", "off", "1", "0"]),
            ("LORA_DECODE_SPREAD", "no", ["on", "off", "1", "0"]),
            ("LORA_DECODE_SPREAD", "2", ["on", "off", "1", "0"]),
            ("LORA_DECODE_ACTIVATIONS", "int4", ["f32", "q8", "q8-f32head", "q8-all"]),
            ("LORA_SERVE_HANDOFF", "row", ["step", "token"]),
            ("LORA_SERVE_HANDOFF", "off", ["step", "token"]),
        ]
        for (variable, value, accepted) in cases {
            let r = try run(variable, value)
            XCTAssertNotEqual(r.status, 0, "\(variable)=\(value) must refuse to start")
            XCTAssertTrue(r.stderr.contains("\(variable)=\(value)"), "\(variable)=\(value): \(r.stderr)")
            for a in accepted { XCTAssertTrue(r.stderr.contains(a), "\(variable)=\(value): \(r.stderr) should list \(a)") }
        }
    }

    func testKnownValuesStart() throws {
        for (variable, values) in [("LORA_DECODE_GROUPS", ["on", "off", "1", "0", ""]), ("LORA_DECODE_SPREAD", ["on", "off", "1", "0", ""]),
                                   ("LORA_DECODE_ACTIVATIONS", ["f32", "q8", "q8-f32head", "q8-all", ""]),
                                   ("LORA_SERVE_HANDOFF", ["step", "token", ""])] {
            for value in values {
                let r = try run(variable, value)
                XCTAssertEqual(r.status, 0, "\(variable)=\(value): \(r.stderr)")
            }
        }
    }
}
