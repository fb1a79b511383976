/// The names a format gives the config's size fields, for errors that name the field a user can fix.
struct ConfigFieldNames {
    /// The file holding the fields (`config.json`, or the GGUF file).
    var path: String
    var layers, hidden, intermediate, vocab, heads, kvHeads, headDim: String

    static func huggingFace(path: String) -> ConfigFieldNames {
        ConfigFieldNames(path: path, layers: "num_hidden_layers", hidden: "hidden_size", intermediate: "intermediate_size",
                         vocab: "vocab_size", heads: "num_attention_heads", kvHeads: "num_key_value_heads", headDim: "head_dim")
    }

    /// `arch` is GGUF's `general.architecture` (the prefix of its keys).
    static func gguf(path: String, arch: String) -> ConfigFieldNames {
        let p = arch + "."
        return ConfigFieldNames(path: path, layers: p + "block_count", hidden: p + "embedding_length",
                                intermediate: p + "feed_forward_length", vocab: p + "vocab_size",
                                heads: p + "attention.head_count", kvHeads: p + "attention.head_count_kv",
                                headDim: p + "attention.key_length")
    }
}

/// Checks every size a config claims against the tensors the file actually holds, before any memory
/// is reserved from those sizes: a config claiming 2^30 layers or a billion-wide hidden size is an
/// error naming the field and its value, not an allocation failure. (The tensors' own sizes were
/// already checked against the file's length by the GGUF and safetensors readers.)
enum ConfigClaims {
    static func check(_ c: LlamaConfig, names: TensorNames, source: TensorSource, fields f: ConfigFieldNames) throws {
        func refuse(_ field: String, _ value: Int, _ reason: String) -> ModelError {
            .unsupportedConfig(path: f.path, field: field, reason: "\(value) \(reason)")
        }
        // Products used to size buffers must not overflow (release builds do not trap on overflow).
        for (field, value, other, what) in [(f.heads, c.numHeads, c.headDim, "heads of"), (f.kvHeads, c.numKVHeads, c.headDim, "heads of"),
                                            (f.vocab, c.vocabSize, c.hiddenSize, "rows of"), (f.intermediate, c.intermediateSize, c.hiddenSize, "rows of")] {
            let (bytes, overflow) = value.multipliedReportingOverflow(by: other)
            if overflow || bytes > Int.max / 16 {
                throw refuse(field, value, "is absurd: \(value) \(what) \(other) overflows any buffer")
            }
        }

        // Layers: every claimed layer must exist; count those present without trusting the claim.
        var present = 0
        while present < c.numLayers, source.shape(names.layer(present, .attnNorm)) != nil { present += 1 }
        if present < c.numLayers {
            let missing = names.layer(present, .attnNorm)
            throw refuse(f.layers, c.numLayers, "claims more layers than \(source.path(missing)) holds: it has \(present) "
                + "(no tensor '\(missing)')")
        }

        // A missing tensor is left to the weight loader, which names it with its expected shape.
        func expect(_ name: String, dim: Int, is claimed: Int, field: String, _ what: String) throws {
            guard let s = source.shape(name) else { return }
            guard dim < s.count, s[dim] == claimed else {
                throw refuse(field, claimed, "does not match the tensor '\(name)' of shape \(s) in \(source.path(name)) (its \(what))")
            }
        }
        try expect(names.finalNorm, dim: 0, is: c.hiddenSize, field: f.hidden, "length")
        try expect(names.embedding, dim: 0, is: c.vocabSize, field: f.vocab, "rows")
        try expect(names.embedding, dim: 1, is: c.hiddenSize, field: f.hidden, "columns")
        if !c.tieWordEmbeddings {
            try expect(names.lmHead, dim: 0, is: c.vocabSize, field: f.vocab, "rows")
        }
        // bitsandbytes checkpoints store linear weights packed ([N, 1] bytes); their shapes are checked
        // against the quantization state when read.
        guard source.nf4 == nil else { return }
        try expect(names.layer(0, .gate), dim: 0, is: c.intermediateSize, field: f.intermediate, "rows")
        try expect(names.layer(0, .q), dim: 0, is: c.qDim, field: f.heads, "rows, \(f.heads) x \(f.headDim) = \(c.numHeads) x \(c.headDim)")
        try expect(names.layer(0, .k), dim: 0, is: c.kvDim, field: f.kvHeads,
                   "rows, \(f.kvHeads) x \(f.headDim) = \(c.numKVHeads) x \(c.headDim)")
    }
}
