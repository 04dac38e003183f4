import RunvoyConfig
import RunvoyKit

/// Holds the configuration snapshot in force. Readers take an immutable copy; a reload swaps it atomically,
/// and executions keep the snapshot they started under.
final class ConfigStore: Sendable {
    private let snapshot: Mutex<DaemonConfig>

    init(_ config: DaemonConfig) {
        snapshot = Mutex(config)
    }

    var current: DaemonConfig { snapshot.withLock { $0 } }

    func replace(with config: DaemonConfig) {
        snapshot.withLock { $0 = config }
    }
}
