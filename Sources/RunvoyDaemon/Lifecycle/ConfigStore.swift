import RunvoyConfig
import RunvoyKit

/// Holds the configuration snapshot in force: the file's, with the temporary grants in force added
/// (`DaemonConfig.grants`). Readers take an immutable copy; a reload or a change of grants swaps it atomically,
/// and executions keep the snapshot they started under.
final class ConfigStore: Sendable {
    private let snapshot: Mutex<(file: DaemonConfig, config: DaemonConfig, loadedAtMs: Int64)>
    /// The observers, and the lock that orders what they are told: a reload (or a change of grants) swaps the
    /// snapshot and tells every observer while holding it, so two changes in quick succession reach each observer
    /// in the order they were made (never the older one last). Observers must not reload.
    private let observers = Mutex<[@Sendable (DaemonConfig) -> Void]>([])

    init(_ config: DaemonConfig) {
        snapshot = Mutex((config, config, WallClock.milliseconds()))
    }

    var current: DaemonConfig { snapshot.withLock { $0.config } }

    /// When the configuration in force was loaded (Unix time, milliseconds): at start, or at the last reload.
    var loadedAtMs: Int64 { snapshot.withLock { $0.loadedAtMs } }

    /// Puts the file's configuration `config` in force, with the grants in force now.
    func replace(with config: DaemonConfig) {
        publish { snapshot in
            var merged = config
            merged.grants = snapshot.config.grants
            snapshot = (config, merged, WallClock.milliseconds())
        }
    }

    /// Puts `grants` in force in place of the temporary grants before, with the file's configuration.
    func setGrants(_ grants: [TemporaryGrant]) {
        publish { snapshot in
            snapshot.config = snapshot.file
            snapshot.config.grants = grants
        }
    }

    private func publish(
        _ change: (inout (file: DaemonConfig, config: DaemonConfig, loadedAtMs: Int64)) -> Void
    ) {
        observers.withLock { observers in
            let config = snapshot.withLock { snapshot in
                change(&snapshot)
                return snapshot.config
            }
            for observer in observers { observer(config) }
        }
    }

    /// Calls `observer` with the configuration in force now and after every reload or change of grants, in order.
    func observe(_ observer: @escaping @Sendable (DaemonConfig) -> Void) {
        observers.withLock { observers in
            observers.append(observer)
            observer(current)
        }
    }
}
