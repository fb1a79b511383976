import Foundation
import FuzzSupport
import Training

// PEFT adapter_config.json parser (r, lora_alpha, target_modules, rank_pattern / alpha_pattern,
// use_rslora, ...); a config that parses is encoded back, as registration does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPEFTConfig(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let config = try? PEFTConfigFile.parse(FuzzInput.data(bytes, size), path: "adapter_config.json") else { return 0 }
    _ = try? PEFTConfigFile.encode(config, baseName: "base")
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzPEFTConfig.
@_cdecl("fuzz_peft_config_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzPEFTConfig)
}
