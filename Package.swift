// swift-tools-version:6.0
import PackageDescription

// Kernels are compiled without overflow and bounds checks in release builds: they index
// raw buffers whose sizes are validated once, at load time, by the model loader.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "lora",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lora", targets: ["lora"]),
        .executable(name: "DecodeBench", targets: ["DecodeBench"]),
        // Parser libraries for the libFuzzer harnesses in Fuzz/ (a separate package that depends on
        // this one by path; neither CI nor the root build builds it).
        .library(name: "LoraParsers", targets: ["Tokenizer", "ChatTemplate", "Model", "Training"]),
        // The HTTP server's request-body decoders (RequestBodies), for the request fuzzer in Fuzz/.
        .library(name: "LoraServer", targets: ["Server"]),
        // An allocation counter for `LD_PRELOAD` (`lora bench decode --count-allocations`, AllocationCLITests):
        // it defines malloc and friends, so no target may ever depend on it.
        .library(name: "LoraAllocCounter", type: .dynamic, targets: ["AllocCounter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The HTTP server (Sources/Server only) and its metrics.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Already resolved for Hummingbird; named here for NIOHTTPTypes (HeaderOverflowResponder).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/multipart-kit", exact: "4.7.1"),
    ],
    targets: [
        // System libraries: a module map and nothing else.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Layers, bottom up.
        // AVX2/FMA/F16C kernels behind a run-time CPU check (per-function target attributes; the
        // target itself compiles for baseline x86-64). No FMA contraction: the kernels spell out
        // every fused operation, so a row's bits never depend on the compiler's choices.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // Only in the LoraAllocCounter product above (a preloaded shared library), never a dependency.
        .target(name: "AllocCounter"),
        .target(name: "Kernels", dependencies: ["CBLAS", "CKernels"], swiftSettings: fastMath),
        .target(name: "Quantization", dependencies: ["Kernels", "CKernels"], swiftSettings: fastMath),
        // Foundation's and Codable's errors reworded for messages that wrap them (no dependencies).
        .target(name: "Diagnostics"),
        .target(name: "Tokenizer"),
        .target(name: "ChatTemplate"),
        .target(name: "Model", dependencies: ["Kernels", "Quantization", "Tokenizer", "ChatTemplate"], swiftSettings: fastMath),
        .target(name: "Training", dependencies: ["Kernels", "Model", "ChatTemplate", "Diagnostics"], swiftSettings: fastMath),
        .target(name: "Fetch", dependencies: ["CCurl", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Registry", dependencies: [
            "CLibPQ", "Diagnostics",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Service", dependencies: [
            "Model", "Training", "Fetch", "Registry", "Diagnostics",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        // HTTP routes only (OpenAI-compatible serving, metrics, health): decode, call the backend, encode.
        .target(name: "Server", dependencies: [
            "Service", "ChatTemplate", "Model", "Registry", "Training", "Diagnostics",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "MultipartKit", package: "multipart-kit"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "lora", dependencies: [
            "Service", "Fetch", "Server", "Diagnostics",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Benchmarks (scripts/bench/*.sh; not run in CI): timings stay out of the test suite. Issue 15's figures
        // (training, prefill, decode, the decode GEMVs) are `lora bench`.
        .executableTarget(name: "DecodeBench", dependencies: ["Model", "Kernels", "Quantization"], path: "Benchmarks/DecodeBench",
                          swiftSettings: fastMath),
        // Prompt-lookup speculation's acceptance rate and tokens/s gain on a task's prompts (scripts/bench/speculate.sh).
        .executableTarget(name: "SpeculateBench", dependencies: ["Model", "Service", "Training"], path: "Benchmarks/SpeculateBench"),
        // A load generator for `lora serve` on loopback (scripts/bench/serve.sh): plain sockets, no dependencies.
        .executableTarget(name: "ServeBench", path: "Benchmarks/ServeBench"),

        // Tests. Shared helpers (fixture paths, the default model's location) live in TestSupport.
        .target(name: "TestSupport", dependencies: ["Kernels", "Model"], path: "Tests/TestSupport"),
        // Helpers for tests that need PostgreSQL (one embedded cluster per test process, a database per test).
        .target(name: "ServiceTestSupport", dependencies: ["Registry", "Service", "TestSupport"], path: "Tests/ServiceTestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "TestSupport"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Model", "TestSupport"]),
        .testTarget(name: "FetchTests", dependencies: ["Fetch", "TestSupport"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "Service", "Training", "TestSupport", "ServiceTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "ServiceTestSupport", "Model", "Quantization"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "Service", "ChatTemplate", "Model", "Registry", "Training", "TestSupport", "ServiceTestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ServingTests", dependencies: ["ChatTemplate", "Service", "Model", "Training", "Registry", "Kernels", "Quantization", "TestSupport", "ServiceTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
