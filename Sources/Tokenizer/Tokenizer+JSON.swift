import Foundation

extension Tokenizer {
    /// Reads `tokenizer.json` and, when given, `tokenizer_config.json` (bos/eos tokens, `add_bos_token`,
    /// `add_eos_token`, `chat_template`).
    public convenience init(tokenizerJSON: URL, tokenizerConfig: URL?) throws {
        let data = try Tokenizer.read(tokenizerJSON)
        let config = try tokenizerConfig.map { try Tokenizer.read($0) }
        try self.init(tokenizerJSONData: data, tokenizerConfigData: config,
                      jsonName: tokenizerJSON.path, configName: tokenizerConfig?.path ?? "tokenizer_config.json")
    }

    public convenience init(tokenizerJSONData: Data, tokenizerConfigData: Data?) throws {
        try self.init(tokenizerJSONData: tokenizerJSONData, tokenizerConfigData: tokenizerConfigData,
                      jsonName: "tokenizer.json", configName: "tokenizer_config.json")
    }

    /// A model directory: `tokenizer.json`, `tokenizer_config.json` if present, and `chat_template.jinja`
    /// if present (it takes precedence over the config's `chat_template`, as in transformers 5).
    public convenience init(directory: URL) throws {
        let json = directory.appendingPathComponent("tokenizer.json")
        let config = directory.appendingPathComponent("tokenizer_config.json")
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        let fm = FileManager.default
        let configData = fm.fileExists(atPath: config.path) ? try Tokenizer.read(config) : nil
        var template: String?
        if fm.fileExists(atPath: jinja.path) {
            let d = try Tokenizer.read(jinja)
            guard let s = String(data: d, encoding: .utf8) else {
                throw TokenizerError.unreadable(file: jinja.path, reason: "not UTF-8")
            }
            template = s
        }
        try self.init(tokenizerJSONData: try Tokenizer.read(json), tokenizerConfigData: configData,
                      jsonName: json.path, configName: config.path, chatTemplateOverride: template)
    }

    convenience init(tokenizerJSONData: Data, tokenizerConfigData: Data?, jsonName: String, configName: String,
                     chatTemplateOverride: String? = nil) throws {
        let root = try JSONFields.object(tokenizerJSONData, file: jsonName)
        var parts = try TokenizerJSONParser(file: jsonName).parse(root)
        if let tokenizerConfigData {
            let config = try JSONFields.object(tokenizerConfigData, file: configName)
            try TokenizerJSONParser.applyConfig(config, file: configName, to: &parts)
        }
        if let chatTemplateOverride { parts.chatTemplate = chatTemplateOverride }
        // Without a config naming them, BOS / EOS are the tokens the post-processor adds.
        if let post = parts.postProcessor {
            let added = post.addedIds
            if parts.bosTokenId == nil, added.prefix.count == 1 { parts.bosTokenId = added.prefix[0] }
            if parts.eosTokenId == nil, added.suffix.count == 1 { parts.eosTokenId = added.suffix[0] }
        }
        self.init(parts: parts)
    }

    static func read(_ url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadable(file: url.path, reason: error.localizedDescription)
        }
    }
}

/// Typed access to JSONReader output, with errors naming file and field.
struct JSONFields {
    let file: String

    static func object(_ data: Data, file: String) throws -> [String: Any] {
        let any: Any
        do {
            any = try JSONReader.parse(data)
        } catch {
            throw TokenizerError.invalidJSON(file: file, reason: "\(error)")
        }
        guard let obj = (any as? JSONObject)?.fields else {
            throw TokenizerError.invalidJSON(file: file, reason: "the top level is not an object")
        }
        return obj
    }

    func isNull(_ v: Any?) -> Bool { v == nil || v is NSNull }

    func object(_ v: Any?, _ field: String) throws -> [String: Any] {
        guard let v, !(v is NSNull) else { throw TokenizerError.missingField(file: file, field: field) }
        guard let o = (v as? JSONObject)?.fields else { throw invalid(field, "expected an object") }
        return o
    }

    func array(_ v: Any?, _ field: String) throws -> [Any] {
        guard let v, !(v is NSNull) else { throw TokenizerError.missingField(file: file, field: field) }
        guard let a = (v as? JSONArray)?.items else { throw invalid(field, "expected an array") }
        return a
    }

    func string(_ v: Any?, _ field: String) throws -> String {
        guard let v, !(v is NSNull) else { throw TokenizerError.missingField(file: file, field: field) }
        guard let s = v as? String else { throw invalid(field, "expected a string") }
        return s
    }

    func optionalString(_ v: Any?, _ field: String) throws -> String? {
        isNull(v) ? nil : try string(v, field)
    }

    func int(_ v: Any?, _ field: String) throws -> Int {
        guard let v, !(v is NSNull) else { throw TokenizerError.missingField(file: file, field: field) }
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        throw invalid(field, "expected an integer")
    }

    func bool(_ v: Any?, _ field: String, default def: Bool) throws -> Bool {
        if isNull(v) { return def }
        guard let b = v as? Bool else { throw invalid(field, "expected true or false") }
        return b
    }

    func invalid(_ field: String, _ reason: String) -> TokenizerError {
        TokenizerError.invalidField(file: file, field: field, reason: reason)
    }
}
