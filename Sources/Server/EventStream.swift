import Foundation
import Hummingbird
import Kernels
import Model
import Service

/// How a streamed call of one sequence reads its events: straight from the sequence's stream (true),
/// or through `mergedEvents` like a call of several, as before (false; `LORA_SERVE_HANDOFF=token`,
/// with the engine's per-token hand-off, for A/B figures). Set at start-up (tests: around a request).
public enum StreamHandOff {
    nonisolated(unsafe) public static var direct = EnvironmentSwitch.serveHandOff.value
}

/// Writes an admitted call as server-sent events in OpenAI's chunk format: `data: {json}` and a
/// blank line per chunk, then `data: [DONE]`. Chat: the first chunk's delta has the role, then
/// content deltas, then a chunk with the finish reason; with `include_usage`, a last chunk with
/// empty `choices` carries the usage.
struct EventStreamWriter {
    let admitted: AdmittedCall

    static func line(_ json: JSON) -> ByteBuffer { ByteBuffer(string: "data: \(json.serialized())\n\n") }
    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    /// One event holding an Encodable value, encoded on one line (keys sorted).
    static func line<T: Encodable>(record: T) throws -> ByteBuffer {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return ByteBuffer(string: "data: " + String(decoding: try e.encode(record), as: UTF8.self) + "\n\n")
    }

    /// Writes every chunk; an error the engine reports after admission becomes an `error` event.
    /// A failed write (the client went away) cancels every sequence of the call and is rethrown.
    func write(to writer: inout any ResponseBodyWriter) async throws {
        let shapes = admitted.shapes
        let usage = admitted.call.includeUsage
        var prompt = 0
        var completion = 0
        do {
            if admitted.call.kind == .chat {
                for i in admitted.pumps.indices {
                    try await writer.write(Self.line(shapes.chunk(index: i, role: true, text: "", finish: nil, includeUsage: usage)))
                }
            }
            /// Writes one event's chunk; true once the call failed (its error and [DONE] are written).
            func handle(_ index: Int, _ event: ServingEvent) async throws -> Bool {
                switch event {
                case let .text(piece) where !piece.isEmpty:
                    try await writer.write(Self.line(shapes.chunk(index: index, text: piece, finish: nil, includeUsage: usage)))
                case .text, .admitted:
                    break
                case let .finished(reason, p, c):
                    prompt += p
                    completion += c
                    let text: String? = admitted.call.kind == .chat ? nil : ""
                    try await writer.write(Self.line(shapes.chunk(index: index, text: text, finish: reason, includeUsage: usage)))
                case let .failed(error):
                    admitted.cancelAll()
                    try await writer.write(Self.line(APIError.from(error).body))
                    try await writer.write(Self.done)
                    return true
                }
                return false
            }
            if admitted.pumps.count == 1 && StreamHandOff.direct {
                // One sequence (a chat, or a single prompt): its events straight from its stream, without
                // `mergedEvents`' task and second stream, one task hand-off per token fewer.
                let pump = admitted.pumps[0]
                while let event = try? await pump.next() {
                    if try await handle(0, event) { return }
                    guard case .text = event else { break }
                }
            } else {
                for await (index, event) in admitted.mergedEvents() {
                    if try await handle(index, event) { return }
                }
            }
            if usage { try await writer.write(Self.line(shapes.usageChunk(prompt: prompt, completion: completion))) }
            try await writer.write(Self.done)
        } catch {
            admitted.cancelAll()
            throw error
        }
    }
}
