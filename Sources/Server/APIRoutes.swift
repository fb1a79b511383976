import Foundation
import HTTPTypes
import Hummingbird

/// The routes of issue 14: the OpenAPI document always; files, fine-tuning jobs and the registry
/// when the server has a registry.
struct APIRoutes: Sendable {
    let api: APIServices?
    let limits: ServerLimits

    func register(on router: Router<ServerContext>) {
        router.get("/openapi.yaml") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        guard let api else { return }
        FineTuningRoutes(api: api, limits: limits).register(on: router)
        RegistryRoutes(api: api, limits: limits).register(on: router)
    }
}
