import Foundation
import Logging
import Model
import Registry
import Training

/// `lora generate` / `lora score --adapter ARG`: a PEFT directory when ARG is one, else a registry
/// reference (`TASK`, `TASK@N`, `TASK@ALIAS`) resolved and loaded exactly as `lora serve` does:
/// `ModelResolver` (one query; a version trained on another base is refused naming both) and
/// `AdapterCache` (the artifact fetched, verified and read by the same loader).
public enum AdapterArgument {
    public struct Loaded {
        public var adapter: LoRAAdapter
        /// What answered, `TASK@N`; nil for a directory.
        public var served: ServedModel?
    }

    /// Typed so the CLI can name its flag: the reference does not resolve on this base.
    public enum Failure: Error, CustomStringConvertible {
        case notFound(reference: String, reason: String)
        case notAReference(String)

        public var description: String {
            switch self {
            case let .notFound(reference, reason): return "adapter `\(reference)`: \(reason)"
            case let .notAReference(argument):
                return "'\(argument)' is neither an adapter directory, a .gguf LoRA file nor a registry reference (TASK, TASK@N, TASK@ALIAS)"
            }
        }
    }

    /// Loads `argument` for `model`. `directory` is the argument as a path (tilde expanded); the
    /// registry is opened only for a reference. `warn` gets a directory adapter's base mismatch.
    public static func load(_ argument: String, directory: String, configuration: RegistryConfiguration,
                            model: LanguageModel, inspector: BaseModelInspector = DefaultBaseModelInspector(),
                            warn: (String) -> Void) throws -> Loaded {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir),
           isDir.boolValue || directory.lowercased().hasSuffix(".gguf") {
            // A PEFT directory, or a GGUF LoRA file in llama.cpp's layout (q/k permutation undone).
            return Loaded(adapter: try TrainingService.loadAdapter(URL(fileURLWithPath: directory), for: model, warn: warn), served: nil)
        }
        guard (try? AdapterReference.parse(argument)) != nil else { throw Failure.notAReference(argument) }
        let registry = try RegistryService.open(configuration, inspector: inspector, maxConnections: 1)
        // The base as the registry knows it: a registered base with these bytes, else the file name
        // (which no version names, so every version is refused as trained on another base).
        let (sha256, _) = try RegistryService.hashModelFiles(model.source)
        let baseId = try registry.baseModels().first { $0.sha256 == sha256 }?.name ?? model.source.lastPathComponent
        let resolver = ModelResolver(baseModelId: baseId, registry: registry, recheckSeconds: 1)
        let served: ServedModel
        do {
            served = try resolver.resolve(argument)
        } catch ServingError.modelNotFound(_, let reason) {
            throw Failure.notFound(reference: argument, reason: reason)
        }
        guard let sha = served.adapterSHA256 else {
            throw Failure.notFound(reference: argument, reason: "it names the base model `\(baseId)`, not an adapter")
        }
        let cache = AdapterCache(budgetBytes: Int.max, logger: registry.logger,
                                 loader: AdapterCache.registryLoader(registry, base: model.model.config))
        return Loaded(adapter: try cache.acquire(sha256: sha), served: served)
    }
}
