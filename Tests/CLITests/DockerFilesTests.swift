import Foundation
import TestSupport
import XCTest

/// docker/ without a Docker engine (none runs on the project's machines): every `lora` command the
/// container files run (compose.yaml's `command:` arrays, the Dockerfile's ENTRYPOINT/CMD, the
/// `docker compose run --rm SERVICE ...` lines of docker/README.md) names subcommands and flags that
/// the built binary's `--help` lists; the published port is serve's `--port`; every variable set for
/// a lora container is one the sources read; the image's runtime packages are the ones behind
/// scripts/install-deps.sh's -dev packages and own the libraries the binary links.
/// `DockerFilesChecker` returns problems rather than asserting, so the tests below also show it
/// reports a renamed flag, subcommand, variable, port or package.
final class DockerFilesTests: XCTestCase {
    static let docker = TestPaths.repoRoot.appendingPathComponent("docker")

    func testContainerFilesAgreeWithTheBinaryAndTheSources() throws {
        let checker = try DockerFilesChecker()
        let files = try DockerFiles.load()
        XCTAssertEqual(files.entrypoint, ["lora"], "docker/Dockerfile: ENTRYPOINT must run lora")
        let served = files.compose.filter(\.runsLora)
        XCTAssertEqual(Set(served.map(\.name)), ["serve", "worker"], "docker/compose.yaml: the services running the lora image")
        XCTAssertEqual(served.first { $0.name == "serve" }?.command.first, "serve")
        XCTAssertEqual(served.first { $0.name == "worker" }?.command.first, "worker")
        XCTAssertTrue(files.compose.contains { $0.name == "postgres" && ($0.image ?? "").hasPrefix("postgres:15") },
                      "docker/compose.yaml: a postgres:15 service")
        XCTAssertGreaterThanOrEqual(files.readmeCommands.count, 3, "docker/README.md: `docker compose run --rm SERVICE ...` lines checked")
        let problems = try checker.problems(files)
        XCTAssertEqual(problems, [], problems.joined(separator: "\n"))
    }

    func testRuntimePackagesOwnTheLibrariesTheBinaryLinks() throws {
        let files = try DockerFiles.load()
        let checker = try DockerFilesChecker()
        XCTAssertEqual(try checker.linkedLibraryProblems(runtimePackages: files.runtimePackages), [])
        // A run stage without libpq5 leaves libpq.so.5 unowned.
        let problems = try checker.linkedLibraryProblems(runtimePackages: files.runtimePackages.filter { $0 != "libpq5" })
        XCTAssertTrue(problems.contains { $0.contains("libpq.so.5") }, "\(problems)")
    }

    /// The checker is not vacuous: each kind of drift the files could suffer is reported, naming it.
    func testRenamedFlagsSubcommandsVariablesPortsAndPackagesAreReported() throws {
        let checker = try DockerFilesChecker()
        let good = try DockerFiles.load()

        func reported(_ mutate: (inout DockerFiles) -> Void, _ expected: String, line: UInt = #line) throws {
            var files = good
            mutate(&files)
            let problems = try checker.problems(files)
            XCTAssertTrue(problems.contains { $0.contains(expected) }, "expected a problem naming \(expected), got \(problems)", line: line)
        }
        func editService(_ name: String, _ f: @escaping (inout ComposeService) -> Void) -> (inout DockerFiles) -> Void {
            { files in
                guard let i = files.compose.firstIndex(where: { $0.name == name }) else { return XCTFail("no service \(name)") }
                f(&files.compose[i])
            }
        }
        try reported(editService("serve") { $0.command = $0.command.map { $0 == "--base" ? "--base-model" : $0 } }, "--base-model")
        try reported(editService("worker") { $0.command = $0.command.map { $0 == "--threads" ? "--thread" : $0 } }, "--thread")
        try reported(editService("worker") { $0.command[0] = "workers" }, "workers")
        try reported(editService("serve") { $0.environment.append(("LORA_DATABASE", "x", 0)) }, "LORA_DATABASE")
        try reported(editService("serve") { $0.ports = ["8080:9090"] }, "9090")
        try reported(editService("serve") { s in
            if let i = s.command.firstIndex(of: "--port") { s.command[i + 1] = "8081" }
        }, "8081")
        try reported(editService("serve") { s in
            if let i = s.command.firstIndex(of: "--host") { s.command[i + 1] = "127.0.0.1" }
        }, "127.0.0.1")
        try reported({ $0.readmeCommands.append((["keys", "make", "admin", "--role", "admin"], 1)) }, "make")
        try reported({ $0.runtimePackages.removeAll { $0 == "libcurl4" } }, "libcurl4")
        try reported({ $0.buildPackages.removeAll { $0 == "libpq-dev" } }, "libpq-dev")
        try reported({ $0.environment.append(("LORA_CACHE", "/x", 0)) }, "LORA_CACHE")
        try reported({ $0.exposed = ["9000"] }, "EXPOSE")
    }
}

