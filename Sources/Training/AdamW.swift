import Foundation

/// AdamW with torch.optim.AdamW's update rule (decoupled weight decay, bias correction),
/// over one flat parameter vector.
public struct AdamW: Codable, Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float
    /// Optimizer steps taken (torch's `step` state).
    public private(set) var step: Int = 0
    public private(set) var m: [Float]
    public private(set) var v: [Float]

    public init(parameterCount: Int, weightDecay: Float = 0) {
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: parameterCount)
        v = [Float](repeating: 0, count: parameterCount)
    }

    /// Restores a saved state (a checkpoint).
    public init(m: [Float], v: [Float], step: Int, weightDecay: Float) {
        precondition(m.count == v.count)
        self.m = m; self.v = v; self.step = step; self.weightDecay = weightDecay
    }

    /// One update at learning rate `lr`, in torch's order: p *= 1 - lr·wd; m, v moments;
    /// p -= (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + eps).
    public mutating func update(_ params: inout [Float], gradients g: [Float], lr: Float) {
        precondition(params.count == g.count && g.count == m.count)
        step += 1
        let t = Float(step)
        let bc1 = 1 - powf(beta1, t)
        let bc2Sqrt = (1 - powf(beta2, t)).squareRoot()
        let stepSize = lr / bc1
        let decay = 1 - lr * weightDecay
        let b1 = beta1, b2 = beta2, e = eps
        params.withUnsafeMutableBufferPointer { p in
            m.withUnsafeMutableBufferPointer { mp in
                v.withUnsafeMutableBufferPointer { vp in
                    g.withUnsafeBufferPointer { gp in
                        for i in 0..<p.count {
                            if weightDecay != 0 { p[i] *= decay }
                            let gi = gp[i]
                            mp[i] = b1 * mp[i] + (1 - b1) * gi
                            vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                            p[i] -= stepSize * mp[i] / (vp[i].squareRoot() / bc2Sqrt + e)
                        }
                    }
                }
            }
        }
    }
}

public enum GradientClipping {
    /// torch.nn.utils.clip_grad_norm_: scales g by min(1, maxNorm / (‖g‖ + 1e-6)).
    /// Returns the norm before clipping (what transformers logs as grad_norm).
    @discardableResult
    public static func clip(_ g: inout [Float], maxNorm: Float?) -> Float {
        var ss = 0.0
        for x in g { ss += Double(x) * Double(x) }
        let norm = Float(ss.squareRoot())
        if let maxNorm, maxNorm > 0 {
            let coef = min(1, maxNorm / (norm + 1e-6))
            if coef < 1 { for i in g.indices { g[i] *= coef } }
        }
        return norm
    }
}

/// Learning-rate schedules with transformers' names and meanings; `factor(step)` multiplies the
/// base learning rate for the optimizer step `step` (0-based), as LambdaLR applies it.
public enum LRScheduler: String, CaseIterable, Codable, Sendable {
    case constant
    case constantWithWarmup = "constant_with_warmup"
    case linear
    case cosine

    public func factor(step: Int, warmup: Int, total: Int) -> Float {
        switch self {
        case .constant:
            return 1  // `constant` ignores warmup, as transformers' get_constant_schedule does.
        case .constantWithWarmup:
            return step < warmup ? Float(step) / Float(max(1, warmup)) : 1
        case .linear:
            if step < warmup { return Float(step) / Float(max(1, warmup)) }
            return max(0, Float(total - step) / Float(max(1, total - warmup)))
        case .cosine:
            if step < warmup { return Float(step) / Float(max(1, warmup)) }
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            return Float(max(0, 0.5 * (1 + cos(Double.pi * 2 * 0.5 * progress))))
        }
    }

    /// transformers' TrainingArguments.get_warmup_steps: explicit steps win, else ceil(ratio · total).
    public static func warmupSteps(steps: Int?, ratio: Float?, total: Int) -> Int {
        if let steps, steps > 0 { return steps }
        if let ratio, ratio > 0 { return Int((Double(ratio) * Double(total)).rounded(.up)) }
        return 0
    }
}
