import CFuzzDriver
import Foundation

/// A per-process scratch file for readers that take a path (GGUF and safetensors map their file):
/// each input overwrites it, so a run leaves one file behind, in the temporary directory.
public enum FuzzInput {
    nonisolated(unsafe) private static var scratch: URL?

    /// Writes `data` to this process's scratch file (named by extension `ext`) and returns its URL.
    public static func file(_ data: Data, ext: String) -> URL {
        let url = scratch ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("lora-fuzz-\(getpid()).\(ext)")
        scratch = url
        // A failed write is the harness's fault, not the parser's: stop loudly.
        guard FileManager.default.createFile(atPath: url.path, contents: data) else {
            fatalError("cannot write the fuzz scratch file \(url.path)")
        }
        return url
    }

    /// The bytes libFuzzer passes, as Data (empty when `size` is 0 and `bytes` may be null).
    public static func data(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Data {
        guard let bytes, size > 0 else { return Data() }
        return Data(bytes: bytes, count: size)
    }
}

extension FuzzInput {
    /// Runs libFuzzer's loop over `callback` with the process's command line (libFuzzer's flags).
    public static func runDriver(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                 _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv, callback)
    }
}
