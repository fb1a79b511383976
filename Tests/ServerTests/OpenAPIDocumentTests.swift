import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import Server
import TestSupport
import XCTest

/// openapi.yaml describes exactly the routes the server registers, and the server serves the
/// repository's file byte for byte at GET /openapi.yaml.
final class OpenAPIDocumentTests: APITestCase {
    var document: String { get throws { try String(contentsOf: TestPaths.repoRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8) } }

    /// "METHOD /path" for every operation under `paths:` (two-space indented paths, four-space methods).
    func documentedRoutes() throws -> Set<String> {
        var routes = Set<String>()
        var inPaths = false
        var path: String?
        for line in try document.components(separatedBy: "\n") {
            if !line.hasPrefix(" ") && !line.isEmpty { inPaths = line == "paths:"; path = nil; continue }
            guard inPaths else { continue }
            if let m = line.wholeMatch(of: #/  (/[^:]*):/#) { path = String(m.output.1); continue }
            if let m = line.wholeMatch(of: #/    (get|put|post|delete|patch|head|options):/#), let path {
                routes.insert("\(m.output.1.uppercased()) \(path)")
            }
        }
        return routes
    }

    func testEveryRegisteredRouteIsDocumentedAndEveryDocumentedRouteIsRegistered() throws {
        var server = OpenAIServer(backend: ScriptedBackend(), port: 0)
        server.api = APIServices(registry: service, auth: AuthPolicy(ring: ring, requireKeys: false))
        let registered = Set(server.router().routes.map { "\($0.method) \($0.path)" })
        let documented = try documentedRoutes()
        XCTAssertGreaterThan(registered.count, 20)
        XCTAssertEqual(registered.subtracting(documented).sorted(), [], "registered but not in openapi.yaml")
        XCTAssertEqual(documented.subtracting(registered).sorted(), [], "in openapi.yaml but not registered")
    }

    func testTheServerServesTheRepositorysDocument() async throws {
        let expected = try document
        try await withAPI { [self] client in
            let r = try await request(client, .get, "/openapi.yaml")
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "application/yaml")
            XCTAssertEqual(String(buffer: r.body) + "\n", expected, "run scripts/embed-openapi.sh after editing openapi.yaml")
        }
    }
}
