import Foundation
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The checks of `health` that need no daemon, with the failures forced through their inputs: a watchdog not
/// fed within its interval, free space below and near the reserve.
@Suite struct HealthChecksTests {
    @Test func aWatchdogNotFedWithinItsIntervalFails() {
        let now = ContinuousClock.now
        let stale = HealthChecks.watchdog(lastFed: (now - .seconds(31), .seconds(30)), now: now)
        #expect(stale.status == .failing && stale.message.contains("beyond"))
        let fresh = HealthChecks.watchdog(lastFed: (now - .seconds(5), .seconds(30)), now: now)
        #expect(fresh.status == .healthy && fresh.value == 5000)
        #expect(HealthChecks.watchdog(lastFed: nil).status == .healthy)
    }

    @Test func freeSpaceAgainstTheReserve() {
        let mib: Int64 = 1 << 20
        #expect(HealthChecks.disk(free: 10 * mib, reserve: 64 * mib).status == .failing)
        #expect(HealthChecks.disk(free: 100 * mib, reserve: 64 * mib).status == .degraded)
        #expect(HealthChecks.disk(free: 200 * mib, reserve: 64 * mib).status == .healthy)
        #expect(HealthChecks.disk(free: 0, reserve: 0).status == .healthy)
        #expect(HealthChecks.disk(free: nil, reserve: 64 * mib).status == .degraded)
    }

    @Test func theWorstCheckDecides() {
        let checks = [
            HealthCheck(name: "a", status: .healthy, message: ""),
            HealthCheck(name: "b", status: .degraded, message: ""),
        ]
        let result = HealthResult(
            checks: checks, version: "x", configDigest: "d", configLoadedAtMs: 0, uptimeSeconds: 0, containment: "none")
        #expect(result.status == .degraded && result.status.exitStatus == 1)
        #expect(HealthStatus.failing.exitStatus == 2 && HealthStatus.healthy.exitStatus == 0)
    }

    @Test func aJournalThatTakesNothingFails() async {
        let journal = Journal(socketPath: "/nonexistent/journal.socket")
        let check = await HealthChecks.journal(journal, timeout: .milliseconds(200))
        #expect(check.status == .failing)
    }
}

/// The metrics connection's request parsing: what each request gets, and the bound on its size.
@Suite struct MetricsRequestTests {
    func status(_ request: String, final: Bool = false) -> String? {
        MetricsRequestHandler.response(to: Array(request.utf8), final: final) { Array("body\n".utf8) }
            .map { String(decoding: $0, as: UTF8.self).components(separatedBy: "\r\n")[0] }
    }

    @Test func answersOnlyAWholeGetOfMetrics() {
        #expect(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == "HTTP/1.1 200 OK")
        #expect(status("GET /metrics?x=1 HTTP/1.0\n\n") == "HTTP/1.1 200 OK")
        #expect(status("GET /metrics HTTP/1.1\r\nHost: x\r\n") == nil)
        #expect(status("GET /metrics HTTP/1.1\r\n", final: true) == "HTTP/1.1 200 OK")
        #expect(status("GET /x HTTP/1.1\r\n\r\n") == "HTTP/1.1 404 Not Found")
        #expect(status("PUT /metrics HTTP/1.1\r\n\r\n") == "HTTP/1.1 405 Method Not Allowed")
        #expect(status("nonsense\r\n\r\n") == "HTTP/1.1 400 Bad Request")
        #expect(status("partial", final: true) == "HTTP/1.1 400 Bad Request")
        #expect(status("", final: true) == "")
        #expect(status(String(repeating: "a", count: 9000)) == "HTTP/1.1 431 Request Header Fields Too Large")
        let head = MetricsRequestHandler.response(to: Array("HEAD / HTTP/1.1\r\n\r\n".utf8), final: false) {
            Array("body\n".utf8)
        }
        #expect(head.map { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\n") } == true)
    }

    @Test func hostAndPort() {
        #expect(MetricsSettings.hostAndPort("127.0.0.1:9464")! == ("127.0.0.1", 9464))
        #expect(MetricsSettings.hostAndPort("[::1]:80")! == ("::1", 80))
        #expect(MetricsSettings.hostAndPort("host") == nil)
        #expect(MetricsSettings.hostAndPort(":80") == nil)
        #expect(MetricsSettings.hostAndPort("h:0") == nil)
    }

