// A load generator for `lora serve` on loopback (not a test: timings vary with machine load).
//
// Usage: ServeBench --port P --base ID --adapters T1,T2,...,T8 [--max-tokens N] [--requests N]
//                   [--rounds N] [--switch-requests N] [--prompt TEXT] [--server-pid PID] [--keep-eos]
// Streams `POST /v1/completions` (greedy, `stream_options.include_usage`, `ignore_eos`) over plain sockets, one
// thread per stream, and prints a markdown table: tokens/s for 1 stream, 8 streams on one adapter
// and 8 streams on 8 adapters; time to first token and inter-token latency; what a cold adapter
// load and a switch between cached adapters add, seen by the client and by the server's
// `lora_adapter_acquire_seconds` histogram (read from `/metrics` before and after each phase).
// The three throughput phases run in turn, `--rounds` times over, and each figure is the median
// over rounds: on a shared machine the load drifts, and interleaving spreads it over all three.
// Where each throughput phase's time went: the engine's own clock per step by phase (forward,
// head, sampling, text, events, ...; `lora_step_phase_seconds` from `/metrics`), and the CPU time
// per token of this client (getrusage) and, with `--server-pid`, of the server's threads by name
// (/proc/PID/task/*/stat), so the load generator's own cost is on the record.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

setvbuf(stdout, nil, _IOLBF, 0)

struct BenchError: Error, CustomStringConvertible { let description: String }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Nearest-rank percentile (q in 0...1) of unsorted values.
func percentile(_ v: [Double], _ q: Double) -> Double {
    precondition(!v.isEmpty)
    let s = v.sorted()
    let rank = Int((q * Double(s.count)).rounded(.up))
    return s[min(s.count - 1, max(0, rank - 1))]
}

// MARK: - Arguments

var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    defer { args.removeSubrange(i...i + 1) }
    return args[i + 1]
}
func intOption(_ name: String, _ def: Int) throws -> Int {
    guard let s = option(name) else { return def }
    guard let v = Int(s), v >= 1 else { throw BenchError(description: "\(name) must be an integer >= 1, got `\(s)`") }
    return v
}
guard let portText = option("--port"), let port = Int(portText) else { throw BenchError(description: "--port P is required") }
guard let baseId = option("--base") else { throw BenchError(description: "--base ID is required") }
guard let adapterList = option("--adapters") else { throw BenchError(description: "--adapters T1,...,T8 is required") }
let adapters = adapterList.split(separator: ",").map(String.init)
guard adapters.count >= 2 else { throw BenchError(description: "--adapters needs at least 2 tasks, got \(adapters.count)") }
let maxTokens = try intOption("--max-tokens", 64)
let requestsPerStream = try intOption("--requests", 1)
let rounds = try intOption("--rounds", 3)
let switchRequests = try intOption("--switch-requests", 48)
// Counting keeps a greedy model going to max_tokens, and `ignore_eos` (vLLM's extension, as its own load generator
// sends it) keeps an adapter that would end its answer early decoding too, so every stream decodes as long as the
// others. `--keep-eos` leaves the field out (for a `lora serve` built before it knew the field).
let prompt = option("--prompt") ?? "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
let ignoreEOS: Bool = {
    guard let i = args.firstIndex(of: "--keep-eos") else { return true }
    args.remove(at: i)
    return false
}()
let serverPid = try option("--server-pid").map { s -> Int in
    guard let v = Int(s), v > 0 else { throw BenchError(description: "--server-pid must be a process id, got `\(s)`") }
    return v
}
guard args.isEmpty else { throw BenchError(description: "unknown arguments: \(args.joined(separator: " "))") }
let streams = adapters.count

// MARK: - HTTP over a plain socket

/// One streamed completion as the client saw it.
struct StreamResult {
    var sent = 0.0
    /// Arrival time of each chunk that carried text.
    var tokenTimes: [Double] = []
    var completionTokens = 0
    var finishReason = ""
    var ttft: Double { (tokenTimes.first ?? .nan) - sent }
    /// Gaps between consecutive text chunks.
    var gaps: [Double] { zip(tokenTimes.dropFirst(), tokenTimes).map { $0 - $1 } }
}

