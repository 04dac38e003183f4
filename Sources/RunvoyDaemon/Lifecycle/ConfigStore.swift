import RunvoyConfig
import RunvoyKit

/// Holds the configuration snapshot in force. Readers take an immutable copy; a reload swaps it atomically,
/// and executions keep the snapshot they started under.
final class ConfigStore: Sendable {
    private let snapshot: Mutex<(config: DaemonConfig, loadedAtMs: Int64)>
    /// The observers, and the lock that orders what they are told: a reload swaps the snapshot and tells every
    /// observer while holding it, so two reloads in quick succession reach each observer in the order they were
    /// made (never the older one last). Observers must not reload.
    private let observers = Mutex<[@Sendable (DaemonConfig) -> Void]>([])

    init(_ config: DaemonConfig) {
        snapshot = Mutex((config, WallClock.milliseconds()))
    }

    var current: DaemonConfig { snapshot.withLock { $0.config } }

    /// When the configuration in force was loaded (Unix time, milliseconds): at start, or at the last reload.
    var loadedAtMs: Int64 { snapshot.withLock { $0.loadedAtMs } }

    func replace(with config: DaemonConfig) {
        observers.withLock { observers in
            snapshot.withLock { $0 = (config, WallClock.milliseconds()) }
            for observer in observers { observer(config) }
        }
    }

    /// Calls `observer` with the configuration in force now and after every reload, in order.
    func observe(_ observer: @escaping @Sendable (DaemonConfig) -> Void) {
        observers.withLock { observers in
            observers.append(observer)
            observer(current)
        }
    }
}
