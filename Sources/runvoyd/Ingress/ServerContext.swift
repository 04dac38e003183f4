import Logging

/// What every connection needs from the daemon.
struct ServerContext: Sendable {
    let config: ConfigStore
    let executions: ExecutionManager
    /// Applies the configuration file (SIGHUP, or the `reload` method).
    let reloader: ConfigReloader
    /// Bounds how many refusal records one user can write.
    let refusals: RefusalThrottle
    let logger: Logger
}
