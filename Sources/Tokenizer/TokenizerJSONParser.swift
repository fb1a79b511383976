import Foundation

/// Turns a parsed tokenizer.json into the tokenizer's parts. Every component type is checked:
/// an unknown one is refused naming its field, never ignored.
struct TokenizerJSONParser {
    let file: String
    var f: JSONFields { JSONFields(file: file) }

    func parse(_ root: [String: Any]) throws -> Tokenizer.Parts {
        let model = try parseModel(try f.object(root["model"], "model"))
        let added = try parseAddedTokens(root["added_tokens"])
        let normalizer = try f.isNull(root["normalizer"]) ? nil : parseNormalizer(try f.object(root["normalizer"], "normalizer"), "normalizer")
        if let g = normalizer?.growth, g.factor > Normalizer.maxGrowthFactor || g.added > Double(Normalizer.maxAddedScalars) {
            throw f.invalid("normalizer", "can grow text \(g.factor)-fold plus \(Int(g.added)) scalars, over the limit of "
                + "\(Int(Normalizer.maxGrowthFactor))-fold plus \(Normalizer.maxAddedScalars) (chained Replace or Prepend steps)")
        }
        let pre = try f.isNull(root["pre_tokenizer"]) ? nil : parsePreTokenizer(try f.object(root["pre_tokenizer"], "pre_tokenizer"), "pre_tokenizer")
        let post = try f.isNull(root["post_processor"]) ? nil : parsePostProcessor(try f.object(root["post_processor"], "post_processor"), "post_processor")
        let decoder = try f.isNull(root["decoder"]) ? nil : parseDecoder(try f.object(root["decoder"], "decoder"), "decoder")
        return Tokenizer.Parts(model: model, normalizer: normalizer, preTokenizer: pre, postProcessor: post,
                               decoder: decoder, addedTokens: added, bosTokenId: nil, eosTokenId: nil, chatTemplate: nil)
    }

    // MARK: Model

    func parseModel(_ m: [String: Any]) throws -> BPEModel {
        // HF deserializes an untagged model by its fields; a BPE model is recognizable by its merges.
        let type = try f.optionalString(m["type"], "model.type") ?? (m["merges"] != nil ? "BPE" : "")
        guard type == "BPE" else {
            throw TokenizerError.unsupported(file: file, field: "model.type", value: type.isEmpty ? "(absent)" : type)
        }
        let vocab = try parseVocab(m["vocab"])
        let merges = try parseMerges(m["merges"])
        if let dropout = m["dropout"], !f.isNull(dropout), (dropout as? Double ?? Double(dropout as? Int ?? 1)) != 0 {
            throw TokenizerError.unsupported(file: file, field: "model.dropout", value: "\(dropout)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = try f.optionalString(m[key], "model.\(key)"), !v.isEmpty {
                throw TokenizerError.unsupported(file: file, field: "model.\(key)", value: v.debugDescription)
            }
        }
        return try BPEModel(vocab: vocab, merges: merges, unkToken: try f.optionalString(m["unk_token"], "model.unk_token"),
                            fuseUnk: try f.bool(m["fuse_unk"], "model.fuse_unk", default: false),
                            byteFallback: try f.bool(m["byte_fallback"], "model.byte_fallback", default: false),
                            ignoreMerges: try f.bool(m["ignore_merges"], "model.ignore_merges", default: false),
                            source: file, mergesField: "model.merges")
    }

