import ServiceLifecycle

/// Sends WATCHDOG=1 at half the interval systemd asked for. It is the first service of the group, so it is
/// the last one shut down and keeps the watchdog fed while executions drain.
struct WatchdogService: Service {
    let interval: Duration
    let notifier: SystemdNotifier

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.watchdog()
                try await Task.sleep(for: interval / 2)
            }
        }
    }
}
