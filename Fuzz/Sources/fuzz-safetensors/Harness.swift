import Foundation
import FuzzSupport
import Model

// safetensors reader: the length-prefixed JSON header, dtypes, shapes and data offsets; then every
// tensor's bytes and (for float dtypes) its values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let url = FuzzInput.file(FuzzInput.data(bytes, size), ext: "safetensors")
    guard let file = try? SafetensorsFile(url) else { return 0 }
    for name in file.names.prefix(16) {
        _ = file.info(name)
        _ = try? file.rawBytes(name)
        _ = try? file.floats(name)
    }
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzSafetensors.
@_cdecl("fuzz_safetensors_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzSafetensors)
}