func connectLoopback() throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError(description: "socket: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { close(fd); throw BenchError(description: "connect to 127.0.0.1:\(port): errno \(errno)") }
    return fd
}

func sendAll(_ fd: Int32, _ text: String) throws {
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { throw BenchError(description: "send: errno \(errno)") }
        off += n
    }
}

/// Reads a whole HTTP/1.1 response, calling `onBody` with each piece of de-chunked body as it
/// arrives. Returns the status code.
func readResponse(_ fd: Int32, onBody: ([UInt8]) throws -> Void) throws -> Int {
    var buf = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65536)
    func fill() throws -> Bool {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 { throw BenchError(description: "recv: errno \(errno)") }
        if n == 0 { return false }
        buf += chunk[0..<n]
        return true
    }
    func find(_ pattern: [UInt8], from: Int = 0) -> Int? {
        guard buf.count >= pattern.count + from else { return nil }
        var i = from
        while i + pattern.count <= buf.count {
            if buf[i] == pattern[0] && Array(buf[i..<(i + pattern.count)]) == pattern { return i }
            i += 1
        }
        return nil
    }
    let crlf: [UInt8] = [13, 10]
    var headerEnd: Int?
    while true {
        headerEnd = find([13, 10, 13, 10])
        if headerEnd != nil { break }
        guard try fill() else { throw BenchError(description: "connection closed before the response head") }
    }
    let head = String(decoding: buf[0..<headerEnd!], as: UTF8.self)
    buf.removeSubrange(0..<(headerEnd! + 4))
    let lines = head.split(separator: "\r\n")
    guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
          let status = Int(statusLine.split(separator: " ")[1]) else { throw BenchError(description: "bad status line: \(head)") }
    let headers = lines.dropFirst().map { $0.lowercased() }
    if headers.contains(where: { $0.hasPrefix("transfer-encoding:") && $0.contains("chunked") }) {
        while true {
            var lineEnd = find(crlf)
            while lineEnd == nil { guard try fill() else { throw BenchError(description: "closed inside a chunk size") }; lineEnd = find(crlf) }
            let sizeText = String(decoding: buf[0..<lineEnd!], as: UTF8.self).split(separator: ";")[0]
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw BenchError(description: "bad chunk size `\(sizeText)`")
            }
            buf.removeSubrange(0..<(lineEnd! + 2))
            while buf.count < size + 2 { guard try fill() else { throw BenchError(description: "closed inside a chunk") } }
            if size == 0 { return status }
            try onBody(Array(buf[0..<size]))
            buf.removeSubrange(0..<(size + 2))
        }
    } else if let cl = headers.first(where: { $0.hasPrefix("content-length:") }),
              let length = Int(cl.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
        while buf.count < length { guard try fill() else { throw BenchError(description: "closed inside the body") } }
        try onBody(Array(buf[0..<length]))
    } else {
        while try fill() {}
        try onBody(buf)
    }
    return status
}

