import ArgumentParser
import Foundation
import Logging
import Server
import Service

/// `lora serve`'s options for the fine-tuning API and its keys (issue 14).
struct ServeAPIOptions: ParsableArguments {
    @Flag(name: .customLong("allow-unauthenticated"),
          help: "Listen beyond loopback although no API key exists (anyone who reaches the port may train, promote and import).")
    var allowUnauthenticated = false
    @Option(name: .customLong("max-upload-bytes"), help: "Uploaded files and adapter tars beyond this are answered 413.")
    var maxUploadBytes = 256 << 20

    func validate() throws {
        if maxUploadBytes < 1024 { throw ValidationError("--max-upload-bytes must be at least 1024, got \(maxUploadBytes)") }
    }

    /// The API's services with the key ring loaded and followed. Refuses to listen beyond loopback
    /// with no key in force unless --allow-unauthenticated.
    func services(registry: RegistryService, host: String, logger: Logger) throws -> APIServices {
        let ring = APIKeyRing(conninfo: registry.pool.conninfo, logger: logger)
        try ring.reload()
        let loopback = AuthPolicy.isLoopback(host)
        if !loopback && !allowUnauthenticated && !ring.enforcing {
            throw ValidationError("--host \(host) is not a loopback address and no API key exists: create one with "
                + "`lora keys create NAME --role admin`, or pass --allow-unauthenticated")
        }
        ring.start()
        return APIServices(registry: registry, auth: AuthPolicy(ring: ring, requireKeys: !loopback && !allowUnauthenticated),
                           maxUploadBytes: maxUploadBytes)
    }
}
