import RunvoyKit

/// The audit records of the queue: an execution queued, dequeued (its turn came, with how long it waited) and
/// cancelled (it left the queue and never ran, with why). Best effort: the `decision` and `execution_started`
/// records that must precede a command are written at its launch, as for every execution.
enum QueueRecords {
    static func queued(_ plan: ExecPlan, _ waiting: ExecutionManager.WaitRequest, _ event: QueuedEvent?) -> AuditEvent {
        var fields = [("EXECUTION_ID", waiting.executionID)] + plan.auditFields
        fields.append(("WAITING_FOR", event?.waitingFor ?? "turn"))
        fields.append(("POSITION", String(event?.position ?? 1)))
        if let timeout = waiting.timeout { fields.append(("WAIT_TIMEOUT_USEC", String(ExecPlan.micros(timeout)))) }
        return AuditEvent(
            .executionQueued, priority: 6,
            message:
                "execution \(waiting.executionID) of \(plan.caller.displayName) (uid \(plan.caller.uid)) queued for '\(plan.executor.name)' (waiting for \(event?.waitingFor ?? "its turn"))",
            fields: fields)
    }

    static func dequeued(_ plan: ExecPlan, _ waiting: ExecutionManager.WaitRequest, waitedUsec: Int64) -> AuditEvent {
        AuditEvent(
            .executionDequeued, priority: 6,
            message:
                "execution \(waiting.executionID) of \(plan.caller.displayName) (uid \(plan.caller.uid)) leaves the queue for '\(plan.executor.name)' after \(waitedUsec / 1000) ms",
            fields: identity(plan, waiting) + [("WAITED_USEC", String(waitedUsec))])
    }

    static func cancelled(
        _ plan: ExecPlan, _ waiting: ExecutionManager.WaitRequest, cause: String, reason: RunvoyError,
        waitedUsec: Int64
    ) -> AuditEvent {
        AuditEvent(
            .executionCancelled, priority: 5,
            message: "execution \(waiting.executionID) of \(plan.caller.displayName) left the queue: \(reason.message)",
            fields: identity(plan, waiting) + [
                ("WAITED_USEC", String(waitedUsec)), ("CAUSE", cause), ("REASON", reason.description),
            ])
    }

    private static func identity(_ plan: ExecPlan, _ waiting: ExecutionManager.WaitRequest) -> [(String, String)] {
        [
            ("EXECUTION_ID", waiting.executionID), ("CALLER_UID", String(plan.caller.uid)),
            ("CALLER_USER", plan.caller.displayName), ("CALLER_PID", String(plan.caller.pid)),
            ("EXECUTOR", plan.executor.name), ("ARGV", JSONText.array(plan.argv)),
        ]
    }
}
