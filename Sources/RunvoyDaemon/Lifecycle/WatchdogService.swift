import RunvoyKit
import ServiceLifecycle

/// Sends WATCHDOG=1 at half the interval systemd asked for. It is the first service of the group, so it is
/// the last one shut down and keeps the watchdog fed while executions drain.
///
/// runvoyd keeps answering while the journal is stalled (and a restart would not help journald), so the watchdog
/// is still fed then; each keepalive repeats `STATUS=`, which says how long the audit path has been stalled.
struct WatchdogService: Service {
    let interval: Duration
    let notifier: SystemdNotifier
    /// The current status line, sent with every keepalive while the audit path is stalled.
    var statusLine: @Sendable () -> String = { "" }

    /// When the watchdog was last fed, and at what interval systemd asked for it (`health` reports both).
    static let lastFed = Mutex<(at: ContinuousClock.Instant, interval: Duration)?>(nil)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                Self.lastFed.withLock { $0 = (.now, interval) }
                if case .stalled = Journal.shared.health {
                    notifier.notify("WATCHDOG=1\nSTATUS=\(statusLine())")
                } else {
                    notifier.watchdog()
                }
                // Cancelled once everything else has shut down: that ends the loop and is not an error (a
                // CancellationError here made runvoyd exit 1 on SIGTERM, leaving the unit failed).
                try? await Task.sleep(for: interval / 2)
            }
        }
    }
}
