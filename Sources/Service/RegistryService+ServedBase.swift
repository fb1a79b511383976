import Fetch
import Foundation
import Model
import Registry

/// The base model a server holds: the id it is served under (in `/v1/models`, and the base whose
/// task versions it serves) and the local path it loads from.
public struct ServedBase: Sendable, Equatable {
    public var id: String
    public var path: URL
    public init(id: String, path: URL) { self.id = id; self.path = path }
}

/// The base id could not be settled without serving the wrong adapters.
public struct ServedBaseError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

extension RegistryService {
    /// `lora serve --base NAME`: the registered base and its local path (fetched if registered by URL).
    public func servedBase(named name: String) throws -> ServedBase {
        let record = try baseModel(named: name)
        return ServedBase(id: record.name, path: try Self.localPath(of: record))
    }

    /// `lora serve --model SRC [--model-name NAME]`: the id is NAME (registered for SRC if it is not
    /// yet), else the name of a registered base with SRC's sha256, else SRC's file or directory name,
    /// registered as `lora jobs submit --model` registers it. A name registered for other bytes is
    /// refused, naming both hashes: its adapters were trained on another model.
    public func servedBase(source: String, modelName: String?, fetcher: ModelFetcher = ModelFetcher(),
                           actor: String = RegistryService.defaultActor()) throws -> ServedBase {
        let remote = ModelFetcher.isRemote(source)
        let path = remote ? try fetcher.fetchModel(source)
                          : URL(fileURLWithPath: (source as NSString).expandingTildeInPath).standardizedFileURL
        let (sha256, _) = try Self.hashModelFiles(path)
        let registered = try baseModels()
        if let name = modelName ?? registered.first(where: { $0.sha256 == sha256 })?.name {
            if let record = registered.first(where: { $0.name == name }) {
                try Self.check(record, matches: sha256, source: source)
                return ServedBase(id: name, path: path)
            }
            return ServedBase(id: try register(name: name, source: source, path: path, remote: remote, sha256: sha256, actor: actor), path: path)
        }
        // The name `lora jobs submit --model` gives it, so jobs and the server agree.
        let name = (remote ? URL(string: source)! : path).lastPathComponent
        if let record = registered.first(where: { $0.name == name }) {
            try Self.check(record, matches: sha256, source: source)
        }
        return ServedBase(id: try register(name: name, source: source, path: path, remote: remote, sha256: sha256, actor: actor), path: path)
    }

    private static func check(_ record: BaseModelRecord, matches sha256: String, source: String) throws {
        guard record.sha256 == sha256 else {
            throw ServedBaseError(description: "base model '\(record.name)' is registered with sha256 \(record.sha256), but \(source) has sha256 \(sha256); give another --model-name")
        }
    }

    /// Registers SRC under `name` (a URL by its URL, so any process can fetch it; a path by its path);
    /// a concurrent registration of the same name is accepted when its bytes match.
    private func register(name: String, source: String, path: URL, remote: Bool, sha256: String, actor: String) throws -> String {
        do {
            if remote { return try addBaseModel(name: name, source: path, recordedSource: source, actor: actor).name }
            return try addBaseModel(name: name, source: path, actor: actor).name
        } catch RegistryError.alreadyExists {
            try Self.check(try baseModel(named: name), matches: sha256, source: source)
            return name
        }
    }
}