// MARK: - The files, read line by line (they are kept regular on purpose)

struct ComposeService {
    var name: String
    var line: Int
    var image: String?
    var build = false
    var command: [String] = []
    var commandLine = 0
    /// (name, value, line)
    var environment: [(String, String, Int)] = []
    /// "HOST:CONTAINER" as written
    var ports: [String] = []

    /// Runs the lora image (built here, or tagged lora).
    var runsLora: Bool { build || (image ?? "").hasPrefix("lora") }
}

struct DockerFiles {
    var compose: [ComposeService] = []
    var entrypoint: [String] = []
    var cmd: [String] = []
    /// ENV of the run stage: (name, value, line)
    var environment: [(String, String, Int)] = []
    var exposed: [String] = []
    var buildPackages: [String] = []
    var runtimePackages: [String] = []
    /// lora arguments of README lines `docker compose run --rm SERVICE ARGS...`, with their line.
    var readmeCommands: [([String], Int)] = []
    var readme = ""

    static func load() throws -> DockerFiles {
        var f = DockerFiles()
        let dir = DockerFilesTests.docker
        f.compose = try parseCompose(String(contentsOf: dir.appendingPathComponent("compose.yaml"), encoding: .utf8))
        try f.parseDockerfile(String(contentsOf: dir.appendingPathComponent("Dockerfile"), encoding: .utf8))
        f.readme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        for (i, raw) in f.readme.components(separatedBy: "\n").enumerated() {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.count > 5, Array(words[0..<4]) == ["docker", "compose", "run", "--rm"], !words[4].hasPrefix("-") else { continue }
            f.readmeCommands.append((Array(words[5...]), i + 1))
        }
        return f
    }

