import Foundation
import FuzzSupport
import Tokenizer

// tokenizer.json loader (the JSON reader, model, normalizers, pre-tokenizers, decoders, added
// tokens); a tokenizer that loads then encodes and decodes a short text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerJSON(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let tokenizer = try? Tokenizer(tokenizerJSONData: FuzzInput.data(bytes, size), tokenizerConfigData: nil) else { return 0 }
    let ids = tokenizer.encode("Hello, world! ünïcödé 123 <|im_start|>")
    _ = tokenizer.decode(ids)
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzTokenizerJSON.
@_cdecl("fuzz_tokenizer_json_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzTokenizerJSON)
}
