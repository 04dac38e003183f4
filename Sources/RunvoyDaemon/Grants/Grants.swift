import Logging
import NIOCore
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// Temporary grants: a role or an executor given to one user until a time (`grant`, an approved `request_grant`),
/// ended early (`revoke`) or at that time. The state database holds them; the active ones are put in force by
/// `ConfigStore.setGrants`, so the next request of a connected user is judged with them, or without them once they
/// end; what they admitted that still runs is then ended or kept (`grants.end_running`, `Grants+Running`) and
/// takes no more input from the user. One timer, at the earliest expiry, ends grants on time
/// without a reload; `Authorizer` also compares each grant with the wall clock, so a late timer extends none.
final class Grants: Sendable {
    let store: ExecutionStore
    let config: ConfigStore
    let logger: Logger
    let journal: Journal
    let group: any EventLoopGroup
    /// The timer at the earliest expiry, and the lock that orders publications (database read, then `setGrants`).
    private let timer = Mutex<Scheduled<Void>?>(nil)
    /// The executions running now (`ExecutionManager`'s), for `grants.end_running`; none until the daemon sets it.
    private let running = Mutex<@Sendable () -> [Execution]>({ [] })
    /// Grants whose revocation is being recorded: a second revocation waits for none, it is told `busy`.
    private let revoking = Mutex<Set<String>>([])

    init(store: ExecutionStore, config: ConfigStore, logger: Logger, journal: Journal, group: any EventLoopGroup) {
        self.store = store
        self.config = config
        self.logger = logger
        self.journal = journal
        self.group = group
    }

    func audit(_ config: DaemonConfig) -> AuditLog {
        AuditLog(config.audit, logger: logger, journal: journal)
    }

    /// At start: ends (with records) the grants that expired while the daemon was stopped, and puts the others in
    /// force with their timer.
    func start() {
        expireDue()
    }

    /// Where the running executions are found when a grant ends (`grants.end_running`).
    func watch(running list: @escaping @Sendable () -> [Execution]) {
        running.withLock { $0 = list }
    }

    // MARK: - Changes

    /// Gives `subject` to `user` until `expiresAtMs`, audited before it counts (fail-closed: no record, no grant).
    func create(
        user: Caller, subject: TemporaryGrant.Subject, forMs: Int64, reason: String, by: Caller,
        requestId: String? = nil
    ) async throws(RunvoyError) -> TemporaryGrant {
        let now = WallClock.milliseconds()
        let grant = TemporaryGrant(
            id: ExecutionID.make(milliseconds: UInt64(now)), uid: user.uid, user: user.displayName, subject: subject,
            reason: reason, grantedByUid: by.uid, grantedByUser: by.displayName, requestId: requestId,
            createdAtMs: now, expiresAtMs: now + forMs)
        let before = config.current
        var after = before
        after.grants.append(grant)
        try await audit(before).record(GrantRecords.changed(.created, grant, by: by, before: before, after: after))
        let inserted: Bool
        do throws(StoreError) {
            inserted = try store.insertGrant(Self.row(grant))
        } catch {
            logger.error("a grant was audited but could not be stored", metadata: ["id": "\(grant.id)"])
            throw RunvoyError(.storeUnavailable, "cannot record the grant (\(error.message)); it was not made")
        }
        guard inserted else {
            throw RunvoyError(.conflict, "request \(requestId ?? "") already made its grant")
        }
        publish()
        return grant
    }