func get(_ path: String) throws -> String {
    let fd = try connectLoopback()
    defer { close(fd) }
    try sendAll(fd, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    var body = [UInt8]()
    let status = try readResponse(fd) { body += $0 }
    guard status == 200 else { throw BenchError(description: "GET \(path): HTTP \(status)") }
    return String(decoding: body, as: UTF8.self)
}

/// One streamed, greedy completion of `prompt` by `model`.
func complete(model: String, maxTokens: Int) throws -> StreamResult {
    var body: [String: Any] = ["model": model, "prompt": prompt, "max_tokens": maxTokens, "temperature": 0,
                               "stream": true, "stream_options": ["include_usage": true]]
    if ignoreEOS { body["ignore_eos"] = true }
    let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    let fd = try connectLoopback()
    defer { close(fd) }
    var result = StreamResult()
    result.sent = now()
    try sendAll(fd, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(json.utf8.count)\r\nConnection: close\r\n\r\n\(json)")
    var pending = [UInt8]()
    var errorBody = ""
    let status = try readResponse(fd) { piece in
        let arrived = now()
        pending += piece
        errorBody += String(decoding: piece, as: UTF8.self)
        // Server-sent events: `data: {json}` lines, each followed by a blank line.
        while let nl = pending.firstIndex(of: 10) {
            let line = String(decoding: pending[0..<nl], as: UTF8.self)
            pending.removeSubrange(0...nl)
            guard line.hasPrefix("data: "), line != "data: [DONE]" else { continue }
            guard let obj = try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any] else { continue }
            if let choices = obj["choices"] as? [[String: Any]], let c = choices.first {
                if let text = c["text"] as? String, !text.isEmpty { result.tokenTimes.append(arrived) }
                if let f = c["finish_reason"] as? String { result.finishReason = f }
            }
            if let usage = obj["usage"] as? [String: Any], let n = usage["completion_tokens"] as? Int { result.completionTokens = n }
        }
    }
    guard status == 200 else { throw BenchError(description: "POST /v1/completions as \(model): HTTP \(status): \(errorBody)") }
    return result
}

/// Runs `body(i)` on `count` threads of its own at once (not Dispatch's pool, which is sized to the
/// cores) and waits for all; rethrows the first error.
func onThreads<T>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let lock = NSLock()
    var results = [T?](repeating: nil, count: count)
    var firstError: Error?
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let t = Thread {
            let r = Result { try body(i) }
            lock.lock()
            switch r {
            case .success(let v): results[i] = v
            case .failure(let e): if firstError == nil { firstError = e }
            }
            lock.unlock()
            group.leave()
        }
        t.stackSize = 1 << 20
        t.start()
    }
    group.wait()
    if let e = firstError { throw e }
    return results.map { $0! }
}

// MARK: - Server-side histograms

/// Cumulative bucket counts of `lora_adapter_acquire_seconds{cache=...}` from `/metrics`.
func acquireBuckets(cache: String) throws -> [(le: Double, count: Double)] {
    var out: [(Double, Double)] = []
    for line in try get("/metrics").split(separator: "\n") where line.hasPrefix("lora_adapter_acquire_seconds_bucket{")
        && line.contains("cache=\"\(cache)\"") {
        guard let leRange = line.range(of: "le=\""), let close = line[leRange.upperBound...].firstIndex(of: "\"") else { continue }
        let leText = line[leRange.upperBound..<close]
        let le = leText == "+Inf" ? Double.infinity : Double(leText) ?? .nan
        guard let count = Double(line.split(separator: " ").last ?? "") else { continue }
        out.append((le, count))
    }
    return out.sorted { $0.0 < $1.0 }
}

/// The bucket bound below which a fraction q of the observations made between two snapshots fall.
func histogramQuantile(_ before: [(le: Double, count: Double)], _ after: [(le: Double, count: Double)], _ q: Double) -> (bound: Double, n: Int) {
    let base = Dictionary(before.map { ($0.le, $0.count) }, uniquingKeysWith: { a, _ in a })
    let delta = after.map { ($0.le, $0.count - (base[$0.le] ?? 0)) }
    guard let total = delta.last?.1, total > 0 else { return (.nan, 0) }
    for (le, c) in delta where c >= q * total { return (le, Int(total)) }
    return (.infinity, Int(total))
}

