import ArgumentParser
import Foundation
import Service

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Negative log-likelihood (nats) of JSONL records: {\"text\"} or {\"prompt\",\"completion\"}.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions

    @Option(name: .long, help: "A JSONL file of records.")
    var data: String

    @Flag(name: .long, help: "Print {\"mean_nll\", \"tokens\", \"records\": [{\"nll\", \"tokens\"}]} as JSON.")
    var json = false

    func run() throws {
        let lm = try modelOptions.load()
        let adapters = try adapterOptions.adapters(for: lm)
        let report = try InferenceService(model: lm).score(file: URL(fileURLWithPath: data), adapters: adapters)
        if json {
            try printJSON(report)
        } else {
            for (i, r) in report.records.enumerated() {
                print("record \(i + 1): nll \(String(format: "%.6f", r.nll)) over \(r.tokens) tokens")
            }
            print("mean nll \(String(format: "%.6f", report.mean_nll)) over \(report.tokens) tokens")
        }
    }
}
