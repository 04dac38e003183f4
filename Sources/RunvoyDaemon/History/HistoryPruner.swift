import Logging
import RunvoyKit
import RunvoyStore
import ServiceLifecycle

/// Applies history retention (`history.max_age`, `history.max_total_bytes`) at start and every
/// `history.prune_interval`, with the configuration in force at each pass. Running executions are never pruned.
struct HistoryPruner: Service {
    let store: ExecutionStore
    let config: ConfigStore
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            prune()
            let interval = config.current.history.pruneInterval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    func prune() {
        let settings = config.current.history
        let cutoff = settings.maxAge.map { maxAge in
            WallClock.milliseconds() - maxAge.components.seconds * 1000
                - maxAge.components.attoseconds / 1_000_000_000_000_000
        }
        do throws(StoreError) {
            let report = try store.prune(olderThanMs: cutoff, maxTotalBytes: settings.maxTotalBytes)
            if !report.deleted.isEmpty || !report.outputPruned.isEmpty {
                logger.notice(
                    "history retention",
                    metadata: [
                        "deleted": "\(report.deleted.count)", "output_pruned": "\(report.outputPruned.count)",
                        "freed_bytes": "\(report.freedBytes)",
                    ])
            }
        } catch {
            logger.error("history retention failed", metadata: ["error": "\(error)"])
        }
    }

}
