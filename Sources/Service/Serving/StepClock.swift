import Foundation
import Metrics

/// The scheduler's own clock: where each step's time goes, by phase. Every step adds its phases'
/// nanoseconds to running totals (read by `ServingEngine.stepTimes`, e.g. by tests and benchmarks
/// as the difference of two readings) and records them in `lora_step_phase_seconds{phase}`
/// (Prometheus' `_sum` / `_count` give a phase's mean per step over any interval).
public struct StepTimes: Sendable, Equatable {
    public enum Phase: String, CaseIterable, Sendable {
        /// Retiring cancelled sequences, admitting queued ones, choosing the step's rows.
        case plan
        /// The decoder blocks over every row (`forwardBatch`).
        case forward
        /// The output head over the rows that choose a token (`logitsRows`).
        case head
        /// Choosing tokens from the logits (the sampler: argmax when greedy).
        case sample
        /// Incremental detokenizing and stop-string matching of the chosen tokens.
        case text
        /// Handing the step's text to the sequences' streams (what wakes the HTTP side), together once
        /// every row chose its token.
        case emit
        /// Retiring finished sequences, gauges, waking waiters.
        case finish
    }

    /// Steps that computed rows.
    public var steps = 0
    /// Rows computed over those steps (prompt and decode rows).
    public var rows = 0
    /// Nanoseconds per phase, indexed by `Phase.allCases` order.
    public var nanoseconds = [UInt64](repeating: 0, count: Phase.allCases.count)

    public init() {}

    public subscript(_ phase: Phase) -> UInt64 { nanoseconds[Phase.allCases.firstIndex(of: phase)!] }

    /// Everything the step did besides the model (plan, sample, text, emit, finish).
    public var outsideModel: UInt64 { self[.plan] + self[.sample] + self[.text] + self[.emit] + self[.finish] }

    /// What happened between an earlier reading and this one.
    public func since(_ earlier: StepTimes) -> StepTimes {
        var d = StepTimes()
        d.steps = steps - earlier.steps
        d.rows = rows - earlier.rows
        d.nanoseconds = zip(nanoseconds, earlier.nanoseconds).map { $0 &- $1 }
        return d
    }
}

/// One step's phase times, taken on the scheduler thread and published once at the step's end.
struct StepClock {
    private var last: UInt64
    /// Nanoseconds per phase (lane `index(phase)`; lane 7 unused): inline, nothing allocated per step.
    private(set) var phases = SIMD8<UInt64>()

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    init() { last = Self.now() }

    /// Charges the time since the previous mark to `phase`.
    @inline(__always)
    mutating func mark(_ phase: StepTimes.Phase) {
        let t = Self.now()
        phases[Self.index(phase)] &+= t &- last
        last = t
    }

    @inline(__always)
    static func index(_ phase: StepTimes.Phase) -> Int {
        switch phase {
        case .plan: return 0
        case .forward: return 1
        case .head: return 2
        case .sample: return 3
        case .text: return 4
        case .emit: return 5
        case .finish: return 6
        }
    }
}

/// The engine's step-phase metrics, one timer per phase.
struct StepPhaseTimers {
    let timers = StepTimes.Phase.allCases.map { Metrics.Timer(label: "lora_step_phase_seconds", dimensions: [("phase", $0.rawValue)]) }

    func record(_ clock: StepClock) {
        for (i, timer) in timers.enumerated() { timer.recordNanoseconds(Int64(clock.phases[i])) }
    }
}
