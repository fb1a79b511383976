import Foundation
import HTTPTypes
import Server
import TestSupport
import XCTest

/// RequestBodies, the request fuzzer's entry point, decodes as the routes do: the committed seed
/// corpus is accepted, and hostile bodies of each kind are refused with a 4xx naming the field.
final class RequestBodiesTests: XCTestCase {
    func testEverySeedOfTheRequestFuzzerIsAcceptedByItsEndpoint() throws {
        let dir = TestPaths.repoRoot.appendingPathComponent("Fuzz/corpus/server-requests")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertGreaterThanOrEqual(names.count, 6)
        var kinds = Set<RequestBodies.Kind>()
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
            let kind = try XCTUnwrap(RequestBodies.Kind(rawValue: bytes[0]), name)
            kinds.insert(kind)
            let error = RequestBodies.decode(kind, Array(bytes.dropFirst()))
            XCTAssertNil(error, "\(name): \(String(describing: error))")
        }
        XCTAssertEqual(kinds, Set(RequestBodies.Kind.allCases), "a seed for every endpoint")
    }

    func refused(_ kind: RequestBodies.Kind, _ body: String, file: StaticString = #filePath, line: UInt = #line) -> APIError? {
        let error = RequestBodies.decode(kind, Array(body.utf8))
        XCTAssertNotNil(error, "accepted: \(body)", file: file, line: line)
        if let error { XCTAssertEqual(error.status.code, 400, error.message, file: file, line: line) }
        return error
    }

    func testHostileBodiesAreRefusedNamingTheFieldNeverA500() {
        XCTAssertEqual(refused(.completion, #"{"model":"m","prompt":"p","max_tokens":-1}"#)?.param, "max_tokens")
        XCTAssertEqual(refused(.chatCompletion, #"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#)?.param?
            .hasPrefix("messages[0]"), true)
        XCTAssertEqual(refused(.fineTuningJob, #"{"model":"m","training_file":"file-1","suffix":"x","hyperparameters":{"lora_r":1e308}}"#)?
            .param, "hyperparameters.lora_r")
        XCTAssertEqual(refused(.promote, #"{"version":99999999999}"#)?.param, "version")
        XCTAssertEqual(refused(.rollback, #"{"alias":7}"#)?.param, "alias")
        XCTAssertEqual(refused(.fileUpload, "--lora-request-boundary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--lora-request-boundary--\r\n")?.param, "file")
        // Not JSON, JSON nested past the reader's depth, and a lone surrogate: a 400 naming the body.
        for body in ["{", "[" + String(repeating: "[", count: 5000), #"{"model":"\udbad"}"#, "\u{FF}"] {
            let e = refused(.completion, body)
            XCTAssertTrue(e?.message.contains("JSON body") ?? false, "\(String(describing: e))")
        }
        // Where the syntax error is, in Foundation's words, never the decoder's raw enum.
        let syntax = refused(.chatCompletion, #"{"model" 1}"#)?.message ?? ""
        XCTAssertTrue(syntax.contains("around character 9"), syntax)
        XCTAssertFalse(syntax.contains("dataCorrupted") || syntax.contains("Context("), syntax)
    }
}
