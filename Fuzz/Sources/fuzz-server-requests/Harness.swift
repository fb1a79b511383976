import Foundation
import FuzzSupport
import Server

// The server's request bodies (completions, chat completions, fine-tuning job, file upload form,
// promote, rollback), decoded and validated as the routes do: the first byte picks the endpoint,
// the rest is the body. Accepted, or an APIError a client can act on (4xx, a message); any other
// outcome (a 500 from an error the decoders let through, a trap) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerRequests(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes, size > 0 else { return 0 }
    let kinds = RequestBodies.Kind.allCases
    let kind = kinds[Int(bytes[0]) % kinds.count]
    let body = Array(UnsafeBufferPointer(start: bytes + 1, count: size - 1))
    if let error = RequestBodies.decode(kind, body) {
        guard (400..<500).contains(error.status.code), !error.message.isEmpty else {
            fatalError("\(kind) body answered \(error.status.code): \(error.message)")
        }
        _ = error.body.serialized()
    }
    return 0
}

/// The process entry (SwiftPM links `main` to this symbol): libFuzzer's driver over fuzzServerRequests.
@_cdecl("fuzz_server_requests_main")
public func harnessMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzInput.runDriver(argc, argv, fuzzServerRequests)
}
