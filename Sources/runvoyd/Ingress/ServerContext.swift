import Logging

/// What every connection needs from the daemon.
struct ServerContext: Sendable {
    let config: ConfigStore
    let executions: ExecutionManager
    let logger: Logger
}