/// The engine's step phases (mean per step) and the CPU per token of client and server, per load.
func printCosts(_ phases: [Phase]) {
    let order = ["plan", "forward", "head", "sample", "text", "emit", "finish"]
    print("Engine clock, mean per step (`lora_step_phase_seconds`), and wall time per step (phase wall / steps):")
    print("")
    print("| load | steps | wall/step | " + order.joined(separator: " | ") + " | outside the model |")
    print("|---|---|---|" + String(repeating: "---|", count: order.count + 1))
    for p in phases where p.cost.steps > 0 {
        let n = p.cost.steps
        let outside = ["plan", "sample", "text", "emit", "finish"].reduce(0) { $0 + (p.cost.phases[$1] ?? 0) }
        print("| \(p.name) | \(Int(n)) | \(us(p.wall / n)) | " + order.map { us((p.cost.phases[$0] ?? 0) / n) }.joined(separator: " | ")
              + " | \(us(outside / n)) |")
    }
    print("")
    let names = Set(phases.flatMap { $0.cost.serverCPU.filter { $0.value > 0 }.keys }).sorted()
    print("CPU per token (ms): this client (getrusage)" + (serverPid == nil ? "" : ", the server's threads by name (/proc/\(serverPid!)/task)") + ":")
    print("")
    print("| load | tokens | client | " + (names.isEmpty ? "" : "server total | " + names.map { "`\($0)`" }.joined(separator: " | ") + " |"))
    print("|---|---|---|" + (names.isEmpty ? "" : String(repeating: "---|", count: names.count + 1)))
    for p in phases where p.tokens > 0 {
        let t = Double(p.tokens)
        var row = "| \(p.name) | \(p.tokens) | \(String(format: "%.3f", p.cost.clientCPU / t * 1000)) |"
        if !names.isEmpty {
            row += " \(String(format: "%.3f", p.cost.serverCPU.values.reduce(0, +) / t * 1000)) |"
            row += names.map { " \(String(format: "%.3f", (p.cost.serverCPU[$0] ?? 0) / t * 1000)) |" }.joined()
        }
        print(row)
    }
    print("")
}

func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
func us(_ s: Double) -> String { s.isInfinite ? "> 10 s" : s < 1e-3 ? String(format: "%.0f us", s * 1e6) : String(format: "%.1f ms", s * 1000) }

// MARK: - Where the time goes

/// `lora_step_phase_seconds{phase}`'s sum (seconds) and count (steps) from `/metrics`, by phase.
func stepPhases() throws -> [String: (sum: Double, count: Double)] {
    var out: [String: (Double, Double)] = [:]
    for line in try get("/metrics").split(separator: "\n") {
        let isSum = line.hasPrefix("lora_step_phase_seconds_sum{"), isCount = line.hasPrefix("lora_step_phase_seconds_count{")
        guard isSum || isCount, let r = line.range(of: "phase=\""), let close = line[r.upperBound...].firstIndex(of: "\""),
              let v = Double(line.split(separator: " ").last ?? "") else { continue }
        let phase = String(line[r.upperBound..<close])
        var e = out[phase] ?? (0, 0)
        if isSum { e.0 = v } else { e.1 = v }
        out[phase] = e
    }
    return out
}

/// This process's CPU seconds (user + system).
func ownCPU() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

/// The server's CPU seconds by thread name (digits dropped, so a pool's threads add up): from
/// /proc/PID/task/TID/stat, utime + stime (fields 14 and 15) in clock ticks.
func serverThreadsCPU() -> [String: Double] {
    guard let pid = serverPid, let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [:] }
    let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
    var out: [String: Double] = [:]
    for tid in tids {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
        let name = String(stat[stat.index(after: open)..<close].filter { !$0.isNumber })
        // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 13, let ut = Double(fields[11]), let st = Double(fields[12]) else { continue }
        out[name, default: 0] += (ut + st) / tick
    }
    return out
}

/// What a phase cost: the engine's step phases, the client's and the server's CPU.
/// The readings a phase's cost is the difference of (a top-level function: it reads globals).
func costSnapshot() throws -> Cost {
    var c = Cost()
    let p = try stepPhases()
    c.steps = p["forward"]?.count ?? 0
    c.phases = p.mapValues(\.sum)
    c.clientCPU = ownCPU()
    c.serverCPU = serverThreadsCPU()
    return c
}

struct Cost {
    var steps = 0.0
    /// Seconds per phase over the phase's steps.
    var phases: [String: Double] = [:]
    var clientCPU = 0.0
    var serverCPU: [String: Double] = [:]

