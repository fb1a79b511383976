import Foundation

/// Fetches base models named by URL into the local content-addressed cache and returns a path a model
/// loader can open. Safe to call from several threads and several processes at once (per-URL file locks).
///
///     let fetcher = ModelFetcher(environment: ProcessInfo.processInfo.environment)
///     let path = try fetcher.fetchModel("https://host/org/model/resolve/main/model.Q4_1.gguf", progress: nil)
public struct ModelFetcher: Sendable {
    public let cacheDirectory: URL
    public let token: String?
    public let options: FetchOptions

    /// - Parameters:
    ///   - cacheDirectory: the cache root (see `defaultCacheDirectory`).
    ///   - token: sent as `Authorization: Bearer <token>` to the model's host (never to other hosts a redirect leads to).
    public init(cacheDirectory: URL, token: String?, options: FetchOptions = FetchOptions()) {
        self.cacheDirectory = cacheDirectory
        self.token = token
        self.options = options
    }

    /// The cache under `$LORA_HOME` (default `~/.cache/lora`) and the token from `token`, else
    /// `LORA_TOKEN` / `HF_TOKEN`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, token: String? = nil,
                options: FetchOptions = FetchOptions()) {
        self.init(cacheDirectory: Self.defaultCacheDirectory(environment: environment),
                  token: token ?? FetchOptions.tokenFromEnvironment(environment), options: options)
    }

    /// `$LORA_HOME`, else `~/.cache/lora`.
    public static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment)
        -> URL
    {
        if let home = environment["LORA_HOME"], !home.isEmpty { return URL(fileURLWithPath: home) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/lora")
    }

    /// True when `spec` is a URL this fetcher downloads (http, https, file); false for a local path.
    public static func isRemote(_ spec: String) -> Bool {
        guard let colon = spec.firstIndex(of: ":") else { return false }
        let scheme = spec[..<colon].lowercased()
        return ["http", "https", "file"].contains(scheme) && spec[colon...].hasPrefix("://")
    }

    var cache: ContentCache { ContentCache(root: cacheDirectory) }

    /// Fetches `spec` (or finds it cached) and returns the local path: the file itself for a file URL,
    /// or a directory with the repository's files under their own names. A local path is returned as is.
    public func fetchModel(_ spec: String, progress: ((FetchProgress) -> Void)? = nil) throws -> URL {
        try fetch(spec, progress: progress).path
    }

    /// Like `fetchModel`, also reporting every file with its sha256.
    public func fetch(_ spec: String, progress: ((FetchProgress) -> Void)? = nil) throws -> FetchedModel {
        guard Self.isRemote(spec) else {
            let url = URL(fileURLWithPath: spec)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw FetchError.invalidSpec(spec: spec, reason: "not a URL, and no such local file")
            }
            return FetchedModel(path: url, files: [])
        }
        let parsed = try ModelSpec.parse(spec)
        try cache.ensureDirectories()
        let aggregator = ProgressAggregator(callback: progress)
        switch parsed.kind {
        case let .file(url, name):
            let item = Item(name: name, url: url, pinned: parsed.pinnedSHA256, optional: false)
            guard let file = try run([item], aggregator).first ?? nil else {
                throw FetchError.invalidModelFile(url: url, reason: "nothing was downloaded")
            }
            let snapshot = snapshotDirectory(for: parsed.canonical, label: (name as NSString).deletingPathExtension)
            let path = try cache.link(name: name, sha256: file.sha256, in: snapshot)
            return FetchedModel(path: path, files: [file])
        case let .repository(root, revision):
            return try fetchRepository(parsed.canonical, root: root, revision: revision, aggregator)
        }
    }

    // MARK: repositories

    static let requiredRepositoryFiles = ["config.json", "tokenizer.json"]
    static let optionalRepositoryFiles = ["tokenizer_config.json", "generation_config.json", "chat_template.jinja"]
    static let singleWeights = "model.safetensors"
    static let weightsIndex = "model.safetensors.index.json"

    private func fetchRepository(_ canonical: String, root: String, revision: String,
                                 _ aggregator: ProgressAggregator) throws -> FetchedModel {
        // Files known absent from an earlier fetch are not asked for again: a cache hit costs one HEAD per file.
        var absent = Set(cache.readModelRef(spec: canonical)?.absent ?? [])
        func item(_ name: String, optional: Bool) -> Item {
            Item(name: name, url: ModelSpec.fileURL(root: root, revision: revision, file: name), pinned: nil,
                 optional: optional)
        }
        var items = Self.requiredRepositoryFiles.map { item($0, optional: false) }
        items += Self.optionalRepositoryFiles.filter { !absent.contains($0) }.map { item($0, optional: true) }
        let sharded = absent.contains(Self.singleWeights)
        items.append(sharded ? item(Self.weightsIndex, optional: true) : item(Self.singleWeights, optional: true))

        var files: [FetchedFile] = []
        for (i, result) in try run(items, aggregator).enumerated() {
            if let file = result { files.append(file) } else { absent.insert(items[i].name) }
        }
        var index = files.first { $0.name == Self.weightsIndex }
        if !sharded && !files.contains(where: { $0.name == Self.singleWeights }) {
            index = try run([item(Self.weightsIndex, optional: true)], aggregator).first ?? nil
            if let index { files.append(index) }
        }
        guard let index else {
            if files.contains(where: { $0.name == Self.singleWeights }) { return try finish(canonical, files, absent) }
            throw FetchError.invalidModelFile(
                url: "\(root)/resolve/\(revision)",
                reason: "neither \(Self.singleWeights) nor \(Self.weightsIndex) exists in the repository")
        }
        absent.insert(Self.singleWeights)
        absent.remove(Self.weightsIndex)
        let shards = try Self.shardNames(indexFile: index)
        let shardFiles = try run(shards.map { item($0, optional: false) }, aggregator)
        files += shardFiles.compactMap { $0 }
        return try finish(canonical, files, absent)
    }

    private func finish(_ canonical: String, _ files: [FetchedFile], _ absent: Set<String>) throws -> FetchedModel {
        let label = canonical.split(separator: "/").dropLast(2).suffix(2).joined(separator: "--")
        let snapshot = snapshotDirectory(for: canonical, label: label)
        for file in files { _ = try cache.link(name: file.name, sha256: file.sha256, in: snapshot) }
        // Drop links a previous revision left (e.g. model.safetensors after the repository was sharded).
        let names = Set(files.map(\.name))
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: snapshot.path)) ?? []
        where !names.contains(entry) && !entry.hasPrefix(".") {
            unlink(snapshot.appendingPathComponent(entry).path)
        }
        try cache.writeModelRef(ModelRef(
            spec: canonical,
            files: files.map { .init(name: $0.name, url: $0.url, sha256: $0.sha256, size: $0.size) },
            absent: absent.sorted()))
        return FetchedModel(path: snapshot, files: files)
    }

    /// The shard file names of a `model.safetensors.index.json` (`weight_map` values), validated as plain names.
    static func shardNames(indexFile: FetchedFile) throws -> [String] {
        guard let data = try? Data(contentsOf: indexFile.blob),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = json["weight_map"] as? [String: String] else {
            throw FetchError.invalidModelFile(url: indexFile.url, reason: "no \"weight_map\" object of strings")
        }
        let names = Set(map.values).sorted()
        for name in names where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw FetchError.invalidModelFile(url: indexFile.url, reason: "shard name '\(name)' is not a plain file name")
        }
        guard !names.isEmpty else { throw FetchError.invalidModelFile(url: indexFile.url, reason: "weight_map is empty") }
        return names
    }

    private func snapshotDirectory(for canonical: String, label: String) -> URL {
        let clean = String(label.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }.prefix(80))
        let key = ContentCache.key(canonical).prefix(12)
        return cache.snapshotsDirectory.appendingPathComponent(clean.isEmpty ? String(key) : "\(clean)-\(key)",
                                                         isDirectory: true)
    }

    // MARK: parallel downloads

    struct Item {
        var name: String
        var url: String
        var pinned: String?
        /// A 404 means "absent" (nil result) rather than an error.
        var optional: Bool
    }

    /// Downloads `items` on up to `options.parallelDownloads` threads; results in the items' order.
    /// The first error (in item order) is thrown after every thread has finished.
    private func run(_ items: [Item], _ aggregator: ProgressAggregator) throws -> [FetchedFile?] {
        let downloader = FileDownloader(cache: cache, token: token, options: options)
        aggregator.register(items.map(\.name))
        let queue = WorkQueue<FetchedFile?>(count: items.count)
        let group = DispatchGroup()
        let workers = max(1, min(options.parallelDownloads, items.count))
        for _ in 0..<workers {
            group.enter()
            let thread = Thread {
                while true {
                    guard let i = queue.take() else { break }
                    let item = items[i]
                    let result: Result<FetchedFile?, Error>
                    do {
                        let file = try downloader.fetch(url: item.url, name: item.name, pinnedSHA256: item.pinned) {
                            aggregator.update(item.name, completed: $0, total: $1)
                        }
                        aggregator.finished(item.name, size: file.size)
                        result = .success(file)
                    } catch let error as FetchError where item.optional && error.isNotFound {
                        aggregator.absent(item.name)
                        result = .success(nil)
                    } catch {
                        result = .failure(error)
                    }
                    queue.store(result, at: i)
                }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return try queue.results()
    }
}
