import Foundation
import FuzzSupport
import Model
import Tokenizer

// GGUF reader: header, metadata (nested arrays), tensor table; then what loading reads from the
// metadata (the model config, the tokenizer data and the tokenizer built from it) and each tensor's
// bytes. Any thrown error is an expected rejection; a crash or sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let url = FuzzInput.file(FuzzInput.data(bytes, size), ext: "gguf")
    guard let file = try? GGUFFile(url) else { return 0 }
    _ = try? file.llamaConfig()
    if let data = try? file.tokenizerData(), let tokenizer = try? Tokenizer(gguf: data) {
        _ = tokenizer.decode(tokenizer.encode("Hello, world! 123"))
    }
    for t in file.tensors.prefix(16) {
        _ = try? file.rawBytes(t.name)
        _ = try? file.floats(t.name)
    }
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzGGUF.
@_cdecl("fuzz_gguf_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzGGUF)
}
