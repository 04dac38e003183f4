import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `request_grant`: a request for approval of kind `grant`, through the same flow as `exec` (`Approvals`: the
/// bounds of `approvals`, the audit records, the answers, the deadline, the recovery at start-up). The approval
/// policy is `grants.approval`; the requester never approves their own. Once approved, the grant is made, starting
/// then, for what was asked, if it may still be asked for under the configuration in force.
extension Grants {
    /// What the request keeps, to make the grant when it is approved.
    struct Asked: Codable, Sendable {
        var role: String?
        var executor: String?
        var forMs: Int64
        var reason: String

        enum CodingKeys: String, CodingKey {
            case role, executor, reason
            case forMs = "for_ms"
        }

        var subject: TemporaryGrant.Subject? {
            if let role { return Role(rawValue: role).map { .role($0) } }
            return executor.map { .executor($0) }
        }

        /// Bound by the approvals' digest: who asks, for what, how long, why.
        func digest(requesterUid: UInt32) -> String {
            ApprovalDigest.digest([
                ("kind", ["grant"]), ("requester_uid", [String(requesterUid)]),
                ("subject_uid", [String(requesterUid)]), ("role", role.map { [$0] } ?? []),
                ("executor", executor.map { [$0] } ?? []), ("for_ms", [String(forMs)]), ("reason", [reason]),
            ])
        }
    }

    /// Makes the request of `caller` for `asked` (checked by the handler), audited before anyone may answer it.
    func request(
        _ asked: Asked, caller: Caller, config: DaemonConfig, approvals: Approvals
    ) async throws(RunvoyError) -> ApprovalRecord {
        let policy = config.grantSettings.approval
        let now = WallClock.milliseconds()
        let expires = min(policy.expires, config.approvals.maxExpires)
        var record = ApprovalRecord(
            id: ExecutionID.make(milliseconds: UInt64(now)), kind: "grant", state: .pending, requesterUid: caller.uid,
            requesterUser: caller.displayName, executor: asked.executor, digest: asked.digest(requesterUid: caller.uid),
            params: ExecutionStore.json(asked),
            summary: ExecutionStore.json(
                GrantRequestSummary(role: asked.role, executor: asked.executor, forMs: asked.forMs)),
            reason: asked.reason, required: policy.count, approvers: Authorizer.approverList(policy.approvers),
            needsClient: false, createdAtMs: now, expiresAtMs: now + ExecPlan.micros(expires) / 1000,
            configDigest: config.digest, recorded: false)
        let inserted: Bool
        do throws(StoreError) {
            inserted = try store.insertApproval(
                record, execution: nil, maxPending: config.approvals.maxPending,
                maxPerUser: config.approvals.maxPendingPerUser)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot record the request (\(error.message)); nothing was asked")
        }
        guard inserted else {
            throw RunvoyError(
                .busy,
                "too many requests wait for approval (approvals.max_pending \(config.approvals.maxPending), or \(config.approvals.maxPendingPerUser) of yours); wait for them to be answered"
            )
        }
        try await recordRequest(&record, caller: caller, config: config, approvals: approvals)
        approvals.scheduleExpiry(record, config: config)
        return record
    }

    /// The `approval_requested` record (fail-closed), then the request becomes answerable.
    private func recordRequest(
        _ record: inout ApprovalRecord, caller: Caller, config: DaemonConfig, approvals: Approvals
    ) async throws(RunvoyError) {
        do throws(RunvoyError) {
            try await approvals.audit(config).record(GrantRecords.requested(record, caller: caller))
        } catch {
            _ = approvals.abandon(record.id, reason: "its record could not be audited", config: config)
            throw error
        }
        let marked = (try? store.markApprovalRecorded(record.id)) ?? false
        guard marked else {
            _ = approvals.abandon(record.id, reason: "it could not be marked recorded", config: config)
            throw RunvoyError(.storeUnavailable, "cannot record the request; nothing was asked")
        }
        record.recorded = true
        record.version += 1
    }

    /// Spends the approval `ticket`: makes its grant (starting now) and marks the request fulfilled, or, when what
    /// it asks may no longer be asked for, invalidates it. Nothing when it is no longer approved (already spent).
    func fulfil(_ ticket: ApprovalTicket, approvals: Approvals) async throws(RunvoyError) -> TemporaryGrant? {
        let result = try await approvals.serially(ticket.id) {
            () async throws(RunvoyError) -> (ApprovalRecord, ApprovalMachine.Change, TemporaryGrant?)? in
            guard let old = try? store.approval(ticket.id), old.state == .approved,
                let asked = ExecutionStore.decode(Asked.self, old.params)
            else { return nil }
            let subject = asked.subject
            let refusal = Self.fulfilRefusal(old, asked, self.config.current)
            let event = ApprovalMachine.Event.launch(
                digest: asked.digest(requesterUid: old.requesterUid), allowed: refusal == nil, reason: refusal,
                atMs: WallClock.milliseconds())
            let (new, outcome) = ApprovalMachine.apply(event, to: old)
            let change = try outcome.get()
            var made: TemporaryGrant?
            if change == .fulfilled, let subject {
                let approver = Caller.lookup(uid: old.answers.last { $0.answer == .approve }?.uid ?? 0)
                made = try await create(
                    user: Caller.lookup(uid: old.requesterUid), subject: subject, forMs: asked.forMs,
                    reason: asked.reason, by: approver, requestId: old.id)
            }
            guard try approvals.write(new, from: old) else { return nil }
            return (new, change, made)
        }
        guard let (record, change, made) = result else { return nil }
        await approvals.applied(change, record, config: config.current)
        if change == .invalidated { throw Approvals.ending(record) }
        return made
    }

    /// Why the approved request `record` for `asked` may no longer make its grant under `config` (the
    /// configuration in force), or nil: as `Approvals.launchRefusal` for `exec`, the approval policy in force must
    /// ask for no more approvals and no other approvers than the request got, and what it asks must still be within
    /// the grants settings, asked by someone who may still ask, for an executor that still exists.
    static func fulfilRefusal(_ record: ApprovalRecord, _ asked: Asked, _ config: DaemonConfig) -> String? {
        let settings = config.grantSettings
        guard let subject = asked.subject, settings.mayRequest(subject) else {
            return "it may no longer be asked for (grants.requestable_roles, grants.requestable_executors)"
        }
        if case .executor(let name) = subject, config.executor(named: name) == nil {
            return "executor '\(name)' no longer exists"
        }
        let maximum = ExecPlan.micros(settings.maxDuration) / 1000
        guard asked.forMs <= maximum else {
            return "it asks for longer than grants.max_duration (\(DurationParser.format(settings.maxDuration))) now"
        }
        let requester = Caller.lookup(uid: record.requesterUid)
        guard Authorizer.permits(requester, .grantsRequest, config) else {
            return "its requester \(requester.displayName) may no longer ask for grants (grants_request)"
        }
        if let refusal = Approvals.policyRefusal(record, settings.approval) { return refusal }
        // Each approval still counts only from someone the policy admits without temporary grants (review 4).
        let standing = Approvals.judging(record, config)
        for answer in record.answers where answer.answer == .approve {
            guard Authorizer.mayApprove(Caller.lookup(uid: answer.uid), record.approvers, standing) else {
                return "its approver \(answer.user) may no longer approve it"
            }
        }
        return nil
    }

    /// Spends `ticket` (`fulfil`); one that could not make its grant is withdrawn (else it would stay approved
    /// until the next start), and the error thrown.
    func spend(_ ticket: ApprovalTicket, approvals: Approvals) async throws(RunvoyError) -> TemporaryGrant? {
        do throws(RunvoyError) {
            return try await fulfil(ticket, approvals: approvals)
        } catch {
            logger.warning(
                "an approved request for a grant made none", metadata: ["id": "\(ticket.id)", "error": "\(error)"])
            await approvals.withdraw(
                ticket.id, reason: "its grant could not be made: \(error.message)", config: config.current)
            throw error
        }
    }

    /// What makes the grant of an approved request no client waits for (and of one approved before a restart).
    func launcher(_ approvals: Approvals) -> @Sendable (ApprovalTicket, DaemonConfig) async -> Void {
        { [self] ticket, _ in _ = try? await spend(ticket, approvals: approvals) }
    }
}
