import Foundation
import Registry
import ServiceTestSupport
import TestSupport
import XCTest

/// `lora keys create|list|revoke` as users run them, and `lora serve` refusing a non-loopback
/// address while no key exists.
final class KeysCLITests: JobsCLITestCase {
    func testCreatePrintsTheKeyOnceListNeverShowsItAndRevokeMarksIt() throws {
        let plain = try lora(["keys", "create", "ci", "--role", "trainer"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(plain.wholeMatch(of: #/lora-[0-9a-f]{64}/#), "the key alone: \(plain)")
        let created = try json(["keys", "create", "ops", "--role", "admin"])
        XCTAssertEqual(Set(created.keys), ["name", "role", "key", "created_at"])
        XCTAssertEqual(created["role"] as? String, "admin")
        let secret = try XCTUnwrap(created["key"] as? String)
        XCTAssertNotEqual(secret, plain, "every key is a new random secret")

        let listed = try lora(["keys", "list", "--json"]).stdout
        XCTAssertFalse(listed.contains(plain) || listed.contains(secret), "secrets are never shown again")
        XCTAssertFalse(listed.contains(String(secret.dropFirst(5))))
        let rows = try XCTUnwrap(try json(["keys", "list"])["data"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["ci", "ops"])
        // Only the sha256 of the secret is stored.
        let stored = try db.connect().execute("SELECT sha256 FROM api_keys ORDER BY id").rows.map { try $0.string("sha256") }
        XCTAssertFalse(stored.contains { $0.contains(String(secret.dropFirst(5))) })

        let revoked = try json(["keys", "revoke", "ci"])
        XCTAssertNotNil(revoked["revoked_at"] as? String)
        let again = try lora(["keys", "create", "ci", "--role", "trainer"], expectFailure: true)
        XCTAssertTrue(again.stderr.contains("ci"), again.stderr)
        XCTAssertTrue(try lora(["keys", "revoke", "nobody"], expectFailure: true).stderr.contains("nobody"))
        XCTAssertTrue(try lora(["keys", "create", "x", "--role", "root"], expectFailure: true).stderr.contains("root"))
        XCTAssertTrue(try lora(["keys", "create", "bad name", "--role", "admin"], expectFailure: true).stderr.contains("bad name"))
    }

    func testServeRefusesANonLoopbackHostWithoutKeysUnlessAllowed() throws {
        try lora(["models", "add", "tiny", model.path])
        let r = try lora(["serve", "--base", "tiny", "--host", "0.0.0.0", "--port", "0"], expectFailure: true)
        XCTAssertTrue(r.stderr.contains("--allow-unauthenticated"), r.stderr)
        XCTAssertTrue(r.stderr.contains("lora keys create"), r.stderr)
    }
}
