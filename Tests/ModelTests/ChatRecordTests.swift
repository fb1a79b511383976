import ChatTemplate
import Foundation
import Model
import TestSupport
import Tokenizer
import XCTest

/// Chat records: rendered with the model's template, loss on assistant spans only.
final class ChatRecordTests: XCTestCase {
    let dir = TestPaths.fixture("models/tiny-llama-tied")

    func format() throws -> (Tokenizer, ChatFormat) {
        let tok = try Tokenizer(directory: dir)
        let template = try ChatTemplate(String(contentsOf: dir.appendingPathComponent("chat_template.jinja"), encoding: .utf8))
        return (tok, ChatFormat(template: template, tokenizer: tok))
    }

    /// The scored tokens, as runs of consecutive positions, decoded.
    func scoredRuns(_ r: TokenizedRecord, _ tok: Tokenizer) -> [String] {
        var runs: [String] = []
        var current: [Int] = []
        for (id, s) in zip(r.tokens, r.scored) {
            if s { current.append(id) } else if !current.isEmpty { runs.append(tok.decode(current)); current = [] }
        }
        if !current.isEmpty { runs.append(tok.decode(current)) }
        return runs
    }

    func testOnlyAssistantSpansAreScoredAndWeightZeroTurnsAreNot() throws {
        let (tok, chat) = try format()
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi 🙂"),
                        ChatMessage(role: "assistant", content: "Hello there, café!"), ChatMessage(role: "user", content: "Bye"),
                        ChatMessage(role: "assistant", content: "See you.")]
        let all = try TextRecord.chat(messages: messages, scored: [false, false, true, false, true]).tokenize(with: tok, eosTokenId: 2, chat: chat)
        XCTAssertEqual(tok.decode(all.tokens), try chat.template.render(messages: messages, addGenerationPrompt: false, bosToken: chat.bosToken, eosToken: chat.eosToken))
        XCTAssertEqual(scoredRuns(all, tok), ["Hello there, café!<|im_end|>\n", "See you.<|im_end|>\n"])
        let second = try TextRecord.chat(messages: messages, scored: [false, false, false, false, true]).tokenize(with: tok, eosTokenId: 2, chat: chat)
        XCTAssertEqual(scoredRuns(second, tok), ["See you.<|im_end|>\n"])
    }

    func testChatRecordsAreValidatedNamingFileLineAndField() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("chat-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let cases: [(String, String)] = [
            (#"{"messages": []}"#, "empty conversation"),
            (#"{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}"#, "messages[0].role 'robot' is unknown"),
            (#"{"messages": [{"role": "user", "content": "x"}]}"#, "no assistant turn"),
            (#"{"messages": [{"role": "user", "content": "x", "weight": 0}, {"role": "assistant", "content": "y"}]}"#, "messages[0].weight"),
            (#"{"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}"#, "messages[0].content"),
            (#"{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}"#, "must be 0 or 1"),
        ]
        for (line, expected) in cases {
            try ("{\"text\": \"ok\"}\n" + line + "\n").write(to: tmp, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try JSONLReader.readTextRecords(tmp)) {
                XCTAssertTrue("\($0)".contains("\(tmp.path):2:") && "\($0)".contains(expected), "\($0)")
            }
        }
    }

    func testScoreAcceptsChatRecords() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("chat-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try #"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#.write(to: tmp, atomically: true, encoding: .utf8)
        let r = try runProcess(TestPaths.loraBinary, ["score", "--model", dir.path, "--quant", "none", "--data", tmp.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (tok, _) = try format()
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["tokens"] as? Int, tok.encode("Hello!<|im_end|>\n", addSpecialTokens: false).count)
    }
}
