import Foundation
import Registry
import Service
import TestSupport
import ServiceTestSupport
import XCTest

final class VersionTests: RegistryTestCase {
    func testVersionsAreNumberedFromOnePerTask() throws {
        try addTinyBase()
        XCTAssertEqual(try importVersion("a", seed: 1).version, 1)
        XCTAssertEqual(try importVersion("a", seed: 2).version, 2)
        XCTAssertEqual(try importVersion("b", seed: 3).version, 1)
        XCTAssertEqual(try importVersion("a", seed: 4).version, 3)
        XCTAssertEqual(try service.versions(task: "a").map(\.version), [1, 2, 3])
        let tasks = try service.tasks()
        XCTAssertEqual(tasks.map(\.name), ["a", "b"])
        XCTAssertEqual(tasks[0].aliases, ["latest": 3])
        XCTAssertEqual(tasks[0].versionCount, 3)
    }

    func testConcurrentRegistrationsOnSeparateConnectionsNeverCollide() throws {
        try addTinyBase()
        let dirs = try (0..<8).map { try adapterDir(seed: 100 + $0) }
        let lock = NSLock()
        var versions: [Int] = [], errors: [Error] = []
        // Separate services: separate pools, separate connections, as separate processes would have.
        let conf = service.configuration
        DispatchQueue.concurrentPerform(iterations: dirs.count) { i in
            do {
                let s = try RegistryService(pool: ConnectionPool(conninfo: db.conninfo, maxConnections: 1),
                                            configuration: conf, inspector: DefaultBaseModelInspector())
                let v = try s.importAdapter(task: "race", directory: dirs[i], actor: "thread\(i)")
                lock.lock(); versions.append(v.version); lock.unlock()
            } catch {
                lock.lock(); errors.append(error); lock.unlock()
            }
        }
        XCTAssertTrue(errors.isEmpty, "\(errors)")
        XCTAssertEqual(versions.sorted(), Array(1...dirs.count))
        XCTAssertEqual(try service.version("race").version, dirs.count, "latest is the newest")
    }

    func testVersionRecordCarriesLineageMetricsAndJSONShape() throws {
        try addTinyBase()
        // adapter_versions.job_id references jobs (migration 0002): the producing job exists.
        try db.connect().execute("""
            INSERT INTO jobs (id, task, base_model, data_name, data_bytes, data_sha256, created_by)
            VALUES (17, 'qa', 'tiny', 'train.jsonl', $1, $2, 'tester')
            """, [.bytes([]), .text(String(repeating: "ab", count: 32))])
        let lineage = Lineage(jobID: 17, dataSHA256: String(repeating: "ab", count: 32),
                              hyperparameters: .object(["learning_rate": .number(2e-4), "epochs": .number(3)]))
        let v = try service.importAdapter(task: "qa", directory: try adapterDir(seed: 5), metrics: ["valid_loss": 1.25],
                                          tags: ["owner": "ml"], lineage: lineage, actor: "tester")
        XCTAssertEqual(v.base, "tiny")
        XCTAssertEqual(v.metrics, ["valid_loss": 1.25])
        XCTAssertEqual(v.jobID, 17)
        XCTAssertEqual(v.loraConfig["r"]?.intValue, 2)
        XCTAssertEqual(v.aliases, ["latest"])
        let json = try JSONSerialization.jsonObject(with: Data(try RegistryJSON.encode(ListEnvelope([v])).utf8)) as! [String: Any]
        XCTAssertEqual(json["object"] as? String, "list")
        let item = (json["data"] as! [[String: Any]])[0]
        XCTAssertEqual(item["version"] as? Int, 1)
        XCTAssertEqual(item["task"] as? String, "qa")
        XCTAssertEqual(item["base"] as? String, "tiny")
        XCTAssertEqual(item["sha256"] as? String, v.sha256)
        XCTAssertEqual((item["metrics"] as? [String: Double])?["valid_loss"], 1.25)
        let task = try JSONSerialization.jsonObject(with: Data(try RegistryJSON.encode(try service.task(named: "qa")).utf8)) as! [String: Any]
        XCTAssertEqual(task["name"] as? String, "qa")
        XCTAssertEqual(task["aliases"] as? [String: Int], ["latest": 1])
    }

    func testBaseModelIsRecordedWithTheSha256OfItsFiles() throws {
        let b = try addTinyBase()
        XCTAssertEqual(b.files.map(\.path), ["config.json", "model.safetensors"])
        let weights = try Data(contentsOf: scratch.appendingPathComponent("base-tiny/model.safetensors"))
        XCTAssertEqual(b.files[1].sha256, ArtifactStore.sha256(weights))
        XCTAssertEqual(b.architecture, "LlamaForCausalLM")
        XCTAssertEqual(try service.baseModels().map(\.name), ["tiny"])
        assertThrows(RegistryError.alreadyExists(kind: "base model", name: "tiny")) { try self.addTinyBase() }
        // A single file hashes to its own sha256.
        let f = scratch.appendingPathComponent("one.bin")
        try Data("not-a-model".utf8).write(to: f)
        XCTAssertEqual(try RegistryService.hashModelFiles(f).sha256, ArtifactStore.sha256(Data("not-a-model".utf8)))
    }

    /// The default GGUF through the Model target's loaders: the sha256 REFERENCE.md gives,
    /// its quantization and its shape.
    func testTheDefaultGGUFModelIsRegisteredWithItsSha256QuantizationAndShape() throws {
        let url = try TestPaths.requireDefaultModel()
        let b = try service.addBaseModel(name: "SmolLM2-135M-Instruct.Q4_1.gguf", source: url, actor: "tester")
        XCTAssertEqual(b.sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        XCTAssertEqual(b.files.map(\.size), [98_362_432])
        XCTAssertEqual(b.quantization, "Q4_1")
        XCTAssertEqual(b.config?["numLayers"]?.intValue, 30)
        XCTAssertEqual(b.config?["hiddenSize"]?.intValue, 576)
    }

    func testReferencesParseAndBadNamesAreRefused() throws {
        XCTAssertEqual(try AdapterReference.parse("t"), AdapterReference(task: "t", selector: .defaultAlias))
        XCTAssertEqual(try AdapterReference.parse("t@3"), AdapterReference(task: "t", selector: .version(3)))
        XCTAssertEqual(try AdapterReference.parse("t/3"), AdapterReference(task: "t", selector: .version(3)))
        XCTAssertEqual(try AdapterReference.parse("t@prod-2"), AdapterReference(task: "t", selector: .alias("prod-2")))
        for bad in ["T", "t@", "t@0", "@1", "t@Prod", "-t", "t/x"] {
            XCTAssertThrowsError(try AdapterReference.parse(bad), bad)
        }
        try addTinyBase()
        XCTAssertThrowsError(try importVersion("Bad Name", seed: 1)) { e in
            guard case RegistryError.invalidName(kind: "task", name: "Bad Name", _) = e else { return XCTFail("\(e)") }
        }
    }

    func testTheSchemaRefusesABadTaskNameEvenWithoutTheService() throws {
        let c = try db.connect()
        XCTAssertThrowsError(try c.execute("INSERT INTO tasks (name) VALUES ($1)", ["Has Space"])) {
            XCTAssertEqual(($0 as? PostgresError)?.constraint, "task_name_format")
        }
    }
}
