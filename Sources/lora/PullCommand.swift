import ArgumentParser
import Fetch
import Foundation

/// `lora pull SRC`: download a base model into the cache and print its local path.
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a base model (GGUF URL or Hugging Face-style repository URL) and print its local path.",
        discussion: "SRC is an http(s) or file URL of a file (optionally pinned: URL#sha256=<hex>), a repository "
            + "root (https://host/org/name), or {root}/resolve/{revision}[/{file}]. Files are cached under "
            + "$LORA_HOME (default ~/.cache/lora), verified by sha256, and resumed after interruptions.")

    @Argument(help: "The model URL.")
    var source: String

    @Option(help: "Bearer token for private hosts (default: $LORA_TOKEN, else $HF_TOKEN).")
    var token: String?

    @Flag(help: "Print a JSON object (path and files with their sha256) instead of the path.")
    var json = false

    @Option(help: "Seconds to wait for a connection.")
    var connectTimeout: Double = 30

    @Option(help: "Seconds a transfer may stay below 1 KB/s before it is retried.")
    var lowSpeedTime: Double = 60

    @Option(help: "Attempts per file on connection errors, 5xx and 429.")
    var maxAttempts: Int = 8

    @Option(help: ArgumentHelp("Largest file accepted (bytes; K/M/G/T suffixes): a larger declared size is refused before "
                               + "downloading, a body growing past it without one is stopped and deleted.", valueName: "bytes"))
    var maxBytes = ByteSize(bytes: Int(FetchOptions.defaultMaxBytes))

    func validate() throws {
        guard ModelFetcher.isRemote(source) else {
            throw ValidationError("'\(source)' is not an http://, https:// or file:// URL")
        }
        guard connectTimeout > 0, lowSpeedTime > 0 else { throw ValidationError("timeouts must be positive") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard maxBytes.bytes >= 1 else { throw ValidationError("--max-bytes must be at least 1") }
    }

    func run() throws {
        var options = FetchOptions(connectTimeout: connectTimeout, lowSpeedTime: lowSpeedTime, maxAttempts: maxAttempts)
        options.maxBytes = Int64(maxBytes.bytes)
        let fetcher = ModelFetcher(token: token, options: options)
        let bar = isatty(STDERR_FILENO) == 1 ? PullProgress() : nil
        let model: FetchedModel
        do {
            model = try fetcher.fetch(source, progress: bar.map { b in { b.update($0) } })
            bar?.finish()
        } catch {
            bar?.finish()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let files: [[String: Any]] = model.files.map {
                ["name": $0.name, "url": $0.url, "sha256": $0.sha256, "size": $0.size,
                 "verified_by": $0.verifiedBy ?? NSNull(), "cached": $0.fromCache]
            }
            let object: [String: Any] = ["path": model.path.path, "files": files]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(model.path.path)
        }
    }
}

/// The download's progress on stderr (bytes, rate, ETA), drawn with the shared `ProgressLine`.
final class PullProgress: @unchecked Sendable {
    let line = ProgressLine()
    private let start = Date()
    private var baseline: Int64?

    func update(_ p: FetchProgress) {
        let base = baseline ?? p.completedBytes
        baseline = base
        let rate = Double(p.completedBytes - base) / max(Date().timeIntervalSince(start), 0.001)
        var text = "\(p.filesCompleted)/\(p.filesTotal) files  \(Self.bytes(p.completedBytes))"
        if let total = p.totalBytes, total > 0 {
            let width = 24
            let filled = Int(min(1, Double(p.completedBytes) / Double(total)) * Double(width))
            text = "[\(String(repeating: "#", count: filled))\(String(repeating: "-", count: width - filled))] "
                + text + " / \(Self.bytes(total))"
            if rate > 0 { text += "  ETA \(ProgressLine.duration(Double(total - p.completedBytes) / rate))" }
        }
        line.update(text + "  \(Self.bytes(Int64(rate)))/s")
    }

    func finish() { line.finishLine() }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
