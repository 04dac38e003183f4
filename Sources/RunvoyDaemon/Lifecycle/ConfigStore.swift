import RunvoyConfig
import RunvoyKit

/// Holds the configuration snapshot in force. Readers take an immutable copy; a reload swaps it atomically,
/// and executions keep the snapshot they started under.
final class ConfigStore: Sendable {
    private let snapshot: Mutex<DaemonConfig>
    private let observers = Mutex<[@Sendable (DaemonConfig) -> Void]>([])

    init(_ config: DaemonConfig) {
        snapshot = Mutex(config)
    }

    var current: DaemonConfig { snapshot.withLock { $0 } }

    func replace(with config: DaemonConfig) {
        snapshot.withLock { $0 = config }
        for observer in observers.withLock({ $0 }) { observer(config) }
    }

    /// Calls `observer` with the configuration in force now and after every reload.
    func observe(_ observer: @escaping @Sendable (DaemonConfig) -> Void) {
        observers.withLock { $0.append(observer) }
        observer(current)
    }
}
