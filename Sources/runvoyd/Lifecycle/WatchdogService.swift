import ServiceLifecycle

/// Sends WATCHDOG=1 at half the interval systemd asked for. It is the first service of the group, so it is
/// the last one shut down and keeps the watchdog fed while executions drain.
struct WatchdogService: Service {
    let interval: Duration
    let notifier: SystemdNotifier

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.watchdog()
                // Cancelled once everything else has shut down: that ends the loop and is not an error (a
                // CancellationError here made runvoyd exit 1 on SIGTERM, leaving the unit failed).
                try? await Task.sleep(for: interval / 2)
            }
        }
    }
}
