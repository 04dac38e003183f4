import RunvoyDaemon

// What the metrics cost one execution: the hooks an `exec -- true` goes through (started, finished, two history
// writes, three audit writes), called `count` times in a row, and one exposition. Prints nanoseconds per
// execution; scripts/bench-metrics sets that against `runvoyctl exec -- true` measured in the same run.
let count = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 200_000
let metrics = DaemonMetrics()
metrics.configure(userLabels: false) {
    DaemonMetrics.Sample(running: 1, connections: 1, configDigest: "0123456789abcdef")
}
let clock = ContinuousClock()
var best = Duration.seconds(1000)
for _ in 0..<5 {
    let took = clock.measure {
        for _ in 0..<count {
            metrics.executionStarted(executor: "default", user: "nobody", latency: .microseconds(700))
            metrics.storeWrite(.microseconds(40))
            metrics.auditWrite(.microseconds(30), failed: false)
            metrics.auditWrite(.microseconds(30), failed: false)
            metrics.executionFinished(
                executor: "default", outcome: "succeeded", durationUsec: 900, stdout: 0, stderr: 0)
            metrics.storeWrite(.microseconds(40))
            metrics.auditWrite(.microseconds(30), failed: false)
        }
    }
    best = min(best, took)
}
func nanoseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
}
let exposition = clock.measure { for _ in 0..<1000 { _ = metrics.exposition() } }
print("hooks_ns_per_execution \(nanoseconds(best) / Double(count))")
print("exposition_us \(nanoseconds(exposition) / 1000 / 1000) bytes \(metrics.exposition().count)")
