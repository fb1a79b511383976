import Diagnostics
import Foundation
import Model

/// A run's checkpoint: `OUTPUT/checkpoint-STEP[-MICRO]/` holding the adapter in PEFT's format,
/// the optimizer's moments (and, between micro-batches of one accumulation, the gradients
/// accumulated so far) in `trainer_state.safetensors`, and `trainer_state.json` with the run's
/// position and settings. Written to a temporary directory and renamed, so a checkpoint is
/// either whole or absent.
public enum Checkpoint {
    public static let stateFile = "trainer_state.json"
    public static let tensorsFile = "trainer_state.safetensors"

    struct State: Codable {
        var format = 1
        var position: Trainer.Position
        var settings: TrainingSettings
        var optimizerStep: Int
        /// sha256-like fingerprint of the training records' tokens, so a resume on other data is refused.
        var dataFingerprint: String
    }

    static func name(_ p: Trainer.Position) -> String {
        p.microDone > 0 ? "checkpoint-\(p.step)-\(p.microDone)" : "checkpoint-\(p.step)"
    }

    /// Saves the trainer's state under `output`, then keeps only the newest `keep` checkpoints.
    @discardableResult
    public static func save(_ t: Trainer, base: PEFTAdapter.BaseIdentity, output: URL, keep: Int?) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        let final = output.appendingPathComponent(name(t.position))
        let tmp = output.appendingPathComponent(".\(name(t.position)).tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        try PEFTAdapter.save(t.engine.adapter, base: base, to: tmp)
        var tensors = [
            SafetensorsWriter.Tensor(name: "adamw.m", shape: [t.optimizer.m.count], floats: t.optimizer.m),
            SafetensorsWriter.Tensor(name: "adamw.v", shape: [t.optimizer.v.count], floats: t.optimizer.v),
        ]
        if t.position.microDone > 0 {
            tensors.append(SafetensorsWriter.Tensor(name: "gradients", shape: [t.engine.gradients.count], floats: t.engine.gradients))
        }
        try SafetensorsWriter.write(tensors, to: tmp.appendingPathComponent(tensorsFile))
        let state = State(position: t.position, settings: t.settings, optimizerStep: t.optimizer.step,
                          dataFingerprint: t.dataFingerprint)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(state).write(to: tmp.appendingPathComponent(stateFile))
        try? fm.removeItem(at: final)
        try fm.moveItem(at: tmp, to: final)
        if let keep, keep > 0 {
            for old in try list(output).dropLast(keep) { try? fm.removeItem(at: old) }
        }
        return final
    }

    /// Removes the temporary directories (`.checkpoint-*.tmp-PID`) that a process killed while saving
    /// left behind, when that process is gone (or is this one); returns what was removed.
    @discardableResult
    public static func removeStaleTemporaries(_ output: URL) -> [URL] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: output.path) else { return [] }
        var removed: [URL] = []
        for n in names where n.hasPrefix(".checkpoint-") {
            guard let r = n.range(of: ".tmp-", options: .backwards), let pid = Int32(n[r.upperBound...]) else { continue }
            // kill(pid, 0) fails with ESRCH when no such process exists.
            guard pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH) else { continue }
            let url = output.appendingPathComponent(n)
            if (try? fm.removeItem(at: url)) != nil { removed.append(url) }
        }
        return removed
    }

    /// Restores the newest checkpoint under `output` that restores cleanly, falling back to older ones
    /// when a newer one is unreadable (a torn write, a corrupt file). A checkpoint written with other
    /// settings or data is refused, not skipped. Returns the checkpoint used and the ones skipped.
    public static func restoreNewest(_ t: Trainer, output: URL) throws -> (used: URL, skipped: [(URL, Error)]) {
        var skipped: [(URL, Error)] = []
        for dir in try list(output).reversed() {
            do {
                try restore(t, from: dir)
                return (dir, skipped)
            } catch let e as TrainingError {
                if case .invalidConfig = e { throw e }
                skipped.append((dir, e))
            } catch {
                skipped.append((dir, error))
            }
        }
        let why = skipped.map { "\($0.0.lastPathComponent): \($0.1)" }.joined(separator: "; ")
        throw TrainingError.invalidConfig(field: "resume", reason: skipped.isEmpty ? "no checkpoint under \(output.path)"
            : "no readable checkpoint under \(output.path) (\(why))")
    }

    /// Checkpoint directories under `output`, oldest first.
    public static func list(_ output: URL) throws -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: output.path) else { return [] }
        func key(_ n: String) -> (Int, Int)? {
            guard n.hasPrefix("checkpoint-") else { return nil }
            let parts = n.dropFirst("checkpoint-".count).split(separator: "-").map { Int($0) }
            guard let s = parts.first ?? nil else { return nil }
            return (s, parts.count > 1 ? (parts[1] ?? 0) : 0)
        }
        return names.compactMap { n in key(n).map { (n, $0) } }
            .sorted { $0.1 < $1.1 }
            .map { output.appendingPathComponent($0.0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent(stateFile).path) }
    }

    /// Restores adapter, optimizer, accumulated gradients and position into a trainer built with
    /// the same settings and data; anything else is refused naming what differs.
    public static func restore(_ t: Trainer, from dir: URL) throws {
        let statePath = dir.appendingPathComponent(stateFile)
        guard let data = FileManager.default.contents(atPath: statePath.path) else {
            throw TrainingError.invalidAdapter(path: dir.path, reason: "not a checkpoint (no \(stateFile))")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: data) } catch {
            throw TrainingError.invalidAdapter(path: statePath.path, reason: "unreadable: \(ErrorText.describe(error, decoding: data))")
        }
        guard state.settings == t.settings else {
            throw TrainingError.invalidConfig(field: "resume", reason: "\(dir.path) was written with other settings; resume with the same flags")
        }
        guard state.dataFingerprint == t.dataFingerprint else {
            throw TrainingError.invalidConfig(field: "resume", reason: "\(dir.path) was trained on other data")
        }
        let adapter = try PEFTAdapter.load(from: dir, base: t.engine.model.config).adapter
        guard adapter.parameters.count == t.engine.adapter.parameters.count else {
            throw TrainingError.invalidAdapter(path: dir.path, reason: "adapter shape differs from this run's")
        }
        t.engine.adapter.parameters = adapter.parameters
        let file = try SafetensorsFile(dir.appendingPathComponent(tensorsFile))
        let m = try file.floats("adamw.m"), v = try file.floats("adamw.v")
        guard m.count == adapter.parameters.count, v.count == m.count else {
            throw TrainingError.invalidAdapter(path: file.path, reason: "optimizer state has \(m.count) values, adapter \(adapter.parameters.count)")
        }
        t.optimizer = AdamW(m: m, v: v, step: state.optimizerStep, weightDecay: t.settings.weightDecay)
        if state.position.microDone > 0 {
            t.engine.gradients = try file.floats("gradients")
        } else {
            t.engine.zeroGradients()
        }
        t.position = state.position
    }
}
