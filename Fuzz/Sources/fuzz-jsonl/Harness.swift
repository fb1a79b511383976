import Foundation
import FuzzSupport
import Model

// JSONL training records: line splitting, the line-length limit, and the three record shapes
// (messages, prompt/completion, text). A small line limit lets the fuzzer reach the limit's path.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONL(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let data = FuzzInput.data(bytes, size)
    _ = try? JSONLReader.parseTextRecords(data, path: "fuzz.jsonl")
    _ = try? JSONLReader.parseTextRecords(data, path: "fuzz.jsonl", maxLineBytes: 64)
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzJSONL.
@_cdecl("fuzz_jsonl_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzJSONL)
}
