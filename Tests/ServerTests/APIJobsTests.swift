import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registry
import Service
import Training
import XCTest

/// `/v1/fine_tuning/jobs` over a real socket without a worker: creation in OpenAI's body (and
/// under `method.supervised`), "auto" values, the learning-rate multiplier, every 400/404/409,
/// idempotent retries, list pages, retrieve, cancel, events and checkpoints of a queued job.
final class APIJobsTests: APITestCase {
    func testAJobIsQueuedWithTheSettingsOfItsBodyInOpenAIsShape() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let r = try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file, extra: #","seed":7,"metadata":{"team":"ml"}"#))
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let j = try object(r)
            XCTAssertEqual(j["object"] as? String, "fine_tuning.job")
            XCTAssertEqual(j["id"] as? String, "ftjob-1")
            XCTAssertEqual(j["status"] as? String, "queued")
            XCTAssertEqual(j["model"] as? String, "tiny")
            XCTAssertEqual(j["training_file"] as? String, file)
            XCTAssertEqual(j["user_provided_suffix"] as? String, "api-task")
            XCTAssertEqual(j["seed"] as? Int, 7)
            XCTAssertEqual(j["metadata"] as? [String: String], ["team": "ml"])
            XCTAssertTrue(j["fine_tuned_model"] is NSNull)
            XCTAssertTrue(j["error"] is NSNull)
            let hp = try XCTUnwrap(j["hyperparameters"] as? [String: Any])
            XCTAssertEqual(hp["learning_rate_multiplier"] as? Double, 5)
            XCTAssertEqual(hp["max_steps"] as? Int, 2)
            // What the worker will run: the job queue's own record.
            let stored = try JobHyperparameters.from(try JobService(registry: service).job(1).hyperparameters)
            XCTAssertEqual(stored.settings.learningRate, Float(5 * 2e-4), "learning_rate_multiplier x 2e-4")
            XCTAssertEqual(stored.settings.lora.rank, 4)
            XCTAssertEqual(stored.settings.batchSize, 2)
            XCTAssertEqual(stored.settings.maxSteps, 2)
            XCTAssertEqual(stored.settings.seed, 7)
            XCTAssertEqual(try JobService(registry: service).job(1).task, "api-task")
        }
    }

    func testMethodSupervisedHyperparametersAndAutoValuesTakeTheDefaults() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let body = #"{"model":"tiny","training_file":"\#(file)","suffix":"auto-task","method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":"auto","batch_size":"auto","learning_rate":0.001,"lora_r":8,"target_modules":["q_proj","v_proj"]}}}}"#
            let r = try await request(client, .post, "/v1/fine_tuning/jobs", json: body)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let s = try JobHyperparameters.from(try JobService(registry: service).job(1).hyperparameters).settings
            let defaults = TrainingSettings()
            XCTAssertEqual(s.epochs, defaults.epochs)
            XCTAssertEqual(s.batchSize, defaults.batchSize)
            XCTAssertEqual(s.learningRate, 0.001)
            XCTAssertEqual(s.lora.rank, 8)
            XCTAssertEqual(s.lora.targets.map(\.rawValue), ["q_proj", "v_proj"])
        }
    }

    func testBadBodiesAre400Or404NamingTheField() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            func post(_ body: String) async throws -> TestResponse { try await request(client, .post, "/v1/fine_tuning/jobs", json: body) }
            try assertError(try await post(#"{"model":"tiny","training_file":"\#(file)"}"#), .badRequest, param: "suffix",
                            code: "missing_required_parameter")
            try assertError(try await post(#"{"model":"tiny","training_file":"\#(file)","suffix":"Bad Name"}"#), .badRequest,
                            param: "suffix", mentions: ["Bad Name"])
            try assertError(try await post(jobBody(file: file).replacingOccurrences(of: #""learning_rate_multiplier":5"#,
                                                                                   with: #""learning_rate_multiplier":5,"learning_rate":0.001"#)),
                            .badRequest, param: "hyperparameters.learning_rate_multiplier", mentions: ["not both"])
            try assertError(try await post(jobBody(file: file).replacingOccurrences(of: #""lora_r":4"#, with: #""lora_r":"four""#)),
                            .badRequest, param: "hyperparameters.lora_r")
            try assertError(try await post(jobBody(file: file).replacingOccurrences(of: #""batch_size":2"#, with: #""batch_size":2,"warp":1"#)),
                            .badRequest, param: "hyperparameters.warp", code: "unknown_parameter")
            try assertError(try await post(jobBody(file: file, extra: #","method":{"type":"supervised","supervised":{"hyperparameters":{}}}"#)),
                            .badRequest, param: "hyperparameters", mentions: ["not both"])
            try assertError(try await post(jobBody(file: file, extra: #","method":{"type":"dpo"}"#)), .badRequest, param: "method.type")
            try assertError(try await post(jobBody(file: file, extra: #","colour":"red""#)), .badRequest, param: "colour", code: "unknown_parameter")
            try assertError(try await post(jobBody(file: file).replacingOccurrences(of: #""model":"tiny""#, with: #""model":"gpt-4o""#)),
                            .notFound, param: "model", code: "model_not_found", mentions: ["gpt-4o"])
            try assertError(try await post(jobBody(file: "file-99")), .notFound, param: "training_file", code: "file_not_found")
            try assertError(try await post(jobBody(file: file, extra: #","validation_file":"file-98""#)), .notFound, param: "validation_file")
            try assertError(try await post(jobBody(file: "train.jsonl")), .badRequest, param: "training_file")
            try assertError(try await post(jobBody(file: file).replacingOccurrences(of: #""lora_r":4"#, with: #""lora_r":1000"#)),
                            .badRequest, param: "hyperparameters", mentions: ["rank"])
            try assertError(try await post("[1]"), .badRequest, param: nil)
            XCTAssertTrue(try JobService(registry: service).jobs().isEmpty, "nothing queued")
        }
    }

    func testAnIdempotencyKeyReturnsTheFirstJobAndRefusesAnotherBody() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            var h = HTTPFields()
            h[HTTPField.Name("Idempotency-Key")!] = "retry-1"
            let first = try object(try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file), headers: h))
            let again = try object(try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file), headers: h))
            XCTAssertEqual(first["id"] as? String, "ftjob-1")
            XCTAssertEqual(again["id"] as? String, "ftjob-1")
            try assertError(try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file, steps: 3), headers: h),
                            .conflict, param: nil, code: "conflict", mentions: ["retry-1"])
            // Concurrent retries of one request make one job.
            h[HTTPField.Name("Idempotency-Key")!] = "retry-2"
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask { [h] in
                        let r = try await self.request(client, .post, "/v1/fine_tuning/jobs", json: self.jobBody(file: file), headers: h)
                        return try XCTUnwrap(try self.object(r)["id"] as? String)
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            XCTAssertEqual(ids, ["ftjob-2"])
            XCTAssertEqual(try JobService(registry: service).jobs().count, 2)
        }
    }

    /// `?task=` is filtered by the server, so pages and `has_more` count only that task's jobs.
    func testJobsListFiltersByTaskInPagesAndRefusesABadTaskName() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            for task in ["a-task", "b-task", "a-task", "b-task"] {
                _ = try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file, task: task))
            }
            let ids = { (r: TestResponse) in try self.list(r).map { $0["id"] as? String } }
            expectEqual(try ids(try await request(client, .get, "/v1/fine_tuning/jobs?task=a-task")), ["ftjob-3", "ftjob-1"])
            let first = try await request(client, .get, "/v1/fine_tuning/jobs?task=b-task&limit=1")
            XCTAssertEqual(try ids(first), ["ftjob-4"])
            XCTAssertEqual(try object(first)["has_more"] as? Bool, true)
            let second = try await request(client, .get, "/v1/fine_tuning/jobs?task=b-task&limit=1&after=ftjob-4")
            XCTAssertEqual(try ids(second), ["ftjob-2"])
            XCTAssertEqual(try object(second)["has_more"] as? Bool, false, "no b-task job is left, whatever other tasks have")
            _ = try await request(client, .post, "/v1/fine_tuning/jobs/ftjob-3/cancel")
            expectEqual(try ids(try await request(client, .get, "/v1/fine_tuning/jobs?task=a-task&status=cancelled")), ["ftjob-3"])
            expectEqual(try ids(try await request(client, .get, "/v1/fine_tuning/jobs?task=no-such-task")), [])
            for bad in ["Bad%20Name", "-x", "a.b", String(repeating: "x", count: 101)] {
                let r = try await request(client, .get, "/v1/fine_tuning/jobs?task=\(bad)")
                try assertError(r, .badRequest, param: "task")
                XCTAssertTrue(String(buffer: r.body).contains("lowercase letters"), String(buffer: r.body))
            }
        }
    }

    func testJobsListInPagesRetrieveCancelAndShowTheirEvents() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            for _ in 0..<3 { _ = try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file)) }
            let page = try await request(client, .get, "/v1/fine_tuning/jobs?limit=2")
            XCTAssertEqual(try list(page).map { $0["id"] as? String }, ["ftjob-3", "ftjob-2"])
            XCTAssertEqual(try object(page)["has_more"] as? Bool, true)
            expectEqual(try list(try await request(client, .get, "/v1/fine_tuning/jobs?after=ftjob-2")).map { $0["id"] as? String }, ["ftjob-1"])

            let cancelled = try object(try await request(client, .post, "/v1/fine_tuning/jobs/ftjob-2/cancel"))
            XCTAssertEqual(cancelled["status"] as? String, "cancelled")
            XCTAssertNotNil(cancelled["finished_at"] as? Int)
            expectEqual(try list(try await request(client, .get, "/v1/fine_tuning/jobs?status=cancelled")).map { $0["id"] as? String }, ["ftjob-2"])
            try assertError(try await request(client, .get, "/v1/fine_tuning/jobs?status=done"), .badRequest, param: "status")
            expectEqual(try object(try await request(client, .get, "/v1/fine_tuning/jobs/2"))["status"] as? String, "cancelled")
            try assertError(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-9"), .notFound, param: nil, code: "not_found")
            try assertError(try await request(client, .post, "/v1/fine_tuning/jobs/ftjob-9/cancel"), .notFound, param: nil)

            let events = try list(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-2/events"))
            XCTAssertEqual(events.map { $0["object"] as? String }, ["fine_tuning.job.event", "fine_tuning.job.event"])
            XCTAssertEqual(events.map { $0["message"] as? String }, ["cancelled by http", "queued by http"], "newest first")
            let older = try list(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-2/events?limit=1&after=\(events[0]["id"] as! String)"))
            XCTAssertEqual(older.map { $0["id"] as? String }, [events[1]["id"] as? String])
            expectEqual(try list(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-2/checkpoints")).count, 0)
            try assertError(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-9/events"), .notFound, param: nil)
        }
    }
}

