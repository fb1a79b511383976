import Crypto
import Foundation

public enum FileDigest {
    /// Lowercase hex sha256 of a file, streamed in 4 MiB reads.
    public static func sha256(of url: URL) throws -> String {
        let h = try FileHandle(forReadingFrom: url)
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The sha256 identifying a model's weights: the file's for a GGUF; for an HF directory,
    /// the sha256 of the sorted "name sha256" lines of its safetensors files.
    public static func modelWeightsSHA256(_ url: URL) throws -> String {
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        if !isDir.boolValue { return try sha256(of: url) }
        let files = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        var lines = ""
        for f in files { lines += "\(f) \(try sha256(of: url.appendingPathComponent(f)))\n" }
        return SHA256.hash(data: Data(lines.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
