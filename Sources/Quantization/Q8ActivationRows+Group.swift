import CKernels
import Foundation
import Kernels

extension Q8ActivationRows {
    /// Whether `forwardRowsGroup` groups at all: `LORA_DECODE_GROUPS=off` (or `0`) turns it off (one region per
    /// weight, as before) for A/B figures; the bits are the same either way. Tests switch it. Parsed by
    /// `EnvironmentSwitch.decodeGroups` (the CLI refuses a value it does not know).
    nonisolated(unsafe) public static var groupsRegions = EnvironmentSwitch.decodeGroups.value

    /// The format of `w`'s integer-dot kernel when its decode rows take int8 activations now, else nil.
    @inline(__always)
    static func int8Format(_ w: LinearWeight) -> Format? {
        if let q = w as? Q4_1Weight { return q.decodesWithInt8Activations ? .q4_1 : nil }
        if let q = w as? Q8_0Weight { return q.decodesWithInt8Activations ? .q8_0 : nil }
        return nil
    }

    /// The block bytes of a Q4_1 or Q8_0 weight (`int8Format` said which).
    @inline(__always)
    static func blocks(_ w: LinearWeight) -> [UInt8] { (w as? Q4_1Weight)?.blocks ?? (w as! Q8_0Weight).blocks }

    /// Decode rows through two or three weights sharing their input X[T, K] (a layer's q/k/v, or gate/up):
    /// Y_a = X · W_aᵀ, Y_b = X · W_bᵀ (and Y_c), with X quantized once and every part's weight-row chunks
    /// handed out in one pool region (`ck_q8_rows_group`) instead of one region per weight. Each chunk is the
    /// kernel call `run` makes for that weight alone, so the outputs are the bits of separate `forwardRows`
    /// calls. Returns false, doing nothing, unless every weight is a Q4_1 / Q8_0 weight whose decode rows
    /// take int8 activations under the current setting (the caller then multiplies weight by weight).
    public static func forwardRowsGroup(_ a: LinearWeight, into ya: UnsafeMutablePointer<Float>,
                                        _ b: LinearWeight, into yb: UnsafeMutablePointer<Float>,
                                        _ c: LinearWeight?, into yc: UnsafeMutablePointer<Float>?,
                                        x: UnsafePointer<Float>, rows T: Int) -> Bool {
        let k = a.inFeatures
        guard groupsRegions, T > 0, k % 32 == 0, b.inFeatures == k, let fa = int8Format(a), let fb = int8Format(b) else { return false }
        var fc = Format.q4_1
        if let c {
            guard c.inFeatures == k, yc != nil, let f = int8Format(c) else { return false }
            fc = f
        }
        let bpr = k / 32
        let (xq, xd, xs) = quantize(x, rows: T, k: k)
        let blocksC = c.map(Self.blocks) ?? []
        Self.blocks(a).withUnsafeBytes { ra in
            Self.blocks(b).withUnsafeBytes { rb in
                blocksC.withUnsafeBytes { rc in
                    // A part's chunks as its own `run` would cut them (64 rows at least, 4 per thread).
                    func part(_ f: Format, _ raw: UnsafeRawBufferPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>?) -> (ck_q8_rows_job, Int) {
                        let chunks = Parallel.chunkCount(n, minChunk: 64, chunksPerThread: 4)
                        return (ck_q8_rows_job(kernel: kernel(f), blocks: raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                               blocksPerRow: bpr, n: n, per: (n + chunks - 1) / chunks,
                                               xq: xq, xd: xd, xs: xs, T: T, y: y, ldy: n, accumulate: 0), chunks)
                    }
                    let (ja, ca) = part(fa, ra, a.outFeatures, ya)
                    let (jb, cb) = part(fb, rb, b.outFeatures, yb)
                    var group = ck_q8_rows_group()
                    if let c {
                        let (jc, cc) = part(fc, rc, c.outFeatures, yc)
                        group.parts = 3
                        group.first = (0, ca, ca + cb, ca + cb + cc)
                        group.job = (ja, jb, jc)
                    } else {
                        group.parts = 2
                        group.first = (0, ca, ca + cb, ca + cb)
                        group.job = (ja, jb, ck_q8_rows_job())
                    }
                    let total = group.first.3, parts = group.parts
                    withUnsafeMutablePointer(to: &group) { g in
                        let raw = UnsafeMutableRawPointer(g)
                        if total <= parts {   // one chunk per part (one thread): on this thread
                            for i in 0..<total { ck_q8_rows_group_task(raw, i) }
                        } else if !Parallel.runTasks(total, ck_q8_rows_group_task, raw) {
                            // The pool is busy (a nested call, another budget's region): `forEachChunk`'s other way.
                            Parallel.forEachChunk(total) { r in for i in r { ck_q8_rows_group_task(raw, i) } }
                        }
                    }
                }
            }
        }
        return true
    }
}
