import Logging
import RunvoyStore
import ServiceLifecycle

/// Checkpoints the history's write-ahead log every `interval`, on a connection of its own, so the fsync a
/// checkpoint needs never lands inside an `exec` (writers have automatic checkpoints turned off), and retries
/// writing the ends of executions that could not be written yet (see `ExecutionStore.finish`).
struct HistoryCheckpointer: Service {
    let store: ExecutionStore
    let logger: Logger
    var interval: Duration = .seconds(2)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            // Ends of executions that could not be written (a full disk) are retried here too.
            if store.pendingCount > 0 && store.flushPending() {
                logger.notice("the ends of executions kept in memory are now in the history")
            }
            do throws(StoreError) {
                try store.checkpoint()
            } catch {
                logger.warning("history checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
