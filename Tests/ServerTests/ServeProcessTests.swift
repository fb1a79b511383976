import Foundation
import HTTPTypes
import TestSupport
import XCTest

/// `lora serve` as users run it, over a real socket: answers equal `lora generate`'s greedy output,
/// alone and under concurrent load on the base and two adapters; SIGTERM drains.
final class ServeProcessTests: XCTestCase {
    var dataDir: URL!
    var servers: [ServeProcess] = []
    let tiny = TestPaths.fixture("models/tiny-llama-tied")
    let adapters = ["alpha": TestPaths.fixture("peft/initial-adapter"), "beta": TestPaths.fixture("peft/final-adapter")]

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: TestPaths.loraBinary.path) else {
            throw XCTSkipFailure("build the release binary first: swift build -c release (looked at \(TestPaths.loraBinary.path))")
        }
        dataDir = URL(fileURLWithPath: "/tmp/lora-serve-\(getpid())-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        servers.forEach { $0.kill() }
        servers = []
        if let dataDir {
            _ = try? runProcess(TestPaths.loraBinary, ["db", "stop", "--data-dir", dataDir.path], environment: environment)
            try? FileManager.default.removeItem(at: dataDir)
        }
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        env["LORA_ACTOR"] = "serve-test"
        return env
    }

    @discardableResult
    func lora(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try runProcess(TestPaths.loraBinary, args, environment: environment)
        XCTAssertEqual(r.status, 0, "lora \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r
    }

    struct Answer: Equatable, CustomStringConvertible {
        var text: String
        var finish: String
        var description: String { "\(finish): \(text.debugDescription)" }
    }

    /// `lora generate --json`'s greedy answer.
    func generate(model: URL, adapter: URL?, chat: Bool, prompt: String, maxTokens: Int) throws -> Answer {
        var args = ["generate", "--model", model.path, "--max-tokens", String(maxTokens), "--json"]
        if let adapter { args += ["--adapter", adapter.path] }
        if chat { args.append("--chat") }
        let r = try lora(args + [prompt])
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        return Answer(text: try XCTUnwrap(obj["text"] as? String), finish: try XCTUnwrap(obj["finish_reason"] as? String))
    }

    /// The server's greedy answer and the model it says served it.
    static func ask(_ server: ServeProcess, model: String, chat: Bool, prompt: String, maxTokens: Int) async throws -> (Answer, String) {
        let body = chat
            ? #"{"model":"\#(model)","messages":[{"role":"user","content":\#(quoted(prompt))}],"max_tokens":\#(maxTokens),"temperature":0}"#
            : #"{"model":"\#(model)","prompt":\#(quoted(prompt)),"max_tokens":\#(maxTokens),"temperature":0}"#
        let (status, text) = try await server.post(chat ? "/v1/chat/completions" : "/v1/completions", body)
        guard status == .ok else { throw XCTSkipFailure("\(model): \(status) \(text)") }
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let choice = try XCTUnwrap((obj["choices"] as? [[String: Any]])?.first)
        let content = chat ? (choice["message"] as? [String: Any])?["content"] as? String : choice["text"] as? String
        return (Answer(text: try XCTUnwrap(content), finish: try XCTUnwrap(choice["finish_reason"] as? String)),
                try XCTUnwrap(obj["model"] as? String))
    }

    static func quoted(_ s: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
    }

    func start(_ args: [String]) throws -> ServeProcess {
        let server = try ServeProcess(args + ["--data-dir", dataDir.path], environment: environment, scratch: dataDir)
        servers.append(server)
        _ = try server.waitForListening()
        return server
    }

    func testConcurrentRequestsOnTheBaseAndTwoAdaptersEqualTheirSoloAnswersAndGenerate() async throws {
        try lora(["models", "add", "tiny", tiny.path, "--data-dir", dataDir.path])
        for (task, dir) in adapters.sorted(by: { $0.key < $1.key }) {
            try lora(["import", task, dir.path, "--base", "tiny", "--data-dir", dataDir.path])
        }
        let server = try start(["--base", "tiny"])
        let models: [(String, URL?, String)] = [("tiny", nil, "tiny"), ("alpha", adapters["alpha"], "alpha@1"), ("beta", adapters["beta"], "beta@1")]
        let prompts = ["hello world", "the cat sat"]
        var expected: [String: Answer] = [:]
        for (model, adapter, _) in models {
            for p in prompts {
                expected["\(model)|\(p)|text"] = try generate(model: tiny, adapter: adapter, chat: false, prompt: p, maxTokens: 12)
                expected["\(model)|\(p)|chat"] = try generate(model: tiny, adapter: adapter, chat: true, prompt: p, maxTokens: 12)
            }
        }
        XCTAssertNotEqual(expected["alpha|hello world|text"], expected["tiny|hello world|text"], "the adapters change the answer")
        XCTAssertNotEqual(expected["alpha|hello world|text"], expected["beta|hello world|text"])

        // Alone, one request at a time.
        for (model, _, served) in models {
            for p in prompts {
                for chat in [false, true] {
                    let (answer, by) = try await Self.ask(server, model: model, chat: chat, prompt: p, maxTokens: 12)
                    XCTAssertEqual(answer, expected["\(model)|\(p)|\(chat ? "chat" : "text")"], "\(model) \(p) chat=\(chat)")
                    XCTAssertEqual(by, served)
                }
            }
        }
        // All at once, twice over: the base and both adapters in the same batches.
        let jobs = (0..<2).flatMap { _ in models.flatMap { m in prompts.flatMap { p in [(m.0, p, false), (m.0, p, true)] } } }
        let answers = try await withThrowingTaskGroup(of: (String, Answer).self) { group in
            for (model, p, chat) in jobs {
                group.addTask {
                    let (a, _) = try await Self.ask(server, model: model, chat: chat, prompt: p, maxTokens: 12)
                    return ("\(model)|\(p)|\(chat ? "chat" : "text")", a)
                }
            }
            return try await group.reduce(into: [(String, Answer)]()) { $0.append($1) }
        }
        XCTAssertEqual(answers.count, jobs.count)
        for (key, answer) in answers { XCTAssertEqual(answer, expected[key], "under load: \(key)") }

        let (missing, error) = try await server.post("/v1/completions", #"{"model":"alpha@9","prompt":"a"}"#)
        XCTAssertEqual(missing, .notFound)
        XCTAssertTrue(error.contains(#""param":"model","code":"model_not_found""#), error)

        // Speculation (a request's `speculate`) answers as plain decoding does, and the engine counts
        // what it drafted and what stood. The prompt ends in "b", which it holds earlier followed by
        // " c": the first step drafts.
        let copy = "a b c a b c a b c a b c a b"
        var texts: [String] = []
        for k in [0, 4] {
            let (status, body) = try await server.post("/v1/completions",
                                                       #"{"model":"tiny","prompt":"\#(copy)","max_tokens":12,"temperature":0,"speculate":\#(k)}"#)
            XCTAssertEqual(status, .ok, body)
            let o = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            texts.append(try XCTUnwrap(((o?["choices"] as? [[String: Any]])?.first?["text"]) as? String, body))
        }
        XCTAssertEqual(texts[1], texts[0], "speculating changed the answer")
        let metrics = try await server.get("/metrics")
        // 2 prompts alone + 2 x 2 under load, per model and route.
        for line in [#"lora_http_requests_total{route="/v1/completions",model="alpha@1",status="200"} 6"#,
                     #"lora_http_requests_total{route="/v1/chat/completions",model="tiny",status="200"} 6"#,
                     #"lora_http_requests_total{route="/v1/completions",model="none",status="404"} 1"#,
                     "lora_running_sequences", "lora_completion_tokens_total", "lora_time_to_first_token_seconds_bucket",
                     // Each adapter loaded once (alone, first), then 11 more requests each found it cached.
                     #"lora_adapter_acquire_seconds_count{cache="miss"} 2"#, #"lora_adapter_acquire_seconds_count{cache="hit"} 22"#] {
            XCTAssertTrue(metrics.contains(line), "/metrics lacks \(line):\n\(metrics)")
        }
        func counter(_ name: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        let drafted = try XCTUnwrap(counter("lora_speculative_drafted_tokens_total"), metrics)
        let accepted = try XCTUnwrap(counter("lora_speculative_accepted_tokens_total"), metrics)
        XCTAssertGreaterThan(drafted, 0)
        XCTAssertLessThanOrEqual(accepted, drafted)

        let list = try await server.get("/v1/models")
        XCTAssertTrue(list.contains(#"{"id":"tiny","object":"model","#), list)
        for task in ["alpha", "beta"] { XCTAssertTrue(list.contains(#""id":"\#(task)","object":"model""#) && list.contains(#""parent":"tiny""#), list) }
    }

    func testDefaultModelAnswersEqualGenerateAFullQueueIs429AndSigtermLetsAStreamFinishThenExitsZero() async throws {
        let model = try TestPaths.requireDefaultModel()
        let server = try start(["--model", model.path, "--max-running", "1", "--max-queue", "1"])
        let id = model.lastPathComponent
        let france = "The capital of France is"
        let (completion, by) = try await Self.ask(server, model: id, chat: false, prompt: france, maxTokens: 10)
        XCTAssertEqual(by, id)
        XCTAssertEqual(completion, try generate(model: model, adapter: nil, chat: false, prompt: france, maxTokens: 10))
        XCTAssertTrue(completion.text.hasPrefix(" Paris."), completion.text)
        let question = "What is the capital of France?"
        let (chat, _) = try await Self.ask(server, model: id, chat: true, prompt: question, maxTokens: 12)
        XCTAssertEqual(chat, try generate(model: model, adapter: nil, chat: true, prompt: question, maxTokens: 12))

        // A stream in flight when SIGTERM arrives runs to its end; then the process exits 0.
        let socket = try RawHTTPClient(port: server.port)
        let body = #"{"model":"\#(id)","prompt":"Once upon a time","max_tokens":40,"temperature":0,"stream":true}"#
        try socket.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let first = try socket.read(until: "\"text\":", deadline: 60)
        XCTAssertTrue(first.hasPrefix("HTTP/1.1 200"), first)
        // One sequence running, one waiting (its client hangs on): the next is refused with 429 and Retry-After.
        let waiting = try RawHTTPClient(port: server.port)
        let small = #"{"model":"\#(id)","prompt":"Hi","max_tokens":2}"#
        try waiting.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(small.utf8.count)\r\n\r\n\(small)")
        let queuedBy = Date().addingTimeInterval(30)
        while !(try await server.get("/metrics")).contains("lora_queued_sequences 1"), Date() < queuedBy {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let (busy, headers, refusal) = try await server.postWithHeaders("/v1/completions", #"{"model":"\#(id)","prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(busy, .tooManyRequests, refusal)
        XCTAssertNotNil(headers[.retryAfter].flatMap(Int.init), "Retry-After in seconds")
        XCTAssertTrue(refusal.contains(#""type":"rate_limit_error""#), refusal)
        server.signal(SIGTERM)
        let queued = try waiting.read(until: "\"usage\"", deadline: 120)
        XCTAssertTrue(queued.hasPrefix("HTTP/1.1 200"), "the queued request is answered during the drain: \(queued)")
        let rest = first + (try socket.read(until: "data: [DONE]", deadline: 120))
        XCTAssertTrue(rest.contains("data: [DONE]"), "the stream finished: \(rest.suffix(300))")
        XCTAssertTrue(rest.contains(#""finish_reason":"length""#), "it ran to max_tokens")
        XCTAssertEqual(try server.waitForExit(), 0, server.stderr)
        XCTAssertTrue(server.stderr.contains("draining"), server.stderr)
    }

    func testThreadBudgetAndSpeculationFlagsAreCheckedBeforeAnythingStarts() throws {
        for (args, message) in [(["serve", "--base", "tiny", "--worker-threads", "2"], "--worker-threads needs --workers"),
                                (["serve", "--base", "tiny", "--workers", "1", "--worker-threads", "0"], "--worker-threads must be at least 1"),
                                (["worker", "--threads", "0"], "--threads must be at least 1"),
                                (["serve", "--base", "tiny", "--speculate", "17"], "--speculate must be in 0...16, got 17"),
                                (["serve", "--base", "tiny", "--lookup-ngram", "0"], "--lookup-ngram must be in 1...16, got 0"),
                                (["serve", "--base", "tiny", "--lookup-min-ngram", "4"], "--lookup-min-ngram must be in 1...3 (--lookup-ngram), got 4")] {
            let r = try runProcess(TestPaths.loraBinary, args + ["--data-dir", dataDir.path])
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    func testWorkerSlotsInTheServerRunAJobAndItsVersionIsServedNext() async throws {
        try lora(["models", "add", "tiny", tiny.path, "--data-dir", dataDir.path])
        let submitted = try lora(["jobs", "submit", "--task", "gamma", "--base", "tiny", "--data", TestPaths.fixture("peft/train.jsonl").path,
                                  "--max-steps", "3", "--batch-size", "2", "--rank", "4", "--lr", "1e-3", "--checkpoint-every", "2",
                                  "--data-dir", dataDir.path, "--json"])
        let job = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(submitted.stdout.utf8)) as? [String: Any])?["id"] as? Int)
        let server = try start(["--base", "tiny", "--workers", "1", "--worker-threads", "1", "--threads", "1"])
        XCTAssertTrue(server.stderr.contains("thread budget: serving 1 thread, each of 1 worker slot(s) 1 thread, OpenBLAS 1"), server.stderr)
        var status = ""
        let deadline = Date().addingTimeInterval(180)
        while status != "succeeded" && status != "failed" && Date() < deadline {
            let shown = try lora(["jobs", "show", String(job), "--data-dir", dataDir.path, "--json"])
            status = (try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])?["status"] as? String ?? ""
            if status != "succeeded" { try await Task.sleep(nanoseconds: 200_000_000) }
        }
        XCTAssertEqual(status, "succeeded", server.stderr)
        // The new version is in the registry; the next request for the task is answered by it.
        let (answer, by) = try await Self.ask(server, model: "gamma", chat: false, prompt: "hello world", maxTokens: 6)
        XCTAssertEqual(by, "gamma@1")
        XCTAssertFalse(answer.text.isEmpty)
        let list = try await server.get("/v1/models")
        XCTAssertTrue(list.contains(#""id":"gamma","object":"model""#), list)
        server.signal(SIGTERM)
        XCTAssertEqual(try server.waitForExit(), 0, server.stderr)
    }

    func testSigtermReturnsAWorkerSlotsRunningJobToTheQueueWithACheckpointAndExitsZero() async throws {
        try lora(["models", "add", "tiny", tiny.path, "--data-dir", dataDir.path])
        let submitted = try lora(["jobs", "submit", "--task", "termed", "--base", "tiny", "--data", TestPaths.fixture("peft/train.jsonl").path,
                                  "--max-steps", "40", "--batch-size", "2", "--rank", "4", "--checkpoint-every", "100",
                                  "--data-dir", dataDir.path, "--json"])
        let job = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(submitted.stdout.utf8)) as? [String: Any])?["id"] as? Int)
        var env = environment
        env["LORA_WORKER_STEP_DELAY_MS"] = "100"
        let server = try ServeProcess(["--base", "tiny", "--workers", "1", "--data-dir", dataDir.path], environment: env, scratch: dataDir)
        servers.append(server)
        _ = try server.waitForListening()
        func events() throws -> [[String: Any]] {
            let r = try lora(["jobs", "events", String(job), "--data-dir", dataDir.path, "--json"])
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["data"] as? [[String: Any]] ?? []
        }
        let deadline = Date().addingTimeInterval(120)
        while try events().filter({ $0["type"] as? String == "metrics" }).count < 3, Date() < deadline {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        server.signal(SIGTERM)
        XCTAssertEqual(try server.waitForExit(), 0, server.stderr)
        let shown = try lora(["jobs", "show", String(job), "--data-dir", dataDir.path, "--json"])
        let released = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(released["status"] as? String, "queued", "\(released)")
        XCTAssertEqual(released["attempt"] as? Int, 0, "a clean shutdown does not spend an attempt")
        let stored = try events().compactMap { ($0["data"] as? [String: Any])?["checkpoint_step"] as? Int }
        XCTAssertEqual(stored.count, 1, "the checkpoint taken at the stop was stored")
    }
}
