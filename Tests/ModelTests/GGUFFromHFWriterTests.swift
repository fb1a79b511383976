import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

/// An HF checkpoint written as GGUF (`lora merge --format gguf` from an HF source) loads back as the
/// same model: configuration, every weight bit for bit (q/k rows permuted to llama.cpp's order and
/// back), RoPE frequencies, the tokenizer's ids; and its metadata is the fixture script's GGUF twin's.
final class GGUFFromHFWriterTests: TemporaryDirectoryTestCase {
    static let texts = ["The cat sat on the mat, and the dog sleeps in the sun.", "def add(a, b):\n    return a + b\n",
                        "Question: what does a language model predict?\nAnswer: The next token.", "Café 🙂 Très bien, merci!",
                        "<|im_start|>user\nhi<|im_end|>\n", "x", ""]

    func dense(_ w: LinearWeight) -> [Float] { (w as! DenseWeight).data }

    func testHFCheckpointsWrittenAsGGUFLoadBackAsTheSameModel() throws {
        for (name, twin) in [("tiny-llama-tied", "tiny-llama-gguf/tiny-llama.gguf"), ("tiny-llama-untied", nil),
                             ("tiny-qwen2", "tiny-qwen2-gguf/tiny-qwen2.gguf"),
                             ("tiny-llama3-rope", "tiny-llama3-rope-gguf/tiny-llama3-rope.gguf"),
                             ("tiny-llama-linear-rope", "tiny-llama-linear-rope-gguf/tiny-llama-linear-rope.gguf")] {
            let h = try ModelLoader.load(TestPaths.fixture("models/\(name)"))
            let out = dir.appendingPathComponent("\(name).gguf")
            try MergedModelWriter.writeGGUF(h, dtype: .f32, to: out)
            let g = try ModelLoader.load(out)
            let a = h.config, b = g.config
            XCTAssertEqual(b.architecture, a.architecture, name)
            XCTAssertEqual([b.vocabSize, b.hiddenSize, b.intermediateSize, b.numLayers, b.numHeads, b.numKVHeads, b.headDim, b.maxPositionEmbeddings],
                           [a.vocabSize, a.hiddenSize, a.intermediateSize, a.numLayers, a.numHeads, a.numKVHeads, a.headDim, a.maxPositionEmbeddings], name)
            XCTAssertEqual(b.rmsNormEps, a.rmsNormEps, name)
            XCTAssertEqual(b.ropeTheta, a.ropeTheta, name)
            XCTAssertEqual(b.tieWordEmbeddings, a.tieWordEmbeddings, name)
            XCTAssertEqual(b.bosTokenId, a.bosTokenId, name)
            XCTAssertEqual(Set(b.eosTokenIds), Set(a.eosTokenIds), name)
            for (x, y) in zip(b.ropeInverseFrequencies, a.ropeInverseFrequencies) {
                // Llama 3.1 scaling becomes per-frequency divisors (base / scaled): a division each way, relative.
                XCTAssertEqual(Double(x), Double(y), accuracy: FP32.roundings(4) * Double(y), name)
            }
            XCTAssertEqual(g.weights.embedding, h.weights.embedding, name)
            XCTAssertEqual(g.weights.finalNorm, h.weights.finalNorm, name)
            if !a.tieWordEmbeddings { XCTAssertEqual(dense(g.weights.lmHead), dense(h.weights.lmHead), name) }
            for (i, (x, y)) in zip(g.weights.layers, h.weights.layers).enumerated() {
                XCTAssertEqual(x.attnNorm, y.attnNorm, "\(name) layer \(i)")
                XCTAssertEqual(x.mlpNorm, y.mlpNorm, "\(name) layer \(i)")
                XCTAssertEqual(x.qBias, y.qBias, "\(name) layer \(i)")
                XCTAssertEqual(x.kBias, y.kBias, "\(name) layer \(i)")
                XCTAssertEqual(x.vBias, y.vBias, "\(name) layer \(i)")
                for (m, n) in [(x.q, y.q), (x.k, y.k), (x.v, y.v), (x.o, y.o), (x.gate, y.gate), (x.up, y.up), (x.down, y.down)] {
                    XCTAssertEqual(dense(m), dense(n), "\(name) layer \(i)")
                }
            }
            // Same weights and (unscaled or linearly scaled) frequencies: the same logits, bit for bit.
            if a.ropeInverseFrequencies == b.ropeInverseFrequencies {
                let ids = [1, 5, 9, 200, 33, 7, 100]
                XCTAssertEqual(try LlamaModel(config: b, weights: g.weights).logits(for: ids),
                               try LlamaModel(config: a, weights: h.weights).logits(for: ids), name)
            }
            guard case let .huggingFace(json, config) = h.tokenizer, case let .gguf(data) = g.tokenizer else {
                return XCTFail("\(name): unexpected tokenizer sources")
            }
            let ta = try Tokenizer(tokenizerJSON: json, tokenizerConfig: config), tb = try Tokenizer(gguf: data)
            for text in Self.texts {
                XCTAssertEqual(tb.encode(text), ta.encode(text), "\(name): \(text.debugDescription)")
                XCTAssertEqual(tb.decode(ta.encode(text)), ta.decode(ta.encode(text)), name)
            }
            XCTAssertEqual(g.chatTemplate, h.chatTemplate, name)

            // The fixture script's GGUF of the same checkpoint (gguf-py's writer): same keys and values,
            // except the file type and the pre-tokenizer's name (it wrote "default" for the GPT-2 split,
            // which llama.cpp reads as another split; we write llama.cpp's "gpt-2").
            guard let twin else { continue }
            let ours = try GGUFFile(out), theirs = try GGUFFile(TestPaths.fixture("models/\(twin)"))
            for key in theirs.metadataKeys where !["general.alignment", "general.file_type", "general.quantization_version",
                                                   "tokenizer.ggml.pre"].contains(key) {
                if key == "general.name" { continue }
                XCTAssertEqual(ours.metadata[key], theirs.metadata[key], "\(name): \(key)")
            }
            XCTAssertEqual(ours.tensor(named: "rope_freqs.weight") == nil, theirs.tensor(named: "rope_freqs.weight") == nil, name)
            if theirs.tensor(named: "rope_freqs.weight") != nil {
                for (x, y) in zip(try ours.floats("rope_freqs.weight"), try theirs.floats("rope_freqs.weight")) {
                    XCTAssertEqual(Double(x), Double(y), accuracy: FP32.roundings(4) * Double(y), name)
                }
            }
        }
    }

    func testWhatGGUFCannotSayIsRefusedAndNothingIsWritten() throws {
        // Mistral's sliding window has no place in llama.cpp's llama architecture.
        let mistral = try ModelLoader.load(TestPaths.fixture("models/tiny-mistral"))
        let out = dir.appendingPathComponent("mistral.gguf")
        XCTAssertThrowsError(try MergedModelWriter.writeGGUF(mistral, dtype: .f32, to: out)) {
            XCTAssertTrue("\($0)".contains("sliding_window"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // A SentencePiece tokenizer: refused naming the tokenizer's field and the way out.
        var llama2 = try ModelLoader.load(TestPaths.fixture("models/tiny-llama-tied"))
        llama2.tokenizer = .huggingFace(tokenizerJSON: TestPaths.fixture("tokenizers/llama2/tokenizer.json"),
                                        tokenizerConfig: TestPaths.fixture("tokenizers/llama2/tokenizer_config.json"))
        XCTAssertThrowsError(try MergedModelWriter.writeGGUF(llama2, dtype: .f32, to: out)) {
            XCTAssertTrue("\($0)".contains("decoder") && "\($0)".contains("--format hf"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
