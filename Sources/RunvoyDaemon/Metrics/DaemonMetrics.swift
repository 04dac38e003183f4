import CoreMetrics
import Prometheus
import RunvoyKit

/// The daemon's metrics, recorded through swift-metrics' types into one Prometheus registry that the exposition
/// (`MetricsServer`, `MetricsTextfile`) renders.
///
/// Instrumented code calls one method here per event, so each hook is one line. Labels come only from closed sets
/// (outcomes, error codes, streams) or from the configuration (executor names, and user names only when
/// `metrics.user_labels` is on): never an execution id or anything a caller chooses. The names are documented
/// in docs/CONFIGURATION.md ("Metrics").
///
/// One registry per process, like the journal writer (`Journal.shared`): the hooks sit deep in the execution path
/// and need nothing passed down to them.
public final class DaemonMetrics: Sendable {
    static let shared = DaemonMetrics()

    /// What the exposition samples at each scrape: state that exists elsewhere and costs nothing to keep here.
    public struct Sample: Sendable {
        var running = 0
        var queued = 0
        var connections = 0
        var configDigest = ""
        var configLoadedAtSeconds = 0.0

        public init(
            running: Int = 0, queued: Int = 0, connections: Int = 0, configDigest: String = "",
            configLoadedAtSeconds: Double = 0
        ) {
            self.running = running
            self.queued = queued
            self.connections = connections
            self.configDigest = configDigest
            self.configLoadedAtSeconds = configLoadedAtSeconds
        }
    }

    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let started = ContinuousClock.now
    private let labelled = Mutex<[String: AnyObject]>([:])
    private let sampler = Mutex<(@Sendable () -> Sample)?>(nil)
    private let configInfo = Mutex<(digest: String, gauge: Prometheus.Gauge)?>(nil)
    /// Whether executions are also counted by user (`metrics.user_labels`).
    private let userLabels = Mutex(false)

    private let auditFailures: CoreMetrics.Counter
    private let auditLatency: CoreMetrics.Timer
    private let storeLatency: CoreMetrics.Timer
    private let execLatency: CoreMetrics.Timer
    private let queueWait: CoreMetrics.Timer
    private let redactions: CoreMetrics.Counter
    private let rateLimited: CoreMetrics.Counter
    private let queuedTotal: CoreMetrics.Counter
    private let gauges: [MetricName: Prometheus.Gauge]

    public init() {
        factory = PrometheusMetricsFactory(registry: registry)
        let registry = registry
        auditFailures = Self.counter(.auditWriteFailures, [], registry, factory)
        redactions = Self.counter(.redactions, [], registry, factory)
        rateLimited = Self.counter(.rateLimited, [], registry, factory)
        queuedTotal = Self.counter(.queued, [], registry, factory)
        auditLatency = Self.timer(.auditWriteSeconds, [], registry, factory)
        storeLatency = Self.timer(.storeWriteSeconds, [], registry, factory)
        execLatency = Self.timer(.execLatencySeconds, [], registry, factory)
        queueWait = Self.timer(.queueWaitSeconds, [], registry, factory)
        var gauges: [MetricName: Prometheus.Gauge] = [:]
        for name in [MetricName.running, .queuedNow, .connections, .uptime, .configLoaded] {
            gauges[name] = registry.makeGauge(name: name.rawValue, help: name.help)
        }
        registry.makeGauge(
            name: MetricName.buildInfo.rawValue, labels: [("version", RunvoyProtocol.softwareVersion)],
            help: MetricName.buildInfo.help
        ).set(to: 1)
        self.gauges = gauges
    }

    /// How long the daemon has run.
    var uptime: Duration { .now - started }

    // MARK: - Hooks

    /// An execution's process started, `latency` after its request arrived.
    public func executionStarted(executor: String, user: String, latency: Duration) {
        labelledCounter(.executionsStarted, [("executor", executor)]).increment()
        if userLabels.withLock({ $0 }) { labelledCounter(.executionsByUser, [("user", user)]).increment() }
        execLatency.recordNanoseconds(latency.nanoseconds)
    }

    /// An execution ended: how (`ExecutionStatus`' raw value), after how long, and what it printed.
    public func executionFinished(executor: String, outcome: String, durationUsec: Int64, stdout: Int64, stderr: Int64)
    {
        labelledCounter(.executionsFinished, [("executor", executor), ("outcome", outcome)]).increment()
        labelledTimer(.executionSeconds, [("executor", executor)]).recordMicroseconds(durationUsec)
        if stdout > 0 { labelledCounter(.streamedBytes, [("stream", "stdout")]).increment(by: stdout) }
        if stderr > 0 { labelledCounter(.streamedBytes, [("stream", "stderr")]).increment(by: stderr) }
    }

