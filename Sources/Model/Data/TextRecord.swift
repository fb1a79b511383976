import ChatTemplate
import Foundation

/// One line of a JSONL data file, as `lora score` (and later `lora train`) reads it.
public enum TextRecord: Sendable, Equatable {
    /// `{"text"}`: every token after the first is scored.
    case text(String)
    /// `{"prompt", "completion"}`: the completion's tokens and a final EOS are scored.
    case promptCompletion(prompt: String, completion: String)
    /// `{"messages": [{"role", "content", "weight"?}]}`: rendered with the model's chat template; the
    /// assistant turns are scored, except those with `"weight": 0` (`scored[i]` per message).
    case chat(messages: [ChatMessage], scored: [Bool])
}

/// A record turned into token ids plus the positions whose token is scored (predicted from the
/// tokens before it). `scored[i]` refers to `tokens[i]`; position 0 is never scored.
public struct TokenizedRecord: Sendable, Equatable {
    public var tokens: [Int]
    public var scored: [Bool]
    public var scoredCount: Int { scored.lazy.filter { $0 }.count }

    public init(tokens: [Int], scored: [Bool]) {
        self.tokens = tokens
        self.scored = scored
    }
}

public enum JSONLReader {
    /// Longest line accepted, in bytes: 4 MiB is about a million tokens of text, far past any model's
    /// context. Checked before a line is parsed or tokenized, so a 50 MB line is refused at once
    /// instead of costing gigabytes and a minute of tokenizing.
    public static let defaultMaxLineBytes = 4 << 20

    /// Reads a JSONL file of `TextRecord`s. Blank lines are skipped; anything else that is not a
    /// record is an error naming the file and 1-based line.
    public static func readTextRecords(_ url: URL, maxLineBytes: Int = defaultMaxLineBytes) throws -> [TextRecord] {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        return try parseTextRecords(data, path: path, maxLineBytes: maxLineBytes)
    }

    /// The same checks over bytes already in memory (an upload); errors name `path` and the line.
    public static func parseTextRecords(_ data: Data, path: String, maxLineBytes: Int = defaultMaxLineBytes) throws -> [TextRecord] {
        var records: [TextRecord] = []
        var lineNo = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if line.count > maxLineBytes {
                throw ModelError.badInput(path: path, line: lineNo, reason: "the line is \(line.count) bytes, over the limit of "
                    + "\(maxLineBytes) bytes per record")
            }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let obj: Any
            do {
                obj = try JSONSerialization.jsonObject(with: Data(line), options: [])
            } catch {
                throw ModelError.badInput(path: path, line: lineNo, reason: "not valid JSON")
            }
            guard let dict = obj as? [String: Any] else {
                throw ModelError.badInput(path: path, line: lineNo, reason: "expected a JSON object, got \(type(of: obj) == NSArray.self ? "an array" : "a \(Self.kind(obj))")")
            }
            records.append(try record(dict, path: path, line: lineNo))
        }
        if records.isEmpty { throw ModelError.badInput(path: path, line: max(1, lineNo), reason: "the file holds no records") }
        return records
    }

    static func kind(_ v: Any) -> String {
        switch v {
        case is NSArray: return "array"
        case is String: return "string"
        case is NSNumber: return "number"
        case is NSNull: return "null"
        default: return "value"
        }
    }

    static let roles: Set<String> = ["system", "user", "assistant", "tool"]

    static func chat(_ value: Any, path: String, line: Int) throws -> TextRecord {
        func bad(_ reason: String) -> ModelError { .badInput(path: path, line: line, reason: reason) }
        guard let list = value as? [Any] else { throw bad("field 'messages' must be a list, got \(kind(value))") }
        if list.isEmpty { throw bad("field 'messages' is an empty conversation") }
        var messages: [ChatMessage] = []
        var scored: [Bool] = []
        for (i, item) in list.enumerated() {
            guard let m = item as? [String: Any] else { throw bad("messages[\(i)] must be an object, got \(kind(item))") }
            guard let role = m["role"] as? String else { throw bad("messages[\(i)].role is missing or not a string") }
            guard roles.contains(role) else {
                throw bad("messages[\(i)].role '\(role)' is unknown; expected one of \(roles.sorted().joined(separator: ", "))")
            }
            guard let content = m["content"] as? String else { throw bad("messages[\(i)].content is missing or not a string") }
            var weight = 1
            if let w = m["weight"] {
                guard let n = w as? NSNumber, n.doubleValue == 0 || n.doubleValue == 1 else {
                    throw bad("messages[\(i)].weight must be 0 or 1")
                }
                guard role == "assistant" else { throw bad("messages[\(i)].weight is only meaningful on assistant messages") }
                weight = n.intValue
            }
            messages.append(ChatMessage(role: role, content: content))
            scored.append(role == "assistant" && weight == 1)
        }
        if !messages.contains(where: { $0.role == "assistant" }) { throw bad("the conversation has no assistant turn") }
        return .chat(messages: messages, scored: scored)
    }

    static func record(_ d: [String: Any], path: String, line: Int) throws -> TextRecord {
        func string(_ key: String) throws -> String? {
            guard let v = d[key] else { return nil }
            guard let s = v as? String else {
                throw ModelError.badInput(path: path, line: line, reason: "field '\(key)' must be a string, got \(kind(v))")
            }
            return s
        }
        if let text = try string("text") {
            if d["prompt"] != nil || d["completion"] != nil {
                throw ModelError.badInput(path: path, line: line, reason: "a record has either 'text' or 'prompt' and 'completion', not both")
            }
            if text.isEmpty { throw ModelError.badInput(path: path, line: line, reason: "field 'text' is empty") }
            return .text(text)
        }
        let prompt = try string("prompt"), completion = try string("completion")
        if let prompt, let completion {
            if completion.isEmpty { throw ModelError.badInput(path: path, line: line, reason: "field 'completion' is empty") }
            return .promptCompletion(prompt: prompt, completion: completion)
        }
        if prompt != nil { throw ModelError.badInput(path: path, line: line, reason: "missing field 'completion'") }
        if completion != nil { throw ModelError.badInput(path: path, line: line, reason: "missing field 'prompt'") }
        if let m = d["messages"] {
            return try chat(m, path: path, line: line)
        }
        let keys = d.keys.sorted().joined(separator: ", ")
        throw ModelError.badInput(path: path, line: line, reason: "expected field 'text' or fields 'prompt' and 'completion', found {\(keys)}")
    }
}
