import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// A playbook's `approval`: one request for approval for the whole run, of kind `playbook`, through the same flow
/// as `exec`'s (`Approvals`: the bounds of `approvals`, the `approval_requested` record, the answers, the deadline;
/// never approved by its requester). Its digest binds the requester, the playbook, the validated values, the
/// reason and the configuration's digest. The run happens on its client's connection only: the request is
/// withdrawn when that client goes, and at a restart; a reload while it waits makes its approval unusable.
enum PlaybookApproval {
    /// Bound by the approvals' digest.
    static func digest(_ run: PlaybookRun) -> String {
        ApprovalDigest.digest([
            ("kind", ["playbook"]), ("requester_uid", [String(run.caller.uid)]), ("playbook", [run.playbook.name]),
            ("params", run.values.keys.sorted().map { "\($0)=\(run.values[$0] ?? "")" }),
            ("reason", [run.reason ?? ""]), ("config_digest", [run.config.digest]),
        ])
    }

    /// Makes the request `run` needs under `policy`, audited (fail-closed) before anyone may answer it.
    static func request(
        _ run: PlaybookRun, policy: ApprovalPolicy, approvals: Approvals, store: ExecutionStore
    ) async throws(RunvoyError) -> ApprovalRecord {
        var record = makeRecord(run, policy: policy)
        let bounds = run.config.approvals
        let inserted: Bool
        do throws(StoreError) {
            inserted = try store.insertApproval(
                record, execution: nil, maxPending: bounds.maxPending, maxPerUser: bounds.maxPendingPerUser)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot record the request (\(error.message)); nothing ran")
        }
        guard inserted else {
            throw RunvoyError(
                .busy,
                "too many requests wait for approval (approvals.max_pending \(bounds.maxPending), or \(bounds.maxPendingPerUser) of yours); wait for them to be answered"
            )
        }
        do throws(RunvoyError) {
            try await approvals.audit(run.config).record(requestedRecord(record, run))
        } catch {
            _ = approvals.abandon(record.id, reason: "its record could not be audited", config: run.config)
            throw error
        }
        guard (try? store.markApprovalRecorded(record.id)) ?? false else {
            _ = approvals.abandon(record.id, reason: "it could not be marked recorded", config: run.config)
            throw RunvoyError(.storeUnavailable, "cannot record the request; nothing ran")
        }
        record.recorded = true
        record.version += 1
        approvals.scheduleExpiry(record, config: run.config)
        return record
    }

    /// The pending request: approvers are shown the playbook and its values as the command.
    static func makeRecord(_ run: PlaybookRun, policy: ApprovalPolicy) -> ApprovalRecord {
        let now = WallClock.milliseconds()
        let expires = min(policy.expires, run.config.approvals.maxExpires)
        let shown =
            ["playbook", "run", run.playbook.name] + run.values.keys.sorted().map { "\($0)=\(run.values[$0] ?? "")" }
        let summary = Approvals.Summary(
            runAs: "", command: "playbook \(run.playbook.name)", cwd: "", envKeys: [], secrets: [], terminal: false,
            timeoutMs: nil, argv: shown, stdin: false)
        return ApprovalRecord(
            id: ExecutionID.make(milliseconds: UInt64(now)), kind: "playbook", state: .pending,
            requesterUid: run.caller.uid, requesterUser: run.caller.displayName, executor: nil, digest: digest(run),
            params: run.valuesJSON, summary: ExecutionStore.json(summary), reason: run.reason,
            required: policy.count, approvers: Authorizer.approverList(policy.approvers), needsClient: true,
            createdAtMs: now, expiresAtMs: now + ExecPlan.micros(expires) / 1000, configDigest: run.config.digest,
            recorded: false)
    }

    static func requestedRecord(_ record: ApprovalRecord, _ run: PlaybookRun) -> AuditEvent {
        AuditEvent(
            .approvalRequested,
            message: "\(run.caller.displayName) (uid \(run.caller.uid)) asks for approval of request \(record.id): "
                + "a run of playbook '\(run.playbook.name)'",
            fields: [
                ("APPROVAL_ID", record.id), ("KIND", record.kind), ("DIGEST", record.digest),
                ("REQUIRED", String(record.required)), ("APPROVERS", record.approvers.display),
                ("EXPIRES_USEC", String(record.expiresAtMs * 1000)), ("CALLER_UID", String(run.caller.uid)),
                ("CALLER_USER", run.caller.displayName), ("CALLER_PID", String(run.caller.pid)),
                ("PLAYBOOK", run.playbook.name), ("RUN_ID", run.id), ("PARAMS", run.valuesJSON),
                ("REQUEST_REASON", run.reason ?? ""),
            ])
    }

    /// Spends the approval `ticket` for `run`: it must still be approved, for this very run, under the
    /// configuration it was asked under, with the policy in force asking for no more; else it ends `invalidated`.
    static func spend(
        _ ticket: ApprovalTicket, _ run: PlaybookRun, approvals: Approvals, current: DaemonConfig
    ) async throws(RunvoyError) {
        let gone = RunvoyError(.cancelled, "request \(ticket.id) is no longer approved; nothing ran")
        let (new, change) = try await approvals.serially(ticket.id) {
            () async throws(RunvoyError) -> (ApprovalRecord, ApprovalMachine.Change) in
            guard let old = try? approvals.store.approval(ticket.id), old.kind == "playbook" else { throw gone }
            let refusal = refusal(old, run, current)
            let event = ApprovalMachine.Event.launch(
                digest: digest(run), allowed: refusal == nil, reason: refusal, atMs: WallClock.milliseconds())
            let (new, result) = ApprovalMachine.apply(event, to: old)
            let change = try result.get()
            guard try approvals.write(new, from: old) else { throw gone }
            return (new, change)
        }
        await approvals.applied(change, new, config: current)
        if change == .invalidated { throw Approvals.ending(new) }
    }

    /// Why the approved `record` may not start `run` under `current`, or nil.
    static func refusal(_ record: ApprovalRecord, _ run: PlaybookRun, _ current: DaemonConfig) -> String? {
        guard current.digest == record.configDigest else {
            return "the configuration changed while it waited for approval; run it again"
        }
        guard let policy = current.playbook(named: run.playbook.name)?.approval else {
            return "playbook '\(run.playbook.name)' no longer needs approval as it did; run it again"
        }
        return Approvals.policyRefusal(record, policy)
    }
}