    func since(_ a: Cost) -> Cost {
        var d = Cost()
        d.steps = steps - a.steps
        d.phases = phases.reduce(into: [:]) { $0[$1.key] = $1.value - (a.phases[$1.key] ?? 0) }
        d.clientCPU = clientCPU - a.clientCPU
        d.serverCPU = serverCPU.reduce(into: [:]) { $0[$1.key] = $1.value - (a.serverCPU[$1.key] ?? 0) }
        return d
    }

    static func + (a: Cost, b: Cost) -> Cost {
        var c = a
        c.steps += b.steps
        for (k, v) in b.phases { c.phases[k, default: 0] += v }
        c.clientCPU += b.clientCPU
        for (k, v) in b.serverCPU { c.serverCPU[k, default: 0] += v }
        return c
    }
}

// MARK: - Phases

print("ServeBench: port \(port), base \(baseId), \(streams) adapters, max_tokens \(maxTokens), \(requestsPerStream) request(s) per stream, \(rounds) rounds")
_ = try get("/readyz")

// Cold loads: the first request on each adapter loads it from the registry; the second finds it cached.
var coldTTFT: [Double] = [], warmTTFT: [Double] = []
let coldBefore = try acquireBuckets(cache: "miss")
for a in adapters {
    coldTTFT.append(try complete(model: a, maxTokens: 1).ttft)
    warmTTFT.append(try complete(model: a, maxTokens: 1).ttft)
}
let coldServer = histogramQuantile(coldBefore, try acquireBuckets(cache: "miss"), 0.5)
let coldServerMax = histogramQuantile(coldBefore, try acquireBuckets(cache: "miss"), 1.0)

// Warm-up of the decode path (first-touch of buffers) before anything is timed.
_ = try complete(model: adapters[0], maxTokens: 8)

struct Phase {
    var name: String
    var tokensPerSecond: Double
    var ttft: [Double]
    var gaps: [Double]
    var lengthFinishes: Int
    var requests: Int
    var tokens = 0
    var wall = 0.0
    var cost = Cost()
}

func runPhase(_ name: String, models: [String]) throws -> Phase {
    let before = try costSnapshot()
    let start = now()
    let results = try onThreads(models.count) { i in
        try (0..<requestsPerStream).map { _ in try complete(model: models[i], maxTokens: maxTokens) }
    }.flatMap { $0 }
    let wall = now() - start
    let cost = try costSnapshot().since(before)
    let tokens = results.reduce(0) { $0 + $1.completionTokens }
    return Phase(name: name, tokensPerSecond: Double(tokens) / wall, ttft: results.map(\.ttft), gaps: results.flatMap(\.gaps),
                 lengthFinishes: results.filter { $0.finishReason == "length" }.count, requests: results.count,
                 tokens: tokens, wall: wall, cost: cost)
}

func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }

/// Each phase's rounds merged: the median tokens/s, every request's latencies.
func merged(_ runs: [Phase]) -> Phase {
    Phase(name: runs[0].name, tokensPerSecond: median(runs.map(\.tokensPerSecond)), ttft: runs.flatMap(\.ttft),
          gaps: runs.flatMap(\.gaps), lengthFinishes: runs.reduce(0) { $0 + $1.lengthFinishes }, requests: runs.reduce(0) { $0 + $1.requests },
          tokens: runs.reduce(0) { $0 + $1.tokens }, wall: runs.reduce(0) { $0 + $1.wall },
          cost: runs.dropFirst().reduce(runs[0].cost) { $0 + $1.cost })
}
var oneRuns: [Phase] = [], eightOneRuns: [Phase] = [], eightManyRuns: [Phase] = []
for round in 1...rounds {
    oneRuns.append(try runPhase("1 stream", models: [adapters[0]]))
    eightOneRuns.append(try runPhase("\(streams) streams, one adapter", models: Array(repeating: adapters[0], count: streams)))
    eightManyRuns.append(try runPhase("\(streams) streams, \(streams) adapters", models: adapters))
    print(String(format: "round %d: %.1f / %.1f / %.1f tokens/s", round, oneRuns.last!.tokensPerSecond,
                 eightOneRuns.last!.tokensPerSecond, eightManyRuns.last!.tokensPerSecond))
}
let one = merged(oneRuns), eightOne = merged(eightOneRuns), eightMany = merged(eightManyRuns)

