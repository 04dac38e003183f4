import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The approval gate of `exec`: a step after the plan and before `ExecutionManager.start`. A plan that needs no
/// approval goes on; one that does becomes a request (and an `awaiting_approval` history row) and waits, or, with
/// `--break-glass`, runs at once on a record listed for review.
extension Approvals {
    /// What approvers are shown besides argv: kept with the request, never the environment's values.
    struct Summary: Codable, Sendable {
        var runAs: String
        var command: String
        var cwd: String
        var envKeys: [String]
        var secrets: [String]
        var terminal: Bool
        var timeoutMs: Int64?
        var argv: [String]
        /// Whether the command reads its requester's standard input (a pipe): what it runs may come from there,
        /// after the approval (review 2 of approvals, F2). Absent from requests stored before it was kept.
        var stdin: Bool?
    }

    /// Makes the request `plan` needs, or nil when it needs none. Throws the refusal (audited) of a plan that
    /// cannot be made, of a break-glass that is not allowed, or beyond the bounds of `approvals`.
    func gate(
        _ params: ExecParams, _ plan: ExecPlan, executions: ExecutionManager
    ) async throws(RunvoyError) -> ApprovalRecord? {
        let config = plan.config
        let breakGlass = params.breakGlass ?? false
        guard let policy = plan.decision.approval else {
            if breakGlass {
                throw RunvoyError(
                    .invalidArgument, "executor '\(plan.executor.name)' needs no approval for this: drop --break-glass")
            }
            return nil
        }
        if breakGlass {
            guard plan.reason != nil else {
                throw RunvoyError(.invalidArgument, "--break-glass needs --reason")
            }
            guard Authorizer.mayBreakGlass(plan.caller, plan.executor, config) else {
                throw executions.deny(
                    plan.refusal(
                        RunvoyError(
                            .permissionDenied,
                            "user \(plan.caller.displayName) may not break the glass on executor '\(plan.executor.name)'"
                        )),
                    caller: plan.caller, config: config)
            }
        }
        var record = Self.record(plan, params, policy, breakGlass: breakGlass)
        do throws(RunvoyError) {
            try insert(record, plan)
        } catch {
            // Beyond the bounds (`busy`) is a refusal like any other: audited, coalesced per caller.
            throw error.code == .busy
                ? executions.deny(plan.refusal(error), caller: plan.caller, config: config) : error
        }
        if !breakGlass { try await vetoRequest(record, plan, executions: executions) }
        try await recordRequest(&record, plan, breakGlass: breakGlass)
        if breakGlass {
            _ = await runGateHooks(.onBreakGlass, record, plan, runner: executions.launcher.hooks)
        } else {
            scheduleExpiry(record, config: config)
        }
        return record
    }

    /// Writes the audit record of the request just stored (fail-closed), then marks it recorded: only then can it
    /// be answered, reviewed or started. One the record could not be written for ends at once, and one the daemon
    /// stopped before marking ends at the next start (`recover`), never run (review of approvals, F2, F3).
    private func recordRequest(
        _ record: inout ApprovalRecord, _ plan: ExecPlan, breakGlass: Bool
    ) async throws(RunvoyError) {
        do throws(RunvoyError) {
            try await audit(plan.config).record(
                breakGlass ? ApprovalRecords.breakGlass(plan, record) : ApprovalRecords.requested(plan, record))
        } catch {
            abandon(record.id, reason: "its record could not be audited", config: plan.config)
            throw error
        }
        let marked: Bool
        do throws(StoreError) {
            marked = try store.markApprovalRecorded(record.id)
        } catch {
            abandon(record.id, reason: "it could not be marked recorded", config: plan.config)
            throw RunvoyError(
                .storeUnavailable, "cannot record the request for approval (\(error.message)); nothing was run")
        }
        guard marked else {
            throw RunvoyError(.cancelled, "request \(record.id) ended before it was recorded; it did not run")
        }
        record.recorded = true
        record.version += 1
    }

