import Foundation
import Registry
import Service

/// The services behind the fine-tuning and registry routes (present when the server has a registry).
public struct APIServices: Sendable {
    public let registry: RegistryService
    public let jobs: JobService
    public let files: FileService
    /// API keys and how requests without one are treated; nil: no key checks at all.
    public let auth: AuthPolicy?
    /// Uploads (`POST /v1/files`, adapter imports) beyond this are answered 413.
    public let maxUploadBytes: Int

    public init(registry: RegistryService, auth: AuthPolicy?, maxUploadBytes: Int = 256 << 20) {
        self.registry = registry
        self.jobs = JobService(registry: registry)
        self.files = FileService(registry: registry)
        self.auth = auth
        self.maxUploadBytes = maxUploadBytes
    }
}