    /// Ends grant `id` now, audited before it ends (fail-closed: no record, it stays).
    func revoke(_ id: String, comment: String?, by: Caller) async throws(RunvoyError) -> GrantRow {
        let now = WallClock.milliseconds()
        let stored: GrantRow?
        do throws(StoreError) {
            stored = try store.grant(id)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot read the grants (\(error.message))")
        }
        guard let stored, let grant = Self.grant(stored) else {
            throw RunvoyError(.invalidArgument, "no grant \(id)")
        }
        guard stored.endedAtMs == nil, grant.isActive(atMs: now) else {
            throw RunvoyError(.conflict, "grant \(id) has already ended (\(stored.endCause ?? "expired"))")
        }
        // One revocation of a grant at a time: another one, while this one's record is being written, would be told
        // the grant has ended, which an undo below could take back (review 4 of grants).
        guard revoking.withLock({ $0.insert(id).inserted }) else {
            throw RunvoyError(.busy, "a revocation of grant \(id) is being recorded; try again")
        }
        defer { _ = revoking.withLock { $0.remove(id) } }
        // What it gave is judged before anything changes, so the record's losses are what it took.
        let before = config.current
        // Written first, audited before it counts, put in force last (review 3 of grants, T1): a write that fails
        // changes nothing and records nothing; a record that cannot be written undoes the write. So the database
        // and the audit trail agree across a restart.
        let revoked: GrantRow?
        do throws(StoreError) {
            revoked = try store.revokeGrant(id, byUid: by.uid, atMs: now)
        } catch {
            throw RunvoyError(
                .storeUnavailable, "cannot record the revocation (\(error.message)); the grant stays in force")
        }
        guard let revoked else {
            // It expired between the check and the write: it ends as expired, not revoked.
            expireDue()
            throw RunvoyError(.conflict, "grant \(id) ended before it could be revoked")
        }
        var after = before
        after.grants.removeAll { $0.id == id }
        do throws(RunvoyError) {
            try await audit(before).record(
                GrantRecords.changed(.revoked, grant, by: by, comment: comment, before: before, after: after))
        } catch {
            undoRevocation(grant)
            throw error
        }
        let inForce = publish(ending: [id])
        endRunning(after: [grant], config: inForce, running: running.withLock { $0 }(), change: "revoked")
        return revoked
    }

    /// A revocation whose record could not be written is taken back (and the grant put in force again, should a
    /// publication have read the row meanwhile). When even that fails the database says revoked: the grant leaves
    /// force (fail closed) and what it admitted ends, unaudited but logged.
    private func undoRevocation(_ grant: TemporaryGrant) {
        do throws(StoreError) {
            try store.reopenGrant(grant.id)
            logger.error(
                "a revocation whose audit record could not be written was taken back; the grant stays in force",
                metadata: ["id": "\(grant.id)"])
            publish()
        } catch {
            logger.error(
                "a revocation that could not be audited could not be taken back either; the grant has ended",
                metadata: ["id": "\(grant.id)", "error": "\(error)"])
            let inForce = publish(ending: [grant.id])
            endRunning(after: [grant], config: inForce, running: running.withLock { $0 }(), change: "revoked")
        }
    }

    /// Ends every grant due at `now` (each at its own time), with a record each, and puts the rest in force.
    func expireDue(atMs now: Int64 = WallClock.milliseconds()) {
        let ended: [GrantRow]
        do throws(StoreError) {
            ended = try store.expireGrants(atMs: now)
        } catch {
            logger.error("cannot end the grants due", metadata: ["error": "\(error)"])
            // They leave force all the same, and what they admitted ends (review 2 of grants, R2); their records
            // are written with the expiry, when it can be. Tried again soon.
            let (after, lapsed) = timer.withLock { withdrawLapsed(&$0, ending: []) }
            endRunning(after: lapsed, config: after, running: running.withLock { $0 }(), change: "expired")
            return
        }
        let after = publish()
        for row in ended {
            guard let grant = Self.grant(row) else { continue }
            // What it gave is judged as if it were still in force: by the clock it no longer is.
            var before = after
            var alive = grant
            alive.expiresAtMs = .max
            before.grants.append(alive)
            audit(after).recordBestEffort(GrantRecords.changed(.expired, grant, by: nil, before: before, after: after))
            logger.notice("a temporary grant expired", metadata: ["id": "\(grant.id)", "user": "\(grant.user)"])
        }
        let grants = ended.compactMap(Self.grant)
        endRunning(after: grants, config: after, running: running.withLock { $0 }(), change: "expired")
    }

    // MARK: - In force

