import Foundation
import Hummingbird
import Metrics
import Prometheus

/// The Prometheus registry `/metrics` shows, and the factory the HTTP metrics are made with. The
/// process bootstraps swift-metrics with the same factory (`bootstrapSystem`) so the engine's
/// metrics land in it too.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    /// Buckets for latencies measured in seconds (time to first token, inter-token latency, adapter
    /// loads, request durations): 1 ms to 60 s.
    public static let secondsBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// Buckets for `lora_adapter_acquire_seconds`: 1 us to 10 s.
    public static let acquireBuckets: [Double] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 0.001, 0.0025, 0.005,
                                                  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.secondsBuckets.map { .nanoseconds(Int64($0 * 1e9)) }
        // Recorders named *_seconds hold seconds as plain values.
        for name in ["lora_time_to_first_token_seconds", "lora_inter_token_latency_seconds", "lora_adapter_cache_load_seconds",
                     "lora_job_step_seconds"] {
            factory.valueHistogramBuckets[name] = Self.secondsBuckets
        }
        // A cached adapter's acquire takes microseconds; a load from the registry up to seconds.
        factory.durationHistogramBuckets["lora_adapter_acquire_seconds"] = Self.acquireBuckets.map { .nanoseconds(Int64($0 * 1e9)) }
        // A scheduler step's phases (`lora_step_phase_seconds{phase}`) take microseconds to tens of milliseconds.
        factory.durationHistogramBuckets["lora_step_phase_seconds"] = Self.acquireBuckets.map { .nanoseconds(Int64($0 * 1e9)) }
        // Rows in a decode step (the engine's batch size).
        factory.valueHistogramBuckets["lora_batch_rows"] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
        self.factory = factory
    }

    /// Makes this registry the process's swift-metrics backend (once per process).
    public func bootstrapSystem() {
        MetricsSystem.bootstrap(factory)
    }

    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}
