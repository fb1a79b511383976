import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registry
import Service
import XCTest

/// Jobs created over HTTP and run by a job worker in this process (as `lora serve --workers 1`
/// runs one): events streamed live, cancel through the API stops a running job within one step,
/// a finished job names its version and lists its checkpoint.
final class APIJobWorkerTests: APITestCase {
    var worker: JobWorker!
    let stop = WorkerStop()
    let workerDone = DispatchSemaphore(value: 0)

    /// Starts a worker; `stepDelay` slows every optimizer step (as LORA_WORKER_STEP_DELAY_MS does).
    func startWorker(stepDelay: Double = 0) {
        var options = JobWorker.Options(workDirectory: dataDir.appendingPathComponent("worker"))
        options.pollInterval = 0.1
        options.stepDelay = stepDelay
        let stop = self.stop
        options.shouldExit = { stop.isSet }
        worker = JobWorker(jobs: JobService(registry: service), options: options)
        let done = workerDone
        Thread { [worker] in
            _ = try? worker!.run()
            done.signal()
        }.start()
    }

    override func tearDown() {
        if worker != nil {
            stop.set()
            workerDone.wait()
        }
        super.tearDown()
    }

    func testEventsStreamLiveAndCancelStopsTheRunningJobWithinOneStep() async throws {
        startWorker(stepDelay: 0.1)
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            // 500 steps of at least 0.1 s: the job cannot be over while the first steps stream.
            let job = try object(try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file, steps: 500)))
            let id = try XCTUnwrap(job["id"] as? String)
            let raw = try RawHTTPClient(port: try XCTUnwrap(client.port))
            defer { raw.close() }
            try raw.send("GET /v1/fine_tuning/jobs/\(id)/events?stream=true HTTP/1.1\r\nHost: test\r\n\r\n")
            let head = try raw.read(until: "\"type\":\"metrics\"", deadline: 120)
            XCTAssertTrue(head.contains("text/event-stream"), head)
            XCTAssertTrue(head.contains("Step 1/500: training loss="), "a step event arrives while the job runs:\n\(head)")
            XCTAssertEqual(try JobService(registry: service).job(1).status, .running)

            let cancelled = try object(try await request(client, .post, "/v1/fine_tuning/jobs/\(id)/cancel"))
            XCTAssertEqual(cancelled["status"] as? String, "cancelled")
            // The stream ends by itself once the job is over and its last event is sent.
            let rest = try raw.read(until: "data: [DONE]", deadline: 120)
            XCTAssertTrue(rest.contains("data: [DONE]"), rest)
            XCTAssertTrue((head + rest).contains("cancelled by http"))

            // Events are ordered: at most the step in flight when the cancel landed reports after it.
            let service = JobService(registry: self.service)
            try await waitFor("the worker to stop the job") { try service.events(1).contains { $0.message.contains("stopped: cancelled") } }
            let all = try service.events(1)
            let cancelAt = try XCTUnwrap(all.firstIndex { $0.message.hasPrefix("cancelled by") })
            XCTAssertLessThanOrEqual(all[(cancelAt + 1)...].filter { $0.type == .metrics }.count, 1, "stopped within one optimizer step")
            let final = try object(try await request(client, .get, "/v1/fine_tuning/jobs/\(id)"))
            XCTAssertEqual(final["status"] as? String, "cancelled")
            XCTAssertTrue(final["fine_tuned_model"] is NSNull)
        }
    }

    func testAFinishedJobNamesItsVersionAndListsItsCheckpointWithItsLoss() async throws {
        startWorker()
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let body = jobBody(file: file, task: "done-task", steps: 5).replacingOccurrences(of: #""checkpoint_every":1000"#, with: #""checkpoint_every":2"#)
            let created = try await request(client, .post, "/v1/fine_tuning/jobs", json: body)
            let id = try XCTUnwrap(try object(created)["id"] as? String)
            // The stream runs to the end of the job: every step, then [DONE].
            let stream = try await request(client, .get, "/v1/fine_tuning/jobs/\(id)/events?stream=true")
            let text = String(buffer: stream.body)
            XCTAssertTrue(text.hasSuffix("data: [DONE]\n\n"), text)
            let events = text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }.map {
                try! JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as! [String: Any]
            }
            let steps = events.filter { $0["type"] as? String == "metrics" }.compactMap { ($0["data"] as? [String: Any])?["step"] as? Int }
            XCTAssertEqual(steps, [1, 2, 3, 4, 5], "every step once, in order")
            let metrics = try XCTUnwrap(events.first { $0["type"] as? String == "metrics" }?["data"] as? [String: Any])
            XCTAssertEqual(Set(metrics.keys), ["step", "total_steps", "train_loss", "valid_loss", "lr", "grad_norm", "tokens_per_s"])

            let job = try object(try await request(client, .get, "/v1/fine_tuning/jobs/\(id)"))
            XCTAssertEqual(job["status"] as? String, "succeeded")
            XCTAssertEqual(job["fine_tuned_model"] as? String, "done-task@1")
            XCTAssertEqual(try service.version("done-task@1").jobID, 1)

            // trained_tokens: every step's tokens as the worker logged them, summed.
            let logged = try JobService(registry: service).events(1).filter { $0.type == .metrics && $0.data["loss"] != nil }
            XCTAssertEqual(logged.count, 5)
            let stepTokens = logged.compactMap { $0.data["tokens"]?.intValue }
            XCTAssertEqual(stepTokens.count, 5, "each step logs its tokens")
            XCTAssertTrue(stepTokens.allSatisfy { $0 > 0 }, "\(stepTokens)")
            XCTAssertEqual(job["trained_tokens"] as? Int, stepTokens.reduce(0, +))
            let listed = try list(try await request(client, .get, "/v1/fine_tuning/jobs"))
            XCTAssertEqual(listed.first?["trained_tokens"] as? Int, stepTokens.reduce(0, +), "the list carries it too")

            let checkpoints = try list(try await request(client, .get, "/v1/fine_tuning/jobs/\(id)/checkpoints"))
            XCTAssertEqual(checkpoints.compactMap { $0["step_number"] as? Int }, [4, 2], "every stored checkpoint (steps 2 and 4), newest first")
            let cp = checkpoints[0]
            XCTAssertEqual(cp["object"] as? String, "fine_tuning.job.checkpoint")
            XCTAssertEqual(cp["step_number"] as? Int, 4)
            XCTAssertEqual(cp["fine_tuning_job_id"] as? String, id)
            let loss4 = try XCTUnwrap(events.first { ($0["data"] as? [String: Any])?["step"] as? Int == 4 && $0["type"] as? String == "metrics" })
            XCTAssertEqual((cp["metrics"] as? [String: Any])?["train_loss"] as? Double,
                           (loss4["data"] as? [String: Any])?["train_loss"] as? Double, "the loss logged at the checkpoint's step")

            // The loss plot has one point per step.
            let svg = try await request(client, .get, "/v1/fine_tuning/jobs/\(id)/loss.svg")
            XCTAssertEqual(svg.status, .ok)
            XCTAssertEqual(svg.headers[.contentType], "image/svg+xml")
            let doc = try LossPlotTests.SVGElements.parse(String(buffer: svg.body))
            XCTAssertEqual(doc.points("train-loss").count, 5)
            XCTAssertTrue(doc.texts.contains { $0.contains("done-task@1") }, "the title names the version")
        }
    }

    /// Polls (bounded) until `condition` holds.
    func waitFor(_ what: String, timeout: Double = 60, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTFail("timed out waiting for \(what)")
    }
}

final class WorkerStop: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