    static func parseCompose(_ text: String) throws -> [ComposeService] {
        var services: [ComposeService] = []
        var inServices = false
        var section = ""
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let indent = line.prefix { $0 == " " }.count
            if indent == 0 { inServices = trimmed == "services:"; continue }
            guard inServices else { continue }
            if indent == 2, trimmed.hasSuffix(":") {
                services.append(ComposeService(name: String(trimmed.dropLast()), line: i + 1))
                section = ""
                continue
            }
            guard !services.isEmpty else { continue }
            let n = services.count - 1
            if indent == 4 {
                let (key, value) = splitKey(trimmed)
                section = key
                switch key {
                case "image": services[n].image = value
                case "build": services[n].build = true
                case "command":
                    guard let data = value.data(using: .utf8),
                          let array = try JSONSerialization.jsonObject(with: data) as? [String] else {
                        throw DockerParseError(description: "docker/compose.yaml line \(i + 1): command must be a JSON array of strings, got \(value)")
                    }
                    services[n].command = array
                    services[n].commandLine = i + 1
                default: break
                }
            } else if indent == 6, section == "environment" {
                let (key, value) = splitKey(trimmed)
                services[n].environment.append((key, value, i + 1))
            } else if indent == 6, section == "ports", trimmed.hasPrefix("- ") {
                services[n].ports.append(trimmed.dropFirst(2).trimmingCharacters(in: CharacterSet(charactersIn: "\" ")))
            }
        }
        return services
    }

    static func splitKey(_ s: String) -> (String, String) {
        guard let c = s.firstIndex(of: ":") else { return (s, "") }
        return (String(s[..<c]), s[s.index(after: c)...].trimmingCharacters(in: .whitespaces))
    }

    /// Instructions with `\` continuations joined; the last FROM starts the run stage.
    mutating func parseDockerfile(_ text: String) throws {
        var logical: [(String, Int)] = []
        var pending = "", start = 0
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let t = raw.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (t.isEmpty || t.hasPrefix("#")) { continue }
            if pending.isEmpty { start = i + 1 }
            if t.hasSuffix("\\") { pending += String(t.dropLast()) + " "; continue }
            logical.append((pending + t, start))
            pending = ""
        }
        let stages = logical.indices.filter { logical[$0].0.uppercased().hasPrefix("FROM ") }
        guard stages.count >= 2, let runStage = stages.last else {
            throw DockerParseError(description: "docker/Dockerfile: expected a build stage and a run stage (two FROM lines), found \(stages.count)")
        }
        for (idx, (instr, line)) in logical.enumerated() {
            let words = instr.split(whereSeparator: { $0 == " " }).map(String.init)
            guard let op = words.first?.uppercased() else { continue }
            let rest = instr.dropFirst(words[0].count).trimmingCharacters(in: .whitespaces)
            switch op {
            case "ENTRYPOINT": entrypoint = try Self.jsonArray(rest, line)
            case "CMD": cmd = try Self.jsonArray(rest, line)
            case "EXPOSE": exposed += words.dropFirst()
            case "ENV" where idx > runStage:
                for w in words.dropFirst() {
                    let (k, v) = w.firstIndex(of: "=").map { (String(w[..<$0]), String(w[w.index(after: $0)...])) } ?? (w, "")
                    environment.append((k, v, line))
                }
            case "RUN":
                // apt-get install's package names, up to the next `&&`.
                var k = 0
                while let at = words[k...].indices.first(where: { words[$0] == "install" && $0 > 0 && words[$0 - 1] == "apt-get" }) {
                    var j = at + 1
                    while j < words.count && words[j] != "&&" {
                        if !words[j].hasPrefix("-") {
                            if idx > runStage { runtimePackages.append(words[j]) } else { buildPackages.append(words[j]) }
                        }
                        j += 1
                    }
                    k = j
                }
            default: break
            }
        }
    }

    static func jsonArray(_ s: String, _ line: Int) throws -> [String] {
        guard let data = s.data(using: .utf8), let a = try? JSONSerialization.jsonObject(with: data) as? [String] else {
            throw DockerParseError(description: "docker/Dockerfile line \(line): expected the exec form (a JSON array), got \(s)")
        }
        return a
    }
}

struct DockerParseError: Error, CustomStringConvertible { let description: String }

// MARK: - The checks

/// Checks DockerFiles against the built binary's help, the sources' environment reads and
/// scripts/install-deps.sh.
final class DockerFilesChecker {
    /// Runtime package (or package family: libopenblas0-pthread, -openmp, -serial) behind each -dev
    /// package of scripts/install-deps.sh, and the library it provides that the binary links.
    static let runtimeOf: [String: (package: String, library: String)] = [
        "libopenblas-dev": ("libopenblas0", "libopenblas.so.0"),
        "libcurl4-openssl-dev": ("libcurl4", "libcurl.so.4"),
        "libpq-dev": ("libpq5", "libpq.so.5"),
    ]

    var helpCache: [[String]: String] = [:]
    let variablesRead: Set<String>
    let devPackages: [String]

