import Foundation
import Kernels
import Model

/// Merging an adapter into a dense base: W[N, K] += scaling · B[N, R] · A[R, K] for every
/// adapted layer (PEFT's `merge_and_unload` on an unquantized base). The base must be held in
/// fp32 (`--quant none`): merging into 4-bit blocks would re-quantize them, which PEFT does for a
/// 4-bit layer but this code does not.
public enum LoRAMerge {
    public static func merge(_ adapter: LoRAAdapter, into model: inout LoadedModel) throws {
        for p in adapter.pairs {
            guard p.layer < model.weights.layers.count else {
                throw ModelError.invalidArgument("adapter layer \(p.layer) does not exist in \(model.sourcePath.path)")
            }
            let layer = model.weights.layers[p.layer]
            let current: LinearWeight
            switch p.module {
            case .q: current = layer.q
            case .k: current = layer.k
            case .v: current = layer.v
            case .o: current = layer.o
            case .gate: current = layer.gate
            case .up: current = layer.up
            case .down: current = layer.down
            }
            guard let dense = current as? DenseWeight else {
                throw ModelError.invalidArgument("\(LoRAConfig.modulePath(layer: p.layer, module: p.module)) is not held in fp32; load the base with --quant none to merge")
            }
            guard dense.outFeatures == p.outFeatures, dense.inFeatures == p.inFeatures else {
                throw ModelError.wrongShape(path: model.sourcePath.path, name: LoRAConfig.modulePath(layer: p.layer, module: p.module),
                                            expected: [p.outFeatures, p.inFeatures], actual: [dense.outFeatures, dense.inFeatures])
            }
            var w = dense.data
            adapter.parameters.withUnsafeBufferPointer { params in
                w.withUnsafeMutableBufferPointer { c in
                    // C[N, K] = scaling · B[N, R] · A[R, K] + 1 · W.
                    BLAS.sgemm(m: p.outFeatures, n: p.inFeatures, k: p.rank, alpha: p.scaling,
                               a: params.baseAddress! + p.bOffset, b: params.baseAddress! + p.aOffset,
                               beta: 1, c: c.baseAddress!)
                }
            }
            let merged = DenseWeight(outFeatures: p.outFeatures, inFeatures: p.inFeatures, data: w)
            switch p.module {
            case .q: model.weights.layers[p.layer].q = merged
            case .k: model.weights.layers[p.layer].k = merged
            case .v: model.weights.layers[p.layer].v = merged
            case .o: model.weights.layers[p.layer].o = merged
            case .gate: model.weights.layers[p.layer].gate = merged
            case .up: model.weights.layers[p.layer].up = merged
            case .down: model.weights.layers[p.layer].down = merged
            }
        }
    }
}