// Cached switches: sequential one-token requests on the same adapter, then rotating over all of
// them (every request a switch to another resident adapter).
let hitBefore = try acquireBuckets(cache: "hit")
var sameTTFT: [Double] = [], switchTTFT: [Double] = []
for i in 0..<switchRequests {
    sameTTFT.append(try complete(model: adapters[0], maxTokens: 1).ttft)
    switchTTFT.append(try complete(model: adapters[i % streams], maxTokens: 1).ttft)
}
let hitAfter = try acquireBuckets(cache: "hit")
let hitP99 = histogramQuantile(hitBefore, hitAfter, 0.99)
let hitP50 = histogramQuantile(hitBefore, hitAfter, 0.5)

// MARK: - Report

print("")
print("| load | tokens/s (median of \(rounds) rounds) | vs 1 stream | TTFT p50 | TTFT p99 | inter-token p50 | inter-token p99 | requests (finish `length`) |")
print("|---|---|---|---|---|---|---|---|")
for p in [one, eightOne, eightMany] {
    print("| \(p.name) | \(String(format: "%.1f", p.tokensPerSecond)) | \(String(format: "%.2fx", p.tokensPerSecond / one.tokensPerSecond)) | "
          + "\(ms(percentile(p.ttft, 0.5))) | \(ms(percentile(p.ttft, 0.99))) | \(ms(percentile(p.gaps, 0.5))) | "
          + "\(ms(percentile(p.gaps, 0.99))) | \(p.requests) (\(p.lengthFinishes)) |")
}
print("")
// Ratios within each round (the phases of one round ran minutes apart at most), then their median.
let manyOverOne = median(zip(eightManyRuns, eightOneRuns).map { $0.tokensPerSecond / $1.tokensPerSecond })
let eightOverOne = median(zip(eightOneRuns, oneRuns).map { $0.tokensPerSecond / $1.tokensPerSecond })
print(String(format: "median over rounds of the in-round ratios: %d streams on %d adapters / on one adapter %.2fx (target >= 0.8); %d streams / 1 stream %.2fx (target >= 3)",
             streams, streams, manyOverOne, streams, eightOverOne))
print("")
printCosts([one, eightOne, eightMany])
print("| adapter switch | p50 | p99 | n |")
print("|---|---|---|---|")
print("| server: acquire of a cached adapter (`lora_adapter_acquire_seconds{cache=\"hit\"}`, bucket bound) | <= \(us(hitP50.bound)) | <= \(us(hitP99.bound)) | \(hitP99.n) |")
print("| client: TTFT of a 1-token request, same adapter as the previous request | \(ms(percentile(sameTTFT, 0.5))) | \(ms(percentile(sameTTFT, 0.99))) | \(sameTTFT.count) |")
print("| client: TTFT of a 1-token request, another cached adapter than the previous | \(ms(percentile(switchTTFT, 0.5))) | \(ms(percentile(switchTTFT, 0.99))) | \(switchTTFT.count) |")
print("| server: cold load from the registry (`lora_adapter_acquire_seconds{cache=\"miss\"}`, bucket bound) | <= \(us(coldServer.bound)) | max <= \(us(coldServerMax.bound)) | \(coldServer.n) |")
print("| client: TTFT of a 1-token request, cold adapter | \(ms(percentile(coldTTFT, 0.5))) | \(ms(percentile(coldTTFT, 0.99))) | \(coldTTFT.count) |")
print("| client: TTFT of a 1-token request, the same adapter just loaded | \(ms(percentile(warmTTFT, 0.5))) | \(ms(percentile(warmTTFT, 0.99))) | \(warmTTFT.count) |")
