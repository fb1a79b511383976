import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registry
import Service
import Training
import XCTest

/// The job routes' record view (`Accept: application/vnd.lora.record+json`, what the CLI's client
/// asks for) and the job body's fields beyond OpenAI's, which carry every `lora jobs submit` setting.
final class APIRecordViewTests: APITestCase {
    var recordHeaders: HTTPFields {
        var h = HTTPFields()
        h[.accept] = "application/vnd.lora.record+json, application/json"
        return h
    }

    func canonical(_ j: JobRecord) throws -> String { try RegistryJSON.encode(j) }

    func testJobRoutesAnswerWithTheRegistrysRecordsWhenAskedAndOpenAIsShapesOtherwise() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let created = try await request(client, .post, "/v1/fine_tuning/jobs", json: jobBody(file: file), headers: recordHeaders)
            XCTAssertEqual(created.status, .ok, String(buffer: created.body))
            let jobs = JobService(registry: service)
            let stored = try jobs.job(1)
            // The record is what `lora jobs show --json` prints of the queue's row.
            let expected = try canonical(stored)
            XCTAssertEqual(try canonical(try JSONDecoder().decode(JobRecord.self, from: Data(String(buffer: created.body).utf8))), expected)
            let shown = try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-1", headers: recordHeaders)
            XCTAssertEqual(try canonical(try JSONDecoder().decode(JobRecord.self, from: Data(String(buffer: shown.body).utf8))), expected)
            let plain = try object(try await request(client, .get, "/v1/fine_tuning/jobs/ftjob-1"))
            XCTAssertEqual(plain["object"] as? String, "fine_tuning.job", "without the header: OpenAI's shape")

            let list = try object(try await request(client, .get, "/v1/fine_tuning/jobs?limit=1", headers: recordHeaders))
            XCTAssertEqual((list["data"] as? [[String: Any]])?.first?["id"] as? Int, 1)
            XCTAssertEqual(list["has_more"] as? Bool, false)

            let cancelled = try await request(client, .post, "/v1/fine_tuning/jobs/1/cancel", headers: recordHeaders)
            XCTAssertEqual(try JSONDecoder().decode(JobRecord.self, from: Data(String(buffer: cancelled.body).utf8)).status, .cancelled)

            let events = try object(try await request(client, .get, "/v1/fine_tuning/jobs/1/events", headers: recordHeaders))
            let records = try JSONDecoder().decode([JobEvent].self,
                                                   from: try JSONSerialization.data(withJSONObject: try XCTUnwrap(events["data"])))
            XCTAssertEqual(records, try jobs.events(1).reversed(), "newest first, as the registry stores them")
            let stream = try await request(client, .get, "/v1/fine_tuning/jobs/1/events?stream=true", headers: recordHeaders)
            let lines = String(buffer: stream.body).split(separator: "\n").filter { $0.hasPrefix("data: {") }
            XCTAssertEqual(try lines.map { try JSONDecoder().decode(JobEvent.self, from: Data($0.dropFirst(6).utf8)) }, try jobs.events(1))
        }
    }

    func testEveryJobsSubmitSettingCanBeGivenAndABadOneIsA400NamingIt() async throws {
        try await withAPI { [self] client in
            let file = try await uploadTrainData(client)
            let hp = #""max_steps":2,"use_rslora":true,"gradient_accumulation_steps":3,"lr_scheduler":"linear","warmup_steps":1,"weight_decay":0.01,"max_grad_norm":0,"shuffle":false,"eval_every":5,"packing":true,"gradient_checkpointing":true,"max_bad_steps":2,"quant":"none""#
            let body = #"{"model":"tiny","training_file":"\#(file)","suffix":"all-set","max_attempts":5,"hyperparameters":{\#(hp)}}"#
            let r = try await request(client, .post, "/v1/fine_tuning/jobs", json: body)
            XCTAssertEqual(r.status, .ok, String(buffer: r.body))
            let job = try JobService(registry: service).job(1)
            XCTAssertEqual(job.maxAttempts, 5)
            let h = try JobHyperparameters.from(job.hyperparameters)
            let s = h.settings
            XCTAssertEqual(h.quant, "none")
            XCTAssertTrue(s.lora.useRSLoRA)
            XCTAssertEqual(s.gradientAccumulation, 3)
            XCTAssertEqual(s.scheduler, .linear)
            XCTAssertEqual(s.warmupSteps, 1)
            XCTAssertNil(s.warmupRatio)
            XCTAssertEqual(s.weightDecay, 0.01)
            XCTAssertNil(s.maxGradNorm, "0 disables clipping")
            XCTAssertFalse(s.shuffle)
            XCTAssertEqual(s.evalEvery, 5)
            XCTAssertTrue(s.packing)
            XCTAssertTrue(s.gradientCheckpointing)
            XCTAssertEqual(s.maxBadSteps, 2)

            for (field, value) in [("lr_scheduler", #""sometimes""#), ("quant", #""q2""#), ("warmup_ratio", "2"), ("shuffle", #""yes""#),
                                   ("gradient_accumulation_steps", "0")] {
                let bad = #"{"model":"tiny","training_file":"\#(file)","suffix":"bad","hyperparameters":{"\#(field)":\#(value)}}"#
                try assertError(try await request(client, .post, "/v1/fine_tuning/jobs", json: bad), .badRequest,
                                param: "hyperparameters.\(field)")
            }
            let both = #"{"model":"tiny","training_file":"\#(file)","suffix":"bad","hyperparameters":{"warmup_steps":1,"warmup_ratio":0.1}}"#
            try assertError(try await request(client, .post, "/v1/fine_tuning/jobs", json: both), .badRequest, param: "hyperparameters.warmup_ratio")
            let attempts = #"{"model":"tiny","training_file":"\#(file)","suffix":"bad","max_attempts":0}"#
            try assertError(try await request(client, .post, "/v1/fine_tuning/jobs", json: attempts), .badRequest, param: "max_attempts")
        }
    }
}
