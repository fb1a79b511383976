import ArgumentParser
import Foundation
import Service

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Parameters and resident bytes per component of a base model as loaded.")

    @OptionGroup var modelOptions: ModelOptions

    @Flag(name: .long, help: "Print as JSON.")
    var json = false

    func run() throws {
        let before = ResidentMemory.current()
        let lm = try modelOptions.load()
        let info = ModelInfo.describe(lm, quant: modelOptions.quant, measuredBytes: ResidentMemory.current() - before)
        if json {
            struct Out: Encodable { let info: ModelInfo; let peak_rss_bytes: Int }
            try printJSON(Out(info: info, peak_rss_bytes: ResourceUsage.peakRSSBytes()))
            return
        }
        func mb(_ b: Int) -> String { String(format: "%.1f MB", Double(b) / 1e6) }
        print("model \(info.model)  quant \(info.quant)")
        for c in info.components {
            let name = c.name.padding(toLength: 16, withPad: " ", startingAt: 0)
            let bytes = String(repeating: " ", count: max(0, 10 - mb(c.bytes).count)) + mb(c.bytes)
            print("  \(name) \(String(format: "%12d", c.parameters)) params  \(bytes)  \(String(format: "%.3f", c.bytesPerParameter)) bytes/param  \(c.format)")
        }
        print("  \("total".padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%12d", info.parameters)) params  computed \(mb(info.computedBytes))  measured \(mb(info.measuredBytes)) resident")
    }
}
