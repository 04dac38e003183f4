import NIOPosix
import RunvoyKit
import RunvoyStore

/// The checks of `health` that cost something, a journal write and a scan of the history database, each run at
/// most so often however many callers ask: callers within that time share the last result, and callers that
/// arrive while a run is going share that run. The database check runs at most once per `interval`, whatever it
/// or the journal found. The journal probe's result is kept `interval` when healthy and `unhealthyInterval` when
/// not, so a recovery shows within a second while a flood of `health` calls during a slow journal runs the probe
/// once a second, not back to back. Without this, each `health` call wrote a journal record and scanned the
/// database, so a few looping callers could push older audit records out of a size-limited journal and stall the
/// daemon.
actor HealthProbes {
    static let shared = HealthProbes()
    static let interval = Duration.seconds(5)
    static let unhealthyInterval = Duration.seconds(1)

    let interval: Duration
    let unhealthyInterval: Duration
    private var journalResult: (at: ContinuousClock.Instant, check: HealthCheck)?
    private var databaseResult: (at: ContinuousClock.Instant, check: HealthCheck)?
    private var running: Task<[HealthCheck], Never>?

    init(interval: Duration = HealthProbes.interval, unhealthyInterval: Duration = HealthProbes.unhealthyInterval) {
        self.interval = interval
        self.unhealthyInterval = unhealthyInterval
    }

    /// The journal and database checks (see the type). The journal writer's own state is read fresh every time:
    /// once the writer has found the journal stalled, the check fails at once.
    func checks(journal: Journal, timeout: Duration, store: ExecutionStore) async -> [HealthCheck] {
        var checks = await probe(
            journal: { await HealthChecks.journal(journal, timeout: timeout) },
            database: {
                // quick_check reads the whole database: on a thread of its own, not the cooperative pool's.
                (try? await NIOThreadPool.singleton.runIfActive { HealthChecks.database(store) })
                    ?? HealthCheck(name: "database", status: .degraded, message: "the check could not run")
            })
        if case .stalled = journal.health, let index = checks.firstIndex(where: { $0.name == "journal" }) {
            checks[index] = HealthCheck(
                name: "journal", status: .failing,
                message: "the journal does not take records (its queue is full): executions are refused")
        }
        return checks
    }

    /// The journal check and the database check, each from its last run while that is fresh, else run again.
    func probe(
        journal: @escaping @Sendable () async -> HealthCheck, database: @escaping @Sendable () async -> HealthCheck
    ) async -> [HealthCheck] {
        if let running { return await running.value }
        let now = ContinuousClock.now
        let keptJournal = journalResult.flatMap {
            now - $0.at < ($0.check.status == .healthy ? interval : unhealthyInterval) ? $0.check : nil
        }
        let keptDatabase = databaseResult.flatMap { now - $0.at < interval ? $0.check : nil }
        if let keptJournal, let keptDatabase { return [keptJournal, keptDatabase] }
        let task = Task {
            let journalCheck: HealthCheck
            if let keptJournal { journalCheck = keptJournal } else { journalCheck = await journal() }
            let databaseCheck: HealthCheck
            if let keptDatabase { databaseCheck = keptDatabase } else { databaseCheck = await database() }
            return [journalCheck, databaseCheck]
        }
        running = task
        let checks = await task.value
        running = nil
        let at = ContinuousClock.now
        if keptJournal == nil { journalResult = (at, checks[0]) }
        if keptDatabase == nil { databaseResult = (at, checks[1]) }
        return checks
    }
}