    /// A request or a connection was refused; `reason` is the wire error code (a closed set).
    func refused(_ code: RunvoyError.Code) {
        labelledCounter(.refusals, [("reason", code.rawValue)]).increment()
    }

    /// An audit record waited `latency` for the journal; `failed` when it was not written.
    public func auditWrite(_ latency: Duration, failed: Bool) {
        auditLatency.recordNanoseconds(latency.nanoseconds)
        if failed { auditFailures.increment() }
    }

    /// A write to the execution history took `latency`.
    public func storeWrite(_ latency: Duration) { storeLatency.recordNanoseconds(latency.nanoseconds) }

    /// Secret values taken out of an execution's output.
    func redacted(_ count: Int) { if count > 0 { redactions.increment(by: count) } }

    /// A request refused by a rate limit.
    func rateLimitedRequest() { rateLimited.increment() }

    /// An execution that waited in the admission queue for `wait` and now starts.
    func dequeued(after wait: Duration) {
        queuedTotal.increment()
        queueWait.recordNanoseconds(wait.nanoseconds)
    }

    // MARK: - Exposition

    /// Sets what each scrape samples, and whether executions are counted by user.
    public func configure(userLabels: Bool, sampler: @escaping @Sendable () -> Sample) {
        self.userLabels.withLock { $0 = userLabels }
        self.sampler.withLock { $0 = sampler }
    }

    /// The exposition in Prometheus' text format (version 0.0.4), with the gauges sampled now.
    public func exposition() -> [UInt8] {
        let sample = sampler.withLock { $0 }?() ?? Sample()
        gauges[.running]?.set(to: Double(sample.running))
        gauges[.queuedNow]?.set(to: Double(sample.queued))
        gauges[.connections]?.set(to: Double(sample.connections))
        gauges[.uptime]?.set(to: Double(uptime.nanoseconds) / 1e9)
        gauges[.configLoaded]?.set(to: sample.configLoadedAtSeconds)
        if !sample.configDigest.isEmpty { setConfigDigest(sample.configDigest) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 << 10)
        registry.emit(into: &bytes)
        return bytes
    }

    /// `runvoyd_config_info{digest="…"} 1`: one series, for the digest in force.
    private func setConfigDigest(_ digest: String) {
        configInfo.withLock { current in
            guard current?.digest != digest else { return }
            if let old = current { registry.unregisterGauge(old.gauge) }
            let gauge = registry.makeGauge(
                name: MetricName.configInfo.rawValue, labels: [("digest", digest)], help: MetricName.configInfo.help)
            gauge.set(to: 1)
            current = (digest, gauge)
        }
    }

    // MARK: - Making metrics

    private func labelledCounter(_ name: MetricName, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        let key = Self.key(name, labels)
        return labelled.withLock { cache in
            if let counter = cache[key] as? CoreMetrics.Counter { return counter }
            let counter = Self.counter(name, labels, registry, factory)
            cache[key] = counter
            return counter
        }
    }

    private func labelledTimer(_ name: MetricName, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        let key = Self.key(name, labels)
        return labelled.withLock { cache in
            if let timer = cache[key] as? CoreMetrics.Timer { return timer }
            let timer = Self.timer(name, labels, registry, factory)
            cache[key] = timer
            return timer
        }
    }

    private static func key(_ name: MetricName, _ labels: [(String, String)]) -> String {
        labels.reduce(name.rawValue) { $0 + "\u{0}" + $1.1 }
    }

    private static func counter(
        _ name: MetricName, _ labels: [(String, String)], _ registry: PrometheusCollectorRegistry,
        _ factory: PrometheusMetricsFactory
    ) -> CoreMetrics.Counter {
        let handler = registry.makeCounter(name: name.rawValue, labels: labels, help: name.help)
        return CoreMetrics.Counter(label: name.rawValue, dimensions: labels, handler: handler, factory: factory)
    }

    private static func timer(
        _ name: MetricName, _ labels: [(String, String)], _ registry: PrometheusCollectorRegistry,
        _ factory: PrometheusMetricsFactory
    ) -> CoreMetrics.Timer {
        let handler = registry.makeDurationHistogram(
            name: name.rawValue, labels: labels, buckets: name.buckets, help: name.help)
        return CoreMetrics.Timer(label: name.rawValue, dimensions: labels, handler: handler, factory: factory)
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating far beyond any duration measured here).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ attoseconds / 1_000_000_000
    }
}
