import Crypto
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The checks of `health`, one function each. Each says what it found in words a person can act on, and whether
/// that is healthy, degraded (it serves, but needs attention) or failing (requests are refused, or will be).
/// Paths and system error text go in `detail`, which only administrators are sent (`HealthHandler`).
enum HealthChecks {
    /// Above this, a journal write is slow enough to say so.
    static let slowJournalWrite = Duration.milliseconds(250)

    /// Writes one debug-priority record (no `MESSAGE_ID`) and times it: a journal that does not take it within
    /// `timeout` fails the check, since fail-closed audit then refuses every execution.
    static func journal(_ journal: Journal, timeout: Duration) async -> HealthCheck {
        let fields = [
            ("MESSAGE", "runvoyd health check: journal write probe"), ("PRIORITY", "7"),
            ("SYSLOG_IDENTIFIER", "runvoyd"),
        ]
        let began = ContinuousClock.now
        do throws(JournalError) {
            try await journal.send(fields, timeout: timeout)
        } catch {
            return HealthCheck(
                name: "journal", status: .failing,
                message: "the journal did not take a record within \(timeout): executions are refused",
                detail: "\(error)")
        }
        let took = ContinuousClock.now - began
        let milliseconds = Double(took.nanoseconds) / 1e6
        let slow = took > slowJournalWrite
        return HealthCheck(
            name: "journal", status: slow ? .degraded : .healthy,
            message: slow ? "the journal is slow: a write took \(format(milliseconds)) ms" : "accepts writes",
            value: milliseconds, unit: "ms")
    }

    /// `PRAGMA quick_check` of the history database.
    static func database(_ store: ExecutionStore) -> HealthCheck {
        let began = ContinuousClock.now
        let result: [String]
        do throws(StoreError) {
            result = try store.quickCheck()
        } catch {
            return HealthCheck(
                name: "database", status: .failing, message: "cannot check the history", detail: "\(error)")
        }
        let milliseconds = Double((ContinuousClock.now - began).nanoseconds) / 1e6
        guard result == ["ok"] else {
            return HealthCheck(
                name: "database", status: .failing, message: "quick check failed",
                detail: result.prefix(3).joined(separator: "; "))
        }
        return HealthCheck(
            name: "database", status: .healthy, message: "quick check ok", value: milliseconds, unit: "ms")
    }

    /// Free space under the state directory against `history.min_free_bytes`: below it executions are refused;
    /// below twice it, they soon will be.
    static func disk(free: Int64?, reserve: Int64) -> HealthCheck {
        guard let free else {
            return HealthCheck(name: "disk", status: .degraded, message: "cannot tell the free space (statvfs failed)")
        }
        let words = "\(free >> 20) MiB free, reserve \(reserve >> 20) MiB (history.min_free_bytes)"
        let status: HealthStatus = free < reserve ? .failing : free < reserve * 2 ? .degraded : .healthy
        let message =
            switch status {
            case .failing: "below the reserve, new executions are refused: \(words)"
            case .degraded: "nearly at the reserve: \(words)"
            case .healthy: words
            }
        return HealthCheck(name: "disk", status: status, message: message, value: Double(free), unit: "bytes")
    }

    /// The master key is loaded (the secrets store holds it), and its source still holds the same key: without
    /// the file, the next start would make a new key and every stored secret would be lost.
    static func masterKey(_ secrets: SecretStore, config: DaemonConfig) -> HealthCheck {
        let path = MasterKey.source(config)
        guard access(path, F_OK) == 0 else {
            return HealthCheck(
                name: "master_key", status: .failing,
                message: "loaded, but its file is gone: restore it before runvoyd restarts, or every secret is lost",
                detail: path)
        }
        let file = MasterKey.current(at: path)
        guard let file, secrets.holdsKey(file) else {
            return HealthCheck(
                name: "master_key", status: .failing,
                message: "loaded, but its file no longer holds that key (unreadable or replaced)", detail: path)
        }
        return HealthCheck(name: "master_key", status: .healthy, message: "loaded", detail: path)
    }

    /// Whether the watchdog is fed: failing once the last keepalive is older than systemd's interval.
    static func watchdog(
        lastFed: (at: ContinuousClock.Instant, interval: Duration)?, now: ContinuousClock.Instant = .now
    ) -> HealthCheck {
        guard let lastFed else {
            return HealthCheck(name: "watchdog", status: .healthy, message: "not enabled (no WatchdogSec=)")
        }
        let age = now - lastFed.at
        let milliseconds = Double(age.nanoseconds) / 1e6
        guard age <= lastFed.interval else {
            return HealthCheck(
                name: "watchdog", status: .failing,
                message: "last fed \(format(milliseconds)) ms ago, beyond the \(lastFed.interval) interval",
                value: milliseconds, unit: "ms")
        }
        return HealthCheck(
            name: "watchdog", status: .healthy, message: "fed \(format(milliseconds)) ms ago", value: milliseconds,
            unit: "ms")
    }

    static func format(_ value: Double) -> String {
        String(Double(Int((value * 10).rounded())) / 10)
    }
}
