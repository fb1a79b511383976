import Foundation
import Registry

/// Where the registry lives: a PostgreSQL URL, or the embedded cluster under the data directory.
/// The data directory also holds the artifact cache (`cache/sha256/<hex>`, `cache/adapters/<hex>`).
public struct RegistryConfiguration: Sendable, Equatable {
    /// libpq URL or keyword string; nil means the embedded cluster.
    public var databaseURL: String?
    public var dataDirectory: URL

    public init(databaseURL: String?, dataDirectory: URL) {
        self.databaseURL = databaseURL
        self.dataDirectory = dataDirectory
    }

    /// `--database-url`, else `DATABASE_URL`, else the embedded cluster; `--data-dir`, else the
    /// default data directory (EmbeddedCluster.defaultDataDirectory()).
    public static func resolve(databaseURL: String?, dataDirectory: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> RegistryConfiguration {
        let url = [databaseURL, environment["DATABASE_URL"]].compactMap { $0 }.first { !$0.isEmpty }
        let dir = dataDirectory.flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) } ?? EmbeddedCluster.defaultDataDirectory()
        return RegistryConfiguration(databaseURL: url, dataDirectory: dir)
    }

    public var cluster: EmbeddedCluster { EmbeddedCluster(dataDirectory: dataDirectory) }
    public var cacheDirectory: URL { dataDirectory.appendingPathComponent("cache") }
}
