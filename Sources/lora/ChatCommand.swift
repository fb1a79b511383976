import ArgumentParser
import ChatTemplate
import Foundation
import Kernels
import Model
import Service

/// `lora chat [TASK]`: a conversation with a task's adapter (or the base), one user message per
/// line of stdin, each reply streamed as it is generated. Through a server's
/// `/v1/chat/completions` with `--server` (or `$LORA_SERVER`), else in-process on `--model`.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a task's adapter: each line of input is a user message, each reply is streamed (/reset clears the conversation, /exit or end of input ends it).")

    @Argument(help: "TASK, TASK@N or TASK@ALIAS (or, in-process, a PEFT adapter directory); without it, the base model.")
    var task: String?

    @OptionGroup var server: ServerOptions

    @Option(name: .long, help: "In-process (no --server): the base model, an HF directory, a .gguf file or a URL of either.")
    var model: String?

    @Option(name: .long, help: "In-process: how linear weights are held (auto, keep, nf4, int8, none).")
    var quant: QuantizationMode = .auto

    @Option(name: .long, help: "In-process: threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("database-url"), help: "In-process with a registry TASK: PostgreSQL URL (default: $DATABASE_URL, else the embedded cluster).")
    var databaseURL: String?

    @Option(name: .customLong("data-dir"), help: "In-process with a registry TASK: data directory (default: $LORA_DATA_DIR, else /var/lib/lora for root, else ~/.local/share/lora).")
    var dataDir: String?

    @Option(name: .long, help: "A system message at the start of the conversation.")
    var system: String?

    /// `--max-tokens` is per reply.
    @OptionGroup var sampling: SamplingOptions<ChatSamplingDefaults>

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    }

    func run() throws {
        let reply: ([ChatMessage], @escaping (String) -> Void) throws -> String
        if let api = try server.remote() {
            if model != nil || databaseURL != nil || dataDir != nil {
                throw ValidationError("--model, --database-url and --data-dir are for an in-process chat: with --server the server's model answers")
            }
            let name = try task ?? baseID(api)
            reply = { messages, onText in try streamFromServer(api, model: name, messages: messages, onText: onText) }
        } else {
            guard let model else { throw ValidationError("give --server URL (or set LORA_SERVER), or --model SRC for an in-process chat") }
            Parallel.configure(threads: threads)
            let lm = try LanguageModel.load(path: model, quantization: quant)
            // Parsed once with the model (every turn renders it); one that does not parse fails here.
            _ = try InferenceService(model: lm).chatTemplate()
            var adapterOptions = AdapterOptions()
            adapterOptions.adapter = task
            adapterOptions.databaseURL = databaseURL
            adapterOptions.dataDir = dataDir
            let adapters = try adapterOptions.adapters(for: lm)
            let service = InferenceService(model: lm)
            var options = InferenceService.GenerateOptions()
            options.maxTokens = sampling.maxTokens
            options.sampling = sampling.parameters
            reply = { messages, onText in try service.generate(chat: messages, options: options, adapters: adapters, onText: onText).text }
        }
        let interactive = isatty(STDIN_FILENO) != 0
        var messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" { break }
            if text == "/reset" { messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []; continue }
            messages.append(ChatMessage(role: "user", content: line))
            let answer = try reply(messages) { piece in
                FileHandle.standardOutput.write(Data(piece.utf8))
            }
            FileHandle.standardOutput.write(Data("\n".utf8))
            messages.append(ChatMessage(role: "assistant", content: answer))
        }
    }

    /// The server's base model: the entry of GET /v1/models without a parent.
    private func baseID(_ api: RemoteAPI) throws -> String {
        struct Model: Decodable { let id: String; let parent: String? }
        guard let base = try api.get(RemoteAPI.Page<Model>.self, "/v1/models").data.first(where: { $0.parent == nil }) else {
            throw ValidationError("GET /v1/models lists no base model")
        }
        return base.id
    }

    /// One streamed `/v1/chat/completions` call: content deltas to `onText`; the whole reply returned.
    private func streamFromServer(_ api: RemoteAPI, model: String, messages: [ChatMessage], onText: (String) -> Void) throws -> String {
        var body: [String: Any] = ["model": model, "messages": messages.map { ["role": $0.role, "content": $0.content] },
                                   "max_tokens": sampling.maxTokens, "stream": true,
                                   "temperature": Double("\(sampling.temperature)") ?? Double(sampling.temperature)]
        if let topP = sampling.topP { body["top_p"] = Double("\(topP)") ?? Double(topP) }
        if let topK = sampling.topK { body["top_k"] = topK }
        if let seed = sampling.seed { body["seed"] = seed }
        struct Chunk: Decodable {
            struct Choice: Decodable { struct Delta: Decodable { let content: String? }; let delta: Delta? }
            struct Failure: Decodable { let message: String; let param: String?; let code: String? }
            let choices: [Choice]?
            let error: Failure?
        }
        var text = ""
        let path = "/v1/chat/completions"
        try api.events(path, method: .post, body: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) { payload in
            let chunk = try api.decode(Chunk.self, payload, path)
            if let e = chunk.error {
                throw RemoteAPI.Failure(method: "POST", path: path, status: 200, message: e.message, param: e.param, code: e.code)
            }
            for c in chunk.choices ?? [] {
                if let piece = c.delta?.content, !piece.isEmpty { text += piece; onText(piece) }
            }
        }
        return text
    }
}