    init() throws {
        // Every variable the sources read: environment["X"] / env["X"], and FetchOptions' token names.
        var names = Set<String>()
        let sources = TestPaths.repoRoot.appendingPathComponent("Sources")
        let regex = try NSRegularExpression(pattern: #"(?:environment|env)\[\s*"([A-Z][A-Z0-9_]*)"\s*\]"#)
        for case let url as URL in FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)! where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                names.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        variablesRead = names
        let deps = try String(contentsOf: TestPaths.repoRoot.appendingPathComponent("scripts/install-deps.sh"), encoding: .utf8)
        guard let line = deps.components(separatedBy: "\n").first(where: { $0.hasPrefix("pkgs=(") }) else {
            throw DockerParseError(description: "scripts/install-deps.sh: no pkgs=(...) line")
        }
        devPackages = line.dropFirst("pkgs=(".count).prefix { $0 != ")" }.split(separator: " ").map(String.init).filter { $0.hasSuffix("-dev") }
    }

    /// `lora PATH... --help`, or nil when lora rejects the path.
    func help(_ path: [String]) throws -> String? {
        if let h = helpCache[path] { return h }
        let r = try runProcess(TestPaths.loraBinary, path + ["--help"])
        guard r.status == 0 else { return nil }
        helpCache[path] = r.stdout
        return r.stdout
    }

    /// Names listed under SUBCOMMANDS: in a help text.
    static func subcommands(_ help: String) -> Set<String> {
        var out = Set<String>(), inside = false
        for line in help.components(separatedBy: "\n") {
            if line.hasPrefix("SUBCOMMANDS:") { inside = true; continue }
            guard inside else { continue }
            if !line.isEmpty && !line.hasPrefix(" ") { break }
            let t = line.dropFirst(2)
            guard line.hasPrefix("  "), let c = t.first, c.isLetter else { continue }
            out.insert(String(t.prefix { !$0.isWhitespace }))
        }
        return out
    }

    /// Problems of one lora argument list: each leading word must be a subcommand of the one before,
    /// each `--flag` an option of the last.
    func commandProblems(_ args: [String], at place: String) throws -> [String] {
        var path: [String] = []
        var i = 0
        guard var text = try help([]) else { return ["lora --help failed"] }
        while i < args.count, !args[i].hasPrefix("-") {
            let subs = Self.subcommands(text)
            if subs.isEmpty { break }  // positional arguments of a leaf command
            guard subs.contains(args[i]), let h = try help(path + [args[i]]) else {
                return ["\(place): `lora \(path.joined(separator: " "))` has no subcommand '\(args[i])' (has: \(subs.sorted().joined(separator: ", ")))"]
            }
            path.append(args[i])
            text = h
            i += 1
        }
        if path.isEmpty && !args.allSatisfy({ $0 == "--help" || $0 == "-h" }) {
            return ["\(place): `lora \(args.joined(separator: " "))` names no subcommand"]
        }
        var out: [String] = []
        for a in args[i...] where a.hasPrefix("--") {
            let flag = String(a.prefix { $0 != "=" })
            let pattern = "(?<![A-Za-z0-9-])" + NSRegularExpression.escapedPattern(for: flag) + "(?![A-Za-z0-9-])"
            if text.range(of: pattern, options: .regularExpression) == nil {
                out.append("\(place): `lora \(path.joined(separator: " "))` has no option \(flag) (not in its --help)")
            }
        }
        return out
    }

    func variableProblems(_ vars: [(String, String, Int)], at file: String) -> [String] {
        vars.filter { !variablesRead.contains($0.0) }.map {
            "\(file) line \($0.2): \($0.0) is not read by lora (the sources read: \(variablesRead.sorted().joined(separator: ", ")))"
        }
    }