    @Test func labelsComeFromClosedSetsAndUsersOnlyWhenConfigured() {
        let metrics = DaemonMetrics()
        metrics.executionStarted(executor: "e", user: "alice", latency: .milliseconds(1))
        metrics.refused(.busy)
        metrics.redacted(2)
        metrics.rateLimitedRequest()
        metrics.dequeued(after: .seconds(1))
        var text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(!text.contains("alice"))
        #expect(text.contains(#"runvoyd_refusals_total{reason="busy"} 1"#))
        #expect(text.contains("runvoyd_redactions_total 2") && text.contains("runvoyd_queued_total 1"))
        metrics.configure(userLabels: true) { DaemonMetrics.Sample(configDigest: "abc") }
        metrics.executionStarted(executor: "e", user: "alice", latency: .milliseconds(1))
        text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"runvoyd_executions_by_user_total{user="alice"} 1"#))
        #expect(text.contains(#"runvoyd_config_info{digest="abc"} 1"#))
        metrics.configure(userLabels: false) { DaemonMetrics.Sample(configDigest: "def") }
        text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"digest="def""#) && !text.contains(#"digest="abc""#))
    }
}

/// The metric names in the documentation, the example alert rules and the Grafana dashboard are the ones the
/// daemon exposes.
@Suite struct MetricNamesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Every `runvoyd_…` name in `text`, without a histogram's `_bucket`, `_sum` or `_count`.
    static func names(in text: String) -> Set<String> {
        let regex = try! Regex(#"runvoyd_[a-z_]+"#)
        return Set(
            text.matches(of: regex).map { match in
                var name = String(text[match.range])
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                    name.removeLast(suffix.count)
                }
                return name
            })
    }

    @Test func everyMetricIsDocumentedAndEveryUsedNameExists() throws {
        let exposed = Set(MetricName.allCases.map(\.rawValue))
        let documented = Self.names(in: try Self.read("docs/CONFIGURATION.md"))
        #expect(exposed.subtracting(documented).isEmpty, "undocumented: \(exposed.subtracting(documented))")
        for file in [
            "docs/CONFIGURATION.md", "packaging/prometheus/runvoyd-alerts.yml",
            "packaging/prometheus/runvoyd-alerts.test.yml", "packaging/grafana/runvoyd-dashboard.json",
        ] {
            let unknown = Self.names(in: try Self.read(file)).subtracting(exposed)
            #expect(unknown.isEmpty, "\(file) names metrics runvoyd does not expose: \(unknown)")
        }
    }
}

/// The costly checks of `health` are shared: an unhealthy journal result is kept a while (a flood of `health`
/// calls while the journal is slow does not run the probe back to back), and the database check runs at most once
/// per interval whatever the journal says. (Before, an unhealthy result was never reused: every call ran both.)
@Suite struct HealthProbesTests {
    final class Runs: Sendable {
        let counts = Mutex((journal: 0, database: 0))
    }

    @Test func anUnhealthyJournalIsNotProbedOnEveryCall() async {
        let probes = HealthProbes(interval: .seconds(3600), unhealthyInterval: .seconds(3600))
        let runs = Runs()
        for _ in 0..<5 {
            let checks = await probes.probe(
                journal: {
                    runs.counts.withLock { $0.journal += 1 }
                    return HealthCheck(name: "journal", status: .failing, message: "slow")
                },
                database: {
                    runs.counts.withLock { $0.database += 1 }
                    return HealthCheck(name: "database", status: .healthy, message: "ok")
                })
            #expect(checks.map(\.name) == ["journal", "database"])
            #expect(checks[0].status == .failing)
        }
        #expect(runs.counts.withLock { $0.journal } == 1)
        #expect(runs.counts.withLock { $0.database } == 1)
    }

    @Test func theDatabaseIsCheckedApartFromTheJournal() async {
        // An unhealthy journal result is not kept at all here: the journal is probed on every call, the
        // database still once.
        let probes = HealthProbes(interval: .seconds(3600), unhealthyInterval: .zero)
        let runs = Runs()
        for _ in 0..<3 {
            _ = await probes.probe(
                journal: {
                    runs.counts.withLock { $0.journal += 1 }
                    return HealthCheck(name: "journal", status: .degraded, message: "slow")
                },
                database: {
                    runs.counts.withLock { $0.database += 1 }
                    return HealthCheck(name: "database", status: .failing, message: "bad")
                })
        }
        #expect(runs.counts.withLock { $0.journal } == 3)
        #expect(runs.counts.withLock { $0.database } == 1)
    }
}
