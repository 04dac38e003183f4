import RunvoyKit

/// `health`: the daemon's own checks (journal, history database, free space, master key, watchdog) and what it
/// runs with (configuration digest and load time, up-time, containment). Any role may ask (`health`); the journal
/// probe and the database check run at most so often whoever asks (`HealthProbes`: the database once per 5 s, the
/// journal once per 5 s while healthy and once per second while not), and a caller with no role may not ask. Only administrators are sent each check's `detail` (paths, system error text); other roles get the
/// status words.
struct HealthHandler: MethodHandler {
    static let method = Method.health.rawValue
    static let params = ParamsRule<NoParams>.ignored(NoParams())

    func handle(_ params: NoParams, context: RequestContext) async throws -> Outcome<HealthResult> {
        try context.require(.health)
        let config = context.config
        let store = context.executions.store
        let probes = await HealthProbes.shared.checks(
            journal: context.executions.launcher.journal, timeout: min(config.audit.writeTimeout, .seconds(2)),
            store: store)
        var checks =
            probes + [
                HealthChecks.disk(free: store.freeBytes, reserve: config.history.minFreeBytes),
                HealthChecks.masterKey(context.executions.secrets, config: config),
                HealthChecks.watchdog(lastFed: WatchdogService.lastFed.withLock { $0 }),
            ]
        let admin = Authorizer.roles(context.caller, config).contains(.admin)
        if !admin {
            for index in checks.indices { checks[index].detail = nil }
        }
        let containment = context.executions.containment
        var notes = containment.notes.isEmpty ? "" : " (\(containment.notes.joined(separator: "; ")))"
        let usable = config.executors.filter { Authorizer.mayUse(context.caller, $0, config) }
        if let units = context.executions.units?.summary(usable, detail: admin) { notes += "; " + units }
        return .result(
            HealthResult(
                checks: checks, version: RunvoyProtocol.softwareVersion, configDigest: config.digest,
                configLoadedAtMs: context.server.config.loadedAtMs,
                uptimeSeconds: Double(DaemonMetrics.shared.uptime.nanoseconds) / 1e9,
                containment: containment.mode.rawValue + notes))
    }
}
