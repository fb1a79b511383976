import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registry
import Service
import XCTest

/// API keys over a real socket: each role on each route class (the issue's table), 401 without a
/// key, with an unknown one and with a revoked one, open health routes, keys ignored while none
/// exists, and a key created or revoked while the server runs taking effect without a restart.
final class APIAuthTests: APITestCase {
    /// One request per route class; `allowed` is the least role that may make it.
    struct Probe {
        let method: HTTPRequest.Method
        let path: String
        let json: String?
        let allowed: APIKeyRecord.Role
    }

    let probes: [Probe] = [
        Probe(method: .get, path: "/v1/models", json: nil, allowed: .inference),
        Probe(method: .post, path: "/v1/completions", json: #"{"model":"tiny-base","prompt":"hi there","max_tokens":2}"#, allowed: .inference),
        Probe(method: .post, path: "/v1/chat/completions", json: #"{"model":"tiny-base","messages":[{"role":"user","content":"hi"}]}"#, allowed: .inference),
        Probe(method: .get, path: "/v1/files", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/fine_tuning/jobs", json: nil, allowed: .trainer),
        Probe(method: .post, path: "/v1/fine_tuning/jobs/ftjob-1/cancel", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/fine_tuning/jobs/ftjob-1/events", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/fine_tuning/jobs/ftjob-1/checkpoints", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/tasks", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/tasks/greet/versions", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/tasks/greet/history", json: nil, allowed: .trainer),
        Probe(method: .get, path: "/v1/tasks/greet/versions/1/adapter", json: nil, allowed: .trainer),
        Probe(method: .post, path: "/v1/tasks/greet/promote", json: #"{"version":1}"#, allowed: .admin),
        Probe(method: .post, path: "/v1/tasks/greet/rollback", json: nil, allowed: .admin),
        Probe(method: .post, path: "/v1/tasks/greet/versions", json: nil, allowed: .admin),
        Probe(method: .post, path: "/v1/tasks/greet/versions/1/archive", json: nil, allowed: .admin),
    ]

    func testEachRoleOnEachRouteClassAndUnknownMissingOrRevokedKeys() async throws {
        var secrets: [APIKeyRecord.Role: String] = [:]
        for role in APIKeyRecord.Role.allCases { secrets[role] = try keys.create(name: "k-\(role.rawValue)", role: role, actor: "tester").key }
        try await withAPI { [self] client in
            for p in probes {
                for role in APIKeyRecord.Role.allCases {
                    let r = try await request(client, p.method, p.path, json: p.json, key: secrets[role])
                    if role >= p.allowed {
                        XCTAssertNotEqual(r.status, .unauthorized, "\(role) \(p.method) \(p.path): \(String(buffer: r.body))")
                        XCTAssertNotEqual(r.status, .forbidden, "\(role) \(p.method) \(p.path): \(String(buffer: r.body))")
                    } else {
                        try assertError(r, .forbidden, param: nil, code: "insufficient_permissions", mentions: [role.rawValue, p.allowed.rawValue])
                    }
                }
                try assertError(try await request(client, p.method, p.path, json: p.json), .unauthorized, param: nil, code: "invalid_api_key")
                try assertError(try await request(client, p.method, p.path, json: p.json, key: "lora-" + String(repeating: "0", count: 64)),
                                .unauthorized, param: nil, code: "invalid_api_key")
            }
            // The presented secret is never echoed back.
            let wrong = try await request(client, .get, "/v1/tasks", key: "lora-secret-guess")
            XCTAssertFalse(String(buffer: wrong.body).contains("secret-guess"))
            for open in ["/healthz", "/metrics", "/openapi.yaml"] {
                expectEqual(try await request(client, .get, open).status, .ok, open)
            }
            try keys.revoke(name: "k-admin")
            try ring.reload()
            try assertError(try await request(client, .get, "/v1/tasks", key: secrets[.admin]), .unauthorized, param: nil)
            expectEqual(try await request(client, .get, "/v1/tasks", key: secrets[.trainer]).status, .ok)
        }
        XCTAssertEqual(try keys.list().map(\.name), ["k-inference", "k-trainer", "k-admin"])
        XCTAssertNotNil(try keys.list().last?.revokedAt)
    }

    func testWithoutKeysTheHeaderIsIgnoredUnlessKeysAreRequired() async throws {
        try await withAPI { [self] client in
            expectEqual(try await request(client, .get, "/v1/tasks", key: "anything").status, .ok)
            expectEqual(try await request(client, .get, "/v1/tasks").status, .ok)
        }
        requireKeys = true
        try await withAPI { [self] client in
            try assertError(try await request(client, .get, "/v1/tasks"), .unauthorized, param: nil, mentions: ["lora keys create"])
            expectEqual(try await request(client, .get, "/healthz").status, .ok)
        }
    }

    func testAKeyCreatedOrRevokedElsewhereIsInForceOnARunningServer() async throws {
        ring.start()
        try await withAPI { [self] client in
            expectEqual(try await request(client, .get, "/v1/tasks").status, .ok)
            // Another process creates a key: the server hears of it (NOTIFY) and starts asking for one.
            let other = APIKeyService(registry: try RegistryService.open(RegistryConfiguration(databaseURL: db.conninfo, dataDirectory: dataDir)))
            let (_, secret) = try other.create(name: "ops", role: .trainer, actor: "tester")
            let (_, kept) = try other.create(name: "kept", role: .trainer, actor: "tester")
            try await until("the new keys to be enforced") { try await self.request(client, .get, "/v1/tasks").status == .unauthorized }
            expectEqual(try await request(client, .get, "/v1/tasks", key: secret).status, .ok)
            try other.revoke(name: "ops")
            try await until("the revoked key to be refused") { try await self.request(client, .get, "/v1/tasks", key: secret).status == .unauthorized }
            expectEqual(try await request(client, .get, "/v1/tasks", key: kept).status, .ok)
        }
    }

    /// Polls (bounded) until `condition` holds: the NOTIFY arrives within a second, the periodic
    /// re-check within five; the bound only keeps a broken build from hanging.
    func until(_ what: String, timeout: Double = 30, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTFail("timed out waiting for \(what)")
    }
}