    func problems(_ f: DockerFiles) throws -> [String] {
        var out: [String] = []
        if f.entrypoint == ["lora"] {
            out += try commandProblems(f.cmd, at: "docker/Dockerfile CMD")
        }
        out += variableProblems(f.environment, at: "docker/Dockerfile")
        for s in f.compose where s.runsLora {
            let place = "docker/compose.yaml line \(s.commandLine) (\(s.name))"
            out += try commandProblems(s.command, at: place)
            out += variableProblems(s.environment, at: "docker/compose.yaml (\(s.name))")
            if !s.environment.contains(where: { $0.0 == "DATABASE_URL" }) && !s.command.contains("--database-url") {
                out.append("docker/compose.yaml (\(s.name)): no DATABASE_URL, so lora would start an embedded cluster in the container")
            }
            guard s.command.first == "serve" else { continue }
            let value = { (flag: String) -> String? in s.command.firstIndex(of: flag).flatMap { $0 + 1 < s.command.count ? s.command[$0 + 1] : nil } }
            guard let port = value("--port") else { out.append("\(place): serve without --port"); continue }
            let containerPorts = s.ports.map { String($0.split(separator: ":").last ?? "") }
            if containerPorts.isEmpty || containerPorts.contains(where: { $0 != port }) {
                out.append("\(place): ports \(s.ports) do not publish serve's --port \(port)")
            }
            if !f.exposed.contains(port) {
                out.append("docker/Dockerfile: EXPOSE \(f.exposed) does not include serve's --port \(port)")
            }
            let host = value("--host") ?? "127.0.0.1"
            if host != "0.0.0.0" && host != "::" {
                out.append("\(place): --host \(host) is not reachable from outside the container (use 0.0.0.0)")
            }
            if !s.command.contains("--allow-unauthenticated") && !f.readme.contains("keys create") {
                out.append("docker/README.md: serve listens beyond loopback without --allow-unauthenticated, so the README must say `keys create`")
            }
        }
        for (args, line) in f.readmeCommands {
            out += try commandProblems(args, at: "docker/README.md line \(line)")
        }
        for dev in devPackages {
            guard let runtime = Self.runtimeOf[dev] else {
                out.append("scripts/install-deps.sh installs \(dev): add its runtime package to docker/Dockerfile and to DockerFilesChecker.runtimeOf")
                continue
            }
            if !f.buildPackages.contains(dev) { out.append("docker/Dockerfile: the build stage does not install \(dev)") }
            if !f.runtimePackages.contains(where: { $0 == runtime.package || $0.hasPrefix(runtime.package + "-") }) {
                out.append("docker/Dockerfile: the run stage installs no \(runtime.package) (runtime of \(dev))")
            }
        }
        return out
    }

    /// The Debian package owning each library the binary links (ldd, then dpkg -S on the resolved
    /// file) must be among the run stage's packages.
    func linkedLibraryProblems(runtimePackages: [String]) throws -> [String] {
        let ldd = try runProcess(URL(fileURLWithPath: "/usr/bin/ldd"), [TestPaths.loraBinary.path])
        guard ldd.status == 0 else { return ["ldd \(TestPaths.loraBinary.path) failed: \(ldd.stderr)"] }
        var out: [String] = []
        for dev in devPackages {
            guard let library = Self.runtimeOf[dev]?.library else { continue }
            guard let row = ldd.stdout.components(separatedBy: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(library + " ") }),
                  let arrow = row.range(of: "=> ") else {
                out.append("the lora binary does not link \(library) (ldd: \(ldd.stdout))")
                continue
            }
            let linked = String(row[arrow.upperBound...].prefix { !$0.isWhitespace })
            let resolved = URL(fileURLWithPath: linked).resolvingSymlinksInPath().path
            var owner: String?
            for candidate in [resolved, linked] {
                let r = try runProcess(URL(fileURLWithPath: "/usr/bin/dpkg"), ["-S", candidate])
                if r.status == 0, let name = r.stdout.split(separator: ":").first { owner = String(name); break }
            }
            guard let owner else { out.append("dpkg -S finds no package owning \(library) (\(resolved))"); continue }
            if !runtimePackages.contains(owner) && !runtimePackages.contains(where: { owner.hasPrefix($0 + "-") }) {
                out.append("\(library) comes from \(owner), which docker/Dockerfile's run stage does not install (it installs \(runtimePackages))")
            }
        }
        return out
    }
}
