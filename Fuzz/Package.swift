// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for lora's parsers: one executable per parser, each defining
// LLVMFuzzerTestOneInput. Built only by scripts/fuzz.sh, with
// `-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`; never by CI or the root package.
// SwiftPM links a Linux executable with `--defsym main=<module>_main`, so each harness defines that
// symbol and hands control to libFuzzer's LLVMFuzzerRunDriver (FuzzSupport.FuzzInput.runDriver).
let harnesses = ["fuzz-gguf", "fuzz-safetensors", "fuzz-tokenizer-json", "fuzz-chat-template", "fuzz-jsonl", "fuzz-peft-config"]
// The server's request bodies need the Server target (Hummingbird, NIO): only that harness links it.
let serverHarnesses = ["fuzz-server-requests"]

let package = Package(
    name: "LoraFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "lora", path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"]),
    ] + harnesses.map {
        .executableTarget(name: $0, dependencies: ["FuzzSupport", .product(name: "LoraParsers", package: "lora")])
    } + serverHarnesses.map {
        .executableTarget(name: $0, dependencies: ["FuzzSupport", .product(name: "LoraServer", package: "lora")])
    },
    swiftLanguageModes: [.v5]
)
