import Logging
import RunvoyStore
import ServiceLifecycle

/// Checkpoints the history's write-ahead log every `interval`, on a connection of its own, so the fsync a
/// checkpoint needs never lands inside an `exec` (writers have automatic checkpoints turned off).
struct HistoryCheckpointer: Service {
    let store: ExecutionStore
    let logger: Logger
    var interval: Duration = .seconds(2)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            do throws(StoreError) {
                try store.checkpoint()
            } catch {
                logger.warning("history checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
