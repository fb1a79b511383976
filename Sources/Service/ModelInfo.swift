import Foundation
import Kernels
import Model

/// Parameters and resident bytes per component of a loaded base model (`lora info`).
public struct ModelInfo: Codable, Sendable {
    public struct Component: Codable, Sendable {
        public var name: String
        public var parameters: Int
        /// Bytes held for this component (0 when it shares another's storage, e.g. a tied head).
        public var bytes: Int
        public var format: String
        public var bytesPerParameter: Double { parameters == 0 ? 0 : Double(bytes) / Double(parameters) }
    }

    public var model: String
    public var quant: String
    public var components: [Component]
    public var parameters: Int
    /// The sum of the components' bytes.
    public var computedBytes: Int
    /// Resident memory the process gained while loading (RSS after minus before).
    public var measuredBytes: Int

    static func format(_ w: LinearWeight) -> String {
        let t = String(describing: type(of: w))
        switch t {
        case "DenseWeight": return "f32"
        case "NF4Weight": return "nf4"
        case "Int8Weight": return "int8"
        case "Q4_1Weight": return "q4_1"
        case "Q8_0Weight": return "q8_0"
        default: return t
        }
    }

    public static func describe(_ lm: LanguageModel, quant: QuantizationMode, measuredBytes: Int) -> ModelInfo {
        let w = lm.model.weights, c = lm.model.config
        func group(_ name: String, _ modules: [LinearModule]) -> Component {
            var params = 0, bytes = 0
            var formats = Set<String>()
            for layer in w.layers {
                for m in modules {
                    let lw = layer.linear(m.rawValue)!
                    params += lw.outFeatures * lw.inFeatures
                    bytes += lw.residentBytes
                    formats.insert(format(lw))
                }
            }
            return Component(name: name, parameters: params, bytes: bytes, format: formats.sorted().joined(separator: "+"))
        }
        let embFormat = w.quantizedEmbedding.map { "\($0.type)" } ?? "f32"
        var comps = [
            Component(name: "embedding", parameters: c.vocabSize * c.hiddenSize, bytes: w.embeddingBytes, format: embFormat),
            group("attention", [.q, .k, .v, .o]),
            group("mlp", [.gate, .up, .down]),
            Component(name: "norms", parameters: (2 * c.numLayers + 1) * c.hiddenSize,
                      bytes: (2 * c.numLayers + 1) * c.hiddenSize * MemoryLayout<Float>.size, format: "f32"),
        ]
        if c.tieWordEmbeddings {
            comps.append(Component(name: "lm_head (tied)", parameters: 0, bytes: 0, format: embFormat))
        } else {
            comps.append(Component(name: "lm_head", parameters: c.vocabSize * c.hiddenSize, bytes: w.lmHead.residentBytes, format: format(w.lmHead)))
        }
        return ModelInfo(model: lm.source.path, quant: quant.rawValue, components: comps,
                         parameters: comps.reduce(0) { $0 + $1.parameters },
                         computedBytes: comps.reduce(0) { $0 + $1.bytes }, measuredBytes: measuredBytes)
    }
}

public enum ResidentMemory {
    /// Current resident set size of this process, from /proc/self/statm.
    public static func current() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = s.split(separator: " ")
        guard f.count > 1, let pages = Int(f[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
