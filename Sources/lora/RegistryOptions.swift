import ArgumentParser
import Foundation
import Service

/// Where the registry lives, shared by every registry command.
struct RegistryOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $DATABASE_URL, else the embedded cluster).")
    var databaseURL: String?

    @Option(name: .customLong("data-dir"), help: "Data directory: embedded cluster and artifact cache (default: $LORA_DATA_DIR, else /var/lib/lora for root, else ~/.local/share/lora).")
    var dataDir: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    var configuration: RegistryConfiguration {
        RegistryConfiguration.resolve(databaseURL: databaseURL, dataDirectory: dataDir)
    }

    func open() throws -> RegistryService {
        try RegistryService.open(configuration, inspector: CLIInspector.make())
    }

    /// Prints JSON when --json, else the text.
    func emit<T: Encodable>(_ value: T, text: () -> String) throws {
        if json { print(try RegistryJSON.encode(value)) } else { print(text()) }
    }
}

/// The base model inspector the CLI uses. Reads HF config.json directories itself; the Model
/// target's GGUF loader plugs in as the fallback once available.
enum CLIInspector {
    static func make() -> BaseModelInspector { DefaultBaseModelInspector() }
}

/// Parses repeated KEY=VALUE options.
func parseKeyValues(_ items: [String], option: String) throws -> [String: String] {
    var out: [String: String] = [:]
    for item in items {
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
            throw ValidationError("\(option) expects KEY=VALUE, got '\(item)'")
        }
        out[String(item[..<eq])] = String(item[item.index(after: eq)...])
    }
    return out
}

/// Left-aligned columns for text output.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { r in
        r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}
