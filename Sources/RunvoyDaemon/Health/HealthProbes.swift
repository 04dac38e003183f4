import NIOPosix
import RunvoyKit
import RunvoyStore

/// The checks of `health` that cost something, a journal write and a scan of the history database, run at most
/// once per `interval` however many callers ask and however often: callers within it share the last result, and
/// callers that arrive while a run is going share that run. A result that was not healthy is not reused: the next
/// caller runs the checks again (one run at a time), so a recovery shows at once. Without it, each `health` call wrote a journal record
/// and scanned the database on a thread of the cooperative pool, so a few looping callers could push older audit
/// records out of a size-limited journal and stall the daemon.
actor HealthProbes {
    static let shared = HealthProbes()
    static let interval = Duration.seconds(5)

    private var last: (at: ContinuousClock.Instant, checks: [HealthCheck])?
    private var running: Task<[HealthCheck], Never>?

    /// The journal and database checks, from the last run when it is recent enough and healthy. The journal
    /// writer's own state is read fresh every time: once the writer has found the journal stalled, the check fails
    /// at once; a stall nothing has written into since the last run shows within `interval`.
    func checks(journal: Journal, timeout: Duration, store: ExecutionStore) async -> [HealthCheck] {
        var checks: [HealthCheck]
        if let last, ContinuousClock.now - last.at < Self.interval, last.checks.allSatisfy({ $0.status == .healthy }) {
            checks = last.checks
        } else if let running {
            checks = await running.value
        } else {
            let task = Task {
                let journalCheck = await HealthChecks.journal(journal, timeout: timeout)
                // quick_check reads the whole database: on a thread of its own, not the cooperative pool's.
                let databaseCheck =
                    (try? await NIOThreadPool.singleton.runIfActive { HealthChecks.database(store) })
                    ?? HealthCheck(name: "database", status: .degraded, message: "the check could not run")
                return [journalCheck, databaseCheck]
            }
            running = task
            checks = await task.value
            running = nil
            last = (.now, checks)
        }
        if case .stalled = journal.health, let index = checks.firstIndex(where: { $0.name == "journal" }) {
            checks[index] = HealthCheck(
                name: "journal", status: .failing,
                message: "the journal does not take records (its queue is full): executions are refused")
        }
        return checks
    }
}