    /// Reads the grants that have not ended, puts them in force and sets the timer at the earliest expiry; returns
    /// the configuration then in force. One at a time, so an older read is never published last. When the read
    /// fails, what is known to have ended leaves force all the same (`ending`, and those past their time: fail
    /// closed), the others stay, and the read is tried again soon.
    @discardableResult
    func publish(ending: Set<String> = []) -> DaemonConfig {
        let (inForce, lapsed) = timer.withLock { timer -> (DaemonConfig, [TemporaryGrant]) in
            let rows: [GrantRow]
            do throws(StoreError) {
                rows = try store.activeGrants()
            } catch {
                logger.error("cannot read the grants; those not ended stay", metadata: ["error": "\(error)"])
                return withdrawLapsed(&timer, ending: ending)
            }
            // Past their time: not in force, whatever the rows say (their expiry may not be written yet).
            let now = WallClock.milliseconds()
            let grants = rows.compactMap(Self.grant)
            config.setGrants(grants.filter { $0.isActive(atMs: now) && !ending.contains($0.id) })
            timer?.cancel()
            timer = grants.map(\.expiresAtMs).min().map(scheduleTask(atMs:))
            // Those past their time end what they admitted here too, whoever publishes first (review 3 of
            // grants, T2): the fallback of a failed expiry only finds what is still in force.
            return (config.current, grants.filter { !$0.isActive(atMs: now) && !ending.contains($0.id) })
        }
        // A grant taken out of force by the clock alone ends what it admitted too (review 2 of grants, R2).
        endRunning(after: lapsed, config: inForce, running: running.withLock { $0 }(), change: "expired")
        return inForce
    }

    /// Takes out of force, in memory, the grants in `ending` and those past their time, when the database cannot
    /// say which have ended; the others stay. Returns the configuration then in force and the grants that left
    /// it by the clock. The timer fires again in a second. Called with the timer's lock held.
    private func withdrawLapsed(
        _ timer: inout Scheduled<Void>?, ending: Set<String>
    ) -> (DaemonConfig, [TemporaryGrant]) {
        let now = WallClock.milliseconds()
        let before = config.current.grants
        let kept = before.filter { !ending.contains($0.id) && $0.isActive(atMs: now) }
        config.setGrants(kept)
        timer?.cancel()
        timer = scheduleTask(atMs: now + 1000)
        let lapsed = before.filter { !ending.contains($0.id) && !$0.isActive(atMs: now) }
        return (config.current, lapsed)
    }

    /// A timer that ends what is due when it fires; one that fires early (the clock was set back) finds nothing
    /// due and is set again by the publication that follows.
    private func scheduleTask(atMs time: Int64) -> Scheduled<Void> {
        let delay = max(0, time - WallClock.milliseconds())
        return group.any().scheduleTask(in: .milliseconds(delay)) { [self] in expireDue() }
    }

    // MARK: - Rows

    static func row(_ grant: TemporaryGrant) -> GrantRow {
        GrantRow(
            id: grant.id, uid: grant.uid, user: grant.user, role: grant.role?.rawValue, executor: grant.executor,
            reason: grant.reason, grantedByUid: grant.grantedByUid, grantedByUser: grant.grantedByUser,
            requestId: grant.requestId, createdAtMs: grant.createdAtMs, expiresAtMs: grant.expiresAtMs)
    }

    /// The grant a row holds; nil for a role this daemon does not know.
    static func grant(_ row: GrantRow) -> TemporaryGrant? {
        let subject: TemporaryGrant.Subject
        if let name = row.role {
            guard let role = Role(rawValue: name) else { return nil }
            subject = .role(role)
        } else if let executor = row.executor {
            subject = .executor(executor)
        } else {
            return nil
        }
        return TemporaryGrant(
            id: row.id, uid: row.uid, user: row.user, subject: subject, reason: row.reason,
            grantedByUid: row.grantedByUid, grantedByUser: row.grantedByUser, requestId: row.requestId,
            createdAtMs: row.createdAtMs, expiresAtMs: row.expiresAtMs)
    }

    static func info(_ row: GrantRow) -> GrantInfo {
        GrantInfo(
            id: row.id, user: row.user, uid: row.uid, role: row.role, executor: row.executor,
            expiresAtMs: row.expiresAtMs, createdAtMs: row.createdAtMs, grantedBy: row.grantedByUser,
            grantedByUid: row.grantedByUid, reason: row.reason, requestId: row.requestId, ended: row.endCause)
    }

    static func info(_ grant: TemporaryGrant) -> GrantInfo {
        info(row(grant))
    }
}
