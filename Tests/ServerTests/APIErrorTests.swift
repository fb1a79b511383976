import Foundation
import HTTPTypes
import Server
import XCTest

/// An error no route expected becomes a 500 in OpenAI's shape whose message is worded for a user:
/// Codable's and Foundation's errors name their field or path, never their Swift dump.
final class APIErrorTests: XCTestCase {
    struct Body: Decodable { let steps: Int }

    func testUnexpectedErrorsBecomeA500WithoutRawSwiftOrFoundationText() throws {
        var errors: [Error] = []
        do { _ = try JSONDecoder().decode(Body.self, from: Data(#"{"steps": "many"}"#.utf8)) } catch { errors.append(error) }
        do { _ = try Data(contentsOf: URL(fileURLWithPath: "/nonexistent-\(getpid())/state.json")) } catch { errors.append(error) }
        XCTAssertEqual(errors.count, 2)
        for error in errors {
            let e = APIError.from(error)
            XCTAssertEqual(e.status, .internalServerError)
            XCTAssertTrue(e.message.hasPrefix("internal error: "), e.message)
            for raw in ["DecodingError", "typeMismatch", "Context(", "codingPath", "NSCocoaErrorDomain", "Error Domain=", "UserInfo="] {
                XCTAssertFalse(e.message.contains(raw), "\(raw) in \(e.message)")
            }
        }
        XCTAssertTrue(APIError.from(errors[0]).message.contains("steps"), APIError.from(errors[0]).message)
        XCTAssertTrue(APIError.from(errors[1]).message.contains("/nonexistent-"), APIError.from(errors[1]).message)
    }
}
