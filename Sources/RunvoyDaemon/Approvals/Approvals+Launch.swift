import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The start of an approved request or a break-glass run: the one check both an immediate start and a start at the
/// turn of the queue go through (review 2 of approvals, F1), and the spending of its approval.
extension Approvals {
    /// Where a ticket is presented.
    enum Spending: Sendable, Equatable {
        /// The command starts now: the approval is spent, its history row becomes `running`.
        case start
        /// The command waits in the queue: nothing is spent (the request stays approved), its row becomes `queued`.
        case queue
        /// Its turn in the queue came: the approval is spent; the queue moves its row (`dequeue`).
        case turn
    }

    /// Why `record`'s approval no longer lets `plan` (made under the configuration in force) start, naming what
    /// changed; nil when it may. An approved request: the policy in force must not ask for more approvals than it
    /// was approved with, nor name other approvers. A break-glass run: break-glass must still admit its requester.
    /// (That `plan` is the very one approved is `ExecutionManager.approvalRefusal`'s business: its digest.)
    static func launchRefusal(_ record: ApprovalRecord, _ plan: ExecPlan) -> String? {
        guard let policy = plan.decision.approval else { return nil }
        if record.kind == "break_glass" {
            guard Authorizer.mayBreakGlass(plan.caller, plan.executor, plan.config) else {
                return
                    "break-glass on executor '\(plan.executor.name)' no longer admits user \(plan.caller.displayName)"
            }
            return nil
        }
        return policyRefusal(record, policy)
    }

    /// Why `policy` (the one in force) no longer covers the approval `record` got, or nil: it may ask for no more
    /// approvals and name no other approvers than the request was approved with.
    static func policyRefusal(_ record: ApprovalRecord, _ policy: ApprovalPolicy) -> String? {
        if policy.count > record.required {
            return
                "the approval policy changed: it asks for \(policy.count) approvals now, \(record.required) when it was approved"
        }
        let approvers = Authorizer.approverList(policy.approvers)
        guard approvers == record.approvers else {
            return
                "the approval policy changed: its approvers are \(approvers.display) now, \(record.approvers.display) when it was approved"
        }
        return nil
    }

    /// Presents `ticket` for `plan` (`spending` says where): the request must still be approved (a break-glass run
    /// still recorded so) and `launchRefusal` find nothing, or it ends `invalidated` (audited, its row cancelled,
    /// its waiting clients told) and this throws what its requester is told. A start (or turn) spends the
    /// approval, with the history row's move in the same transaction for a start.
    func fulfil(_ ticket: ApprovalTicket, _ plan: ExecPlan, _ spending: Spending) async throws(RunvoyError) {
        let gone = RunvoyError(.cancelled, "request \(ticket.id) could not be started; it did not run")
        let (new, change) = try await serially(ticket.id) {
            () async throws(RunvoyError) -> (ApprovalRecord, ApprovalMachine.Change?) in
            guard let old = try? store.approval(ticket.id), old.kind == ticket.record.kind else { throw gone }
            let refusal = Self.launchRefusal(old, plan)
            guard refusal != nil || (spending != .queue && old.kind != "break_glass") else {
                // Nothing to spend: the row moves (a break-glass record stays, for review).
                guard old.state == (old.kind == "break_glass" ? .breakGlass : .approved) else { throw Self.ending(old) }
                try moveRow(ticket.id, spending)
                return (old, nil)
            }
            let event = ApprovalMachine.Event.launch(
                digest: ApprovalSubject(plan, reason: plan.reason ?? "").digest, allowed: refusal == nil,
                reason: refusal, atMs: WallClock.milliseconds())
            let (new, result) = ApprovalMachine.apply(event, to: old)
            let change = try result.get()
            let started: ExecutionStatus? = change == .fulfilled && spending == .start ? .running : nil
            guard try write(new, from: old, started: started) else { throw gone }
            return (new, change)
        }
        guard let change else { return }
        await applied(change, new, config: plan.config)
        if change == .invalidated { throw Self.ending(new) }
    }

    /// The history row of a ticket that spends nothing leaves `awaiting_approval`: `running` at a start, `queued`
    /// when it waits (none at a turn: the queue moves it).
    private func moveRow(_ id: String, _ spending: Spending) throws(RunvoyError) {
        guard spending != .turn else { return }
        let started: Bool
        do throws(StoreError) {
            started = try store.startAwaiting(id, as: spending == .start ? .running : .queued)
        } catch {
            throw RunvoyError(.storeUnavailable, "cannot record the execution's start (\(error.message))")
        }
        guard started else {
            throw RunvoyError(.cancelled, "execution \(id) no longer awaits its start; it did not run")
        }
    }
}