    private func parseVocab(_ v: Any?) throws -> [String: Int] {
        // JSONReader builds an all-integer object as [String: Int]: no per-token work here.
        if let typed = (v as? JSONObject)?.ints { return typed }
        let vocabAny = try f.object(v, "model.vocab")
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabAny.count)
        for (token, idAny) in vocabAny {
            vocab[token] = try f.int(idAny, "model.vocab[\(token.debugDescription)]")
        }
        return vocab
    }

    /// Merges as pairs ["left", "right"] (tokenizers >= 0.20) or strings "left right" (older files,
    /// whose tokens never contain a space).
    private func parseMerges(_ v: Any?) throws -> [(String, String)] {
        if f.isNull(v) { return [] }
        if let pairs = (v as? JSONArray)?.stringArrays {
            var out: [(String, String)] = []
            out.reserveCapacity(pairs.count)
            for (i, p) in pairs.enumerated() {
                guard p.count == 2 else { throw f.invalid("model.merges[\(i)]", "expected a pair of strings") }
                out.append((p[0], p[1]))
            }
            return out
        }
        if let strings = (v as? JSONArray)?.strings {
            var out: [(String, String)] = []
            out.reserveCapacity(strings.count)
            for (i, s) in strings.enumerated() {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw f.invalid("model.merges[\(i)]", "expected \"left right\", got \(s.debugDescription)") }
                out.append((String(parts[0]), String(parts[1])))
            }
            return out
        }
        let items = try f.array(v, "model.merges")
        if items.isEmpty { return [] }
        for (i, item) in items.enumerated() {
            if item is String || (item as? JSONArray)?.strings?.count == 2 { continue }
            throw f.invalid("model.merges[\(i)]", "expected a string \"left right\" or a pair of strings")
        }
        throw f.invalid("model.merges", "mixes strings and pairs")
    }

    func parseAddedTokens(_ v: Any?) throws -> [AddedToken] {
        if f.isNull(v) { return [] }
        var out: [AddedToken] = []
        for (i, item) in try f.array(v, "added_tokens").enumerated() {
            let field = "added_tokens[\(i)]"
            let o = try f.object(item, field)
            let content = try f.string(o["content"], "\(field).content")
            guard !content.isEmpty else { throw f.invalid("\(field).content", "empty token") }
            let id = try f.int(o["id"], "\(field).id")
            guard id >= 0, id < BPEModel.maxTokenId else { throw f.invalid("\(field).id", "id \(id) is outside 0..<\(BPEModel.maxTokenId)") }
            out.append(AddedToken(id: id, content: content,
                                  special: try f.bool(o["special"], "\(field).special", default: false),
                                  singleWord: try f.bool(o["single_word"], "\(field).single_word", default: false),
                                  lstrip: try f.bool(o["lstrip"], "\(field).lstrip", default: false),
                                  rstrip: try f.bool(o["rstrip"], "\(field).rstrip", default: false),
                                  normalized: try f.bool(o["normalized"], "\(field).normalized", default: false)))
        }
        return out
    }

    // MARK: Components

    private func type(_ o: [String: Any], _ field: String) throws -> String {
        try f.string(o["type"], "\(field).type")
    }

    /// A `{"String": s}` pattern's text, or for `{"Regex": r}` nil plus the regex source.
    private func pattern(_ o: [String: Any], _ field: String) throws -> (literal: String?, regex: String?) {
        let p = try f.object(o["pattern"], "\(field).pattern")
        if let s = p["String"] as? String { return (s, nil) }
        if let r = p["Regex"] as? String { return (nil, r) }
        throw f.invalid("\(field).pattern", "expected {\"String\": ...} or {\"Regex\": ...}")
    }

    func parseNormalizer(_ o: [String: Any], _ field: String) throws -> Normalizer {
        switch try type(o, field) {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(Array(try f.string(o["prepend"], "\(field).prepend").unicodeScalars))
        case "Replace":
            let p = try pattern(o, field)
            guard let lit = p.literal else { throw TokenizerError.unsupported(file: file, field: "\(field).pattern.Regex", value: p.regex!.debugDescription) }
            guard !lit.isEmpty else { throw f.invalid("\(field).pattern", "an empty pattern would match between every two scalars") }
            return .replace(pattern: Array(lit.unicodeScalars), content: Array(try f.string(o["content"], "\(field).content").unicodeScalars))
        case "Strip":
            return .strip(left: try f.bool(o["strip_left"], "\(field).strip_left", default: true),
                          right: try f.bool(o["strip_right"], "\(field).strip_right", default: true))
        case "Sequence":
            let items = try f.array(o["normalizers"], "\(field).normalizers")
            return .sequence(try items.enumerated().map { i, n in
                try parseNormalizer(try f.object(n, "\(field).normalizers[\(i)]"), "\(field).normalizers[\(i)]")
            })
        case let t:
            throw TokenizerError.unsupported(file: file, field: "\(field).type", value: t)
        }
    }

    func parsePreTokenizer(_ o: [String: Any], _ field: String) throws -> PreTokenizer {
        switch try type(o, field) {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try f.bool(o["add_prefix_space"], "\(field).add_prefix_space", default: true),
                              useRegex: try f.bool(o["use_regex"], "\(field).use_regex", default: true))
        case "Digits":
            return .digits(individual: try f.bool(o["individual_digits"], "\(field).individual_digits", default: false))
        case "Split":
            let p = try pattern(o, field)
            let matcher: SplitMatcher
            if let lit = p.literal {
                matcher = .literal(Array(lit.unicodeScalars))
            } else if let sp = SplitPattern(regex: p.regex!) {
                matcher = .pattern(sp)
            } else {
                throw TokenizerError.unsupported(file: file, field: "\(field).pattern.Regex", value: p.regex!.debugDescription)
            }
            let b = try f.string(o["behavior"], "\(field).behavior")
            guard let behavior = SplitBehavior(rawValue: b) else { throw TokenizerError.unsupported(file: file, field: "\(field).behavior", value: b) }
            return .split(matcher, behavior, invert: try f.bool(o["invert"], "\(field).invert", default: false))
        case "Metaspace":
            let (replacement, scheme) = try metaspaceFields(o, field)
            return .metaspace(replacement: replacement, prependScheme: scheme, split: try f.bool(o["split"], "\(field).split", default: true))
        case "Sequence":
            let items = try f.array(o["pretokenizers"], "\(field).pretokenizers")
            return .sequence(try items.enumerated().map { i, n in
                try parsePreTokenizer(try f.object(n, "\(field).pretokenizers[\(i)]"), "\(field).pretokenizers[\(i)]")
            })
        case let t:
            throw TokenizerError.unsupported(file: file, field: "\(field).type", value: t)
        }
    }

    private func metaspaceFields(_ o: [String: Any], _ field: String) throws -> (Unicode.Scalar, String) {
        let r = try f.optionalString(o["replacement"], "\(field).replacement") ?? "\u{2581}"
        guard r.unicodeScalars.count == 1, let replacement = r.unicodeScalars.first else {
            throw f.invalid("\(field).replacement", "expected one character, got \(r.debugDescription)")
        }
        var scheme = "always"
        if let s = try f.optionalString(o["prepend_scheme"], "\(field).prepend_scheme") {
            guard ["always", "first", "never"].contains(s) else { throw TokenizerError.unsupported(file: file, field: "\(field).prepend_scheme", value: s) }
            scheme = s
        } else if !(try f.bool(o["add_prefix_space"], "\(field).add_prefix_space", default: true)) {
            scheme = "never"
        }
        return (replacement, scheme)
    }

    func parsePostProcessor(_ o: [String: Any], _ field: String) throws -> PostProcessor {
        switch try type(o, field) {
        case "ByteLevel":
            return .byteLevel
        case "TemplateProcessing":
            var specials: [String: [Int]] = [:]
            if !f.isNull(o["special_tokens"]) {
                for (name, v) in try f.object(o["special_tokens"], "\(field).special_tokens") {
                    let sf = "\(field).special_tokens[\(name.debugDescription)]"
                    let so = try f.object(v, sf)
                    specials[name] = try f.array(so["ids"], "\(sf).ids").enumerated().map { i, x in try f.int(x, "\(sf).ids[\(i)]") }
                }
            }
            var single: [TemplateItem] = []
            for (i, item) in try f.array(o["single"], "\(field).single").enumerated() {
                let itf = "\(field).single[\(i)]"
                let io = try f.object(item, itf)
                if let st = io["SpecialToken"] {
                    let name = try f.string(try f.object(st, "\(itf).SpecialToken")["id"], "\(itf).SpecialToken.id")
                    guard let ids = specials[name] else { throw f.invalid("\(itf).SpecialToken.id", "\(name.debugDescription) is not in special_tokens") }
                    single.append(.special(ids))
                } else if io["Sequence"] != nil {
                    single.append(.sequence)
                } else {
                    throw f.invalid(itf, "expected SpecialToken or Sequence")
                }
            }
            return .template(single: single)
        case "RobertaProcessing", "BertProcessing":
            func idOf(_ key: String) throws -> [Int] {
                let a = try f.array(o[key], "\(field).\(key)")
                guard a.count == 2 else { throw f.invalid("\(field).\(key)", "expected [token, id]") }
                return [try f.int(a[1], "\(field).\(key)[1]")]
            }
            return .wrap(prefix: try idOf("cls"), suffix: try idOf("sep"))
        case "Sequence":
            let items = try f.array(o["processors"], "\(field).processors")
            return .sequence(try items.enumerated().map { i, n in
                try parsePostProcessor(try f.object(n, "\(field).processors[\(i)]"), "\(field).processors[\(i)]")
            })
        case let t:
            throw TokenizerError.unsupported(file: file, field: "\(field).type", value: t)
        }
    }

    func parseDecoder(_ o: [String: Any], _ field: String) throws -> Decoder {
        switch try type(o, field) {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            let p = try pattern(o, field)
            guard let lit = p.literal else { throw TokenizerError.unsupported(file: file, field: "\(field).pattern.Regex", value: p.regex!.debugDescription) }
            guard !lit.isEmpty else { throw f.invalid("\(field).pattern", "an empty pattern would match between every two scalars") }
            return .replace(pattern: lit, content: try f.string(o["content"], "\(field).content"))
        case "Strip":
            let c = try f.string(o["content"], "\(field).content")
            guard c.unicodeScalars.count == 1, let scalar = c.unicodeScalars.first else { throw f.invalid("\(field).content", "expected one character") }
            return .strip(content: scalar, start: try f.int(o["start"], "\(field).start"), stop: try f.int(o["stop"], "\(field).stop"))
        case "Metaspace":
            let (replacement, scheme) = try metaspaceFields(o, field)
            return .metaspace(replacement: replacement, prependScheme: scheme)
        case "Sequence":
            let items = try f.array(o["decoders"], "\(field).decoders")
            return .sequence(try items.enumerated().map { i, n in
                try parseDecoder(try f.object(n, "\(field).decoders[\(i)]"), "\(field).decoders[\(i)]")
            })
        case let t:
            throw TokenizerError.unsupported(file: file, field: "\(field).type", value: t)
        }
    }

    // MARK: tokenizer_config.json

    /// Applies bos/eos tokens, `add_bos_token` / `add_eos_token` (transformers rebuilds the
    /// post-processor from them when they are given) and `chat_template`.
    static func applyConfig(_ c: [String: Any], file: String, to parts: inout Tokenizer.Parts) throws {
        let f = JSONFields(file: file)
        func tokenContent(_ key: String) throws -> String? {
            guard let v = c[key], !f.isNull(v) else { return nil }
            if let s = v as? String { return s }
            if let o = (v as? JSONObject)?.fields { return try f.string(o["content"], "\(key).content") }
            throw f.invalid(key, "expected a string or an object with `content`")
        }
        func idOf(_ token: String, _ key: String) throws -> Int {
            if let a = parts.addedTokens.first(where: { $0.content == token }) { return a.id }
            if let id = parts.model.vocab[token] { return id }
            throw f.invalid(key, "\(token.debugDescription) is not a token of the tokenizer")
        }
        if let bos = try tokenContent("bos_token") { parts.bosTokenId = try idOf(bos, "bos_token") }
        if let eos = try tokenContent("eos_token") { parts.eosTokenId = try idOf(eos, "eos_token") }

        let addBos = f.isNull(c["add_bos_token"]) ? nil : try f.bool(c["add_bos_token"], "add_bos_token", default: false)
        let addEos = f.isNull(c["add_eos_token"]) ? nil : try f.bool(c["add_eos_token"], "add_eos_token", default: false)
        // transformers 5 (TokenizersBackend.update_post_processor): when either flag is given, the
        // post-processor becomes [bos if add_bos_token] $A [eos if add_eos_token], an absent flag
        // counting as false and a flag without its token being dropped.
        if addBos != nil || addEos != nil {
            var single: [TemplateItem] = []
            if addBos == true, let bos = parts.bosTokenId { single.append(.special([bos])) }
            single.append(.sequence)
            if addEos == true, let eos = parts.eosTokenId { single.append(.special([eos])) }
            parts.postProcessor = .template(single: single)
        }

        if let t = c["chat_template"], !f.isNull(t) {
            if let s = t as? String {
                parts.chatTemplate = s
            } else if let list = (t as? JSONArray)?.items {
                // A list of {"name", "template"}: the one named "default".
                for (i, item) in list.enumerated() {
                    let o = try f.object(item, "chat_template[\(i)]")
                    if (o["name"] as? String) == "default" { parts.chatTemplate = try f.string(o["template"], "chat_template[\(i)].template") }
                }
            } else {
                throw f.invalid("chat_template", "expected a string or a list of named templates")
            }
        }
    }
}
