import Dispatch
import Foundation
import Model
import Service

/// Runs a blocking call (the backend may query the registry or wait on a lock) off Swift's
/// cooperative pool, so a slow `submit` never stalls other requests' tasks.
func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// The request's client went away and its sequences were cancelled: nobody reads the answer.
struct ClientGone: Error {}

/// One submitted sequence's events, read strictly in turn: first its admission (in the handler,
/// before the response head is chosen), then the rest (in the response body).
final class EventPump: @unchecked Sendable {
    let sequence: ServingSequence
    private var iterator: AsyncStream<ServingEvent>.Iterator
    private let lock = NSLock()
    private var _cancelled = false
    /// Cancelled by this server (its client went away, or another prompt of the call was refused).
    var cancelled: Bool { lock.lock(); defer { lock.unlock() }; return _cancelled }

    func cancel() {
        lock.lock(); _cancelled = true; lock.unlock()
        sequence.cancel()
    }

    init(_ sequence: ServingSequence) {
        self.sequence = sequence
        iterator = sequence.events.makeAsyncIterator()
    }

    /// The next event; a stream that ends without `finished` or `failed` was cancelled, or is the engine's error.
    func next() async throws -> ServingEvent {
        if let e = await iterator.next() { return e }
        if cancelled { throw ClientGone() }
        return .failed(.internalError("the request's event stream ended without a result"))
    }

    /// Waits for admission: what serves the request and its prompt size, or the error refusing it.
    func admission() async throws -> (ServedModel, Int) {
        switch try await next() {
        case let .admitted(model, promptTokens): return (model, promptTokens)
        case let .failed(error): throw error
        case let other: throw ServingError.internalError("expected admission first, got \(other)")
        }
    }

    /// Reads events to the end: the text and how it finished.
    func collect(served: ServedModel) async throws -> ChoiceResult {
        var text = ""
        while true {
            switch try await next() {
            case let .text(piece): text += piece
            case let .finished(reason, prompt, completion):
                return ChoiceResult(served: served, text: text, finishReason: reason, promptTokens: prompt, completionTokens: completion)
            case let .failed(error): throw error
            case .admitted: throw ServingError.internalError("a second admission for one request")
            }
        }
    }
}

/// The submitted, admitted sequences of one call.
struct AdmittedCall: Sendable {
    let call: GenerationCall
    let pumps: [EventPump]
    let served: [ServedModel]
    let shapes: ResponseShapes

    func cancelAll() { pumps.forEach { $0.cancel() } }

    /// Submits every request of the call and waits for each admission. If any is refused, the
    /// ones already queued are cancelled and that refusal is thrown.
    static func admit(_ call: GenerationCall, backend: ServingBackend) async throws -> AdmittedCall {
        var pumps: [EventPump] = []
        do {
            for request in call.requests {
                let sequence = try await offload { try backend.submit(request) }
                pumps.append(EventPump(sequence))
            }
            var served: [ServedModel] = []
            for pump in pumps { served.append(try await pump.admission().0) }
            let shapes = ResponseShapes(kind: call.kind, model: served.first?.id ?? call.model)
            return AdmittedCall(call: call, pumps: pumps, served: served, shapes: shapes)
        } catch {
            pumps.forEach { $0.cancel() }
            throw error
        }
    }

    /// Waits for every sequence to finish (non-streamed answers).
    func results() async throws -> [ChoiceResult] {
        do {
            var out: [ChoiceResult] = []
            for (pump, model) in zip(pumps, served) { out.append(try await pump.collect(served: model)) }
            return out
        } catch {
            cancelAll()
            throw error
        }
    }

    /// Every sequence's remaining events, merged, tagged with the sequence's index (its choice index).
    func mergedEvents() -> AsyncStream<(Int, ServingEvent)> {
        let (stream, continuation) = AsyncStream<(Int, ServingEvent)>.makeStream()
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for (i, pump) in pumps.enumerated() {
                    group.addTask {
                        while true {
                            guard let e = try? await pump.next() else { return }
                            continuation.yield((i, e))
                            if case .text = e { continue }
                            return
                        }
                    }
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