    /// The request of `plan` as the database keeps it.
    static func record(
        _ plan: ExecPlan, _ params: ExecParams, _ policy: ApprovalPolicy, breakGlass: Bool
    ) -> ApprovalRecord {
        let now = WallClock.milliseconds()
        let expires = min(policy.expires, plan.config.approvals.maxExpires)
        let subject = ApprovalSubject(plan, reason: plan.reason ?? "")
        let summary = Summary(
            runAs: plan.runAs, command: plan.command, cwd: plan.workingDirectory,
            envKeys: plan.environment.keys.sorted(), secrets: plan.executor.secretNames.sorted(),
            terminal: plan.terminal != nil, timeoutMs: subject.timeoutMs, argv: plan.argv, stdin: subject.stdin)
        return ApprovalRecord(
            id: ExecutionID.make(milliseconds: UInt64(now)), kind: breakGlass ? "break_glass" : "exec",
            state: breakGlass ? .breakGlass : .pending, requesterUid: plan.caller.uid,
            requesterUser: plan.caller.displayName, executor: plan.executor.name, digest: subject.digest,
            params: ExecutionStore.json(params), summary: ExecutionStore.json(summary), reason: plan.reason,
            required: policy.count, approvers: Authorizer.approverList(policy.approvers),
            needsClient: plan.terminal != nil || plan.wantsStdin, createdAtMs: now,
            expiresAtMs: now + ExecPlan.micros(expires) / 1000, configDigest: plan.config.digest, recorded: false)
    }

    /// Records the request and its `awaiting_approval` history row, within the bounds of `approvals`.
    private func insert(_ record: ApprovalRecord, _ plan: ExecPlan) throws(RunvoyError) {
        let bounds = plan.config.approvals
        let inserted: Bool
        do throws(StoreError) {
            inserted = try store.insertApproval(
                record,
                execution: plan.historyRow(id: record.id, status: .awaitingApproval, createdAtMs: record.createdAtMs),
                maxPending: bounds.maxPending, maxPerUser: bounds.maxPendingPerUser)
        } catch {
            throw RunvoyError(
                .storeUnavailable, "cannot record the request for approval (\(error.message)); nothing was run")
        }
        guard inserted else {
            throw RunvoyError(
                .busy,
                "too many requests wait for approval (approvals.max_pending \(bounds.maxPending), or \(bounds.maxPendingPerUser) of yours); wait for them to be answered or withdraw one with cancel"
            )
        }
    }

    /// The `approval` event of `record` for request `requestID`.
    static func event(_ record: ApprovalRecord, requestID: RequestID?) -> ApprovalEvent {
        ApprovalEvent(
            id: requestID, executionId: record.id, state: record.state, approvals: record.approvals,
            required: record.required,
            approvedBy: record.answers.filter { $0.answer == .approve }.map(\.user), approvers: record.approvers,
            expiresAtMs: record.expiresAtMs, digest: record.digest)
    }

    /// Waits, telling `client` of each change, until `record` is approved (the ticket to start it with) or ends
    /// (thrown). When the client goes first, a request that needs it is withdrawn; another stays pending and the
    /// daemon starts it when it is approved.
    func awaitDecision(
        _ record: ApprovalRecord, requestID: RequestID?, client: ExecutionManager.QueueClient, config: DaemonConfig
    ) async throws(RunvoyError) -> ApprovalTicket {
        let mailbox = ApprovalMailbox { record in
            try? await client.sendApproval(Self.event(record, requestID: requestID))
        }
        let token = room.withLock { $0.watch(record.id, mailbox: mailbox) }
        let current = (try? store.approval(record.id)) ?? record
        mailbox.post(current)
        if current.state.isFinal && current.state != .fulfilled {
            // It ended before this client watched (a denial or deadline at once): nobody else would tell it.
            _ = room.withLock { $0.leave(record.id, token) }
            await mailbox.finish()
            throw Self.ending(current)
        }
        let unhook = client.onHangup { [self] in
            mailbox.close()
            guard room.withLock({ $0.leave(record.id, token) }) else { return }
            if record.needsClient {
                Task { await withdraw(record.id, reason: "its client went away", config: config) }
            }
        }
        let turn = await withCheckedContinuation { continuation in
            if let turn = room.withLock({ $0.await(record.id, token, continuation) }) {
                continuation.resume(returning: turn)
            }
        }
        unhook()
        // Its last `approval` event before what comes next on its stream; only this client's task waits for it.
        await mailbox.finish()
        switch turn {
        case .approved(let ticket): return ticket
        case .ended(let error): throw error
        }
    }
}
