import Foundation

/// Network behaviour of a fetch. The defaults suit multi-GB downloads over a flaky network;
/// tests shorten the timeouts and backoff.
public struct FetchOptions: Sendable {
    /// Seconds to wait for a TCP/TLS connection (CURLOPT_CONNECTTIMEOUT_MS).
    public var connectTimeout: TimeInterval
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds is aborted and retried
    /// (CURLOPT_LOW_SPEED_LIMIT / _TIME; libcurl counts whole seconds, so at least 1).
    public var lowSpeedLimit: Int
    public var lowSpeedTime: TimeInterval
    /// Attempts per file before giving up on retryable failures. An attempt that made progress
    /// (received body bytes) resets the count, so a long download survives many drops.
    public var maxAttempts: Int
    /// Exponential backoff: the n-th retry waits a random time in [d/2, d], d = min(initial * 2^(n-1), max).
    public var initialBackoff: TimeInterval
    public var maxBackoff: TimeInterval
    /// A server's Retry-After is honoured up to this many seconds.
    public var maxRetryAfter: TimeInterval
    /// Files of one model downloaded at the same time.
    public var parallelDownloads: Int
    /// Look for `<url>.sha256` when neither the spec nor the server (X-Linked-Etag) gives a sha256.
    public var checkSidecar: Bool
    public var userAgent: String
    /// A file whose declared size (Content-Length, Content-Range) is larger, or whose body grows
    /// past this without a declared size, is refused and its partial bytes deleted (`lora pull
    /// --max-bytes`): an endless body cannot fill the disk.
    public var maxBytes: Int64 = FetchOptions.defaultMaxBytes
    /// 256 GiB: above the largest single model file people download (a 405B-parameter GGUF shard
    /// is split at 50 GB; an unsplit 70B Q8_0 is 75 GB), far below a typical disk.
    public static let defaultMaxBytes: Int64 = 256 << 30

    public init(connectTimeout: TimeInterval = 30, lowSpeedLimit: Int = 1024, lowSpeedTime: TimeInterval = 60,
                maxAttempts: Int = 8, initialBackoff: TimeInterval = 1, maxBackoff: TimeInterval = 60,
                maxRetryAfter: TimeInterval = 300, parallelDownloads: Int = 4, checkSidecar: Bool = true,
                userAgent: String = "lora-fetch/1") {
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxRetryAfter = maxRetryAfter
        self.parallelDownloads = parallelDownloads
        self.checkSidecar = checkSidecar
        self.userAgent = userAgent
    }

    /// The access token from the environment: `LORA_TOKEN`, else `HF_TOKEN` (the hub client's name).
    public static func tokenFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> String?
    {
        for name in ["LORA_TOKEN", "HF_TOKEN"] {
            if let t = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty { return t }
        }
        return nil
    }
}
