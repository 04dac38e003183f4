import RunvoyKit
import RunvoyStore

/// The audit records of requests for approval: made, answered, decided, and break-glass runs.
enum ApprovalRecords {
    static func requested(_ plan: ExecPlan, _ record: ApprovalRecord) -> AuditEvent {
        var fields = [("APPROVAL_ID", record.id), ("KIND", record.kind), ("EXECUTION_ID", record.id)]
        fields += plan.auditFields
        fields += [
            ("RUN_AS", plan.runAs), ("COMMAND_PATH", plan.command), ("CWD", plan.workingDirectory),
            ("DIGEST", record.digest), ("REQUIRED", String(record.required)),
            ("APPROVERS", record.approvers.display),
            ("EXPIRES_USEC", String(record.expiresAtMs * 1000)),
            // What approvers cannot see: input it will read from its requester (review 2 of approvals, F2).
            ("STDIN", plan.wantsStdin ? "pipe" : "none"),
        ]
        if let terminal = plan.terminal { fields.append(("TTY", "\(terminal.cols)x\(terminal.rows)")) }
        if let timeout = plan.timeout { fields.append(("TIMEOUT_USEC", String(ExecPlan.micros(timeout)))) }
        if let reason = record.reason { fields.append(("REQUEST_REASON", reason)) }
        return AuditEvent(
            .approvalRequested,
            message:
                "\(plan.caller.displayName) (uid \(plan.caller.uid)) asks for approval of request \(record.id) on '\(plan.executor.name)': \(JSONText.array(plan.argv))",
            fields: fields)
    }

    static func answered(
        _ record: ApprovalRecord, _ answer: ApprovalAnswer, caller: Caller
    ) -> AuditEvent {
        var fields: [(String, String)] = [
            ("APPROVAL_ID", record.id), ("ANSWER", answer.answer.rawValue), ("APPROVER_UID", String(caller.uid)),
            ("APPROVER_USER", caller.displayName), ("APPROVER_PID", String(caller.pid)),
            ("APPROVALS", String(record.approvals)), ("REQUIRED", String(record.required)),
            ("DIGEST", answer.digest), ("REQUESTER_UID", String(record.requesterUid)),
        ]
        if let comment = answer.comment { fields.append(("COMMENT", comment)) }
        return AuditEvent(
            .approvalAnswered,
            message:
                "\(caller.displayName) (uid \(caller.uid)) answered \(answer.answer.rawValue) to request \(record.id) of \(record.requesterUser)",
            fields: fields)
    }

    static func decided(_ record: ApprovalRecord, cause: String) -> AuditEvent {
        var fields: [(String, String)] = [
            ("APPROVAL_ID", record.id), ("STATE", record.state.rawValue), ("CAUSE", cause),
            (
                "APPROVED_BY",
                record.answers.filter { $0.answer == .approve }.map { String($0.uid) }.joined(separator: ",")
            ),
            ("REQUESTER_UID", String(record.requesterUid)), ("REQUESTER_USER", record.requesterUser),
        ]
        if let uid = record.decidedByUid { fields.append(("DECIDED_BY_UID", String(uid))) }
        if let decision = record.decision { fields.append(("REASON", decision)) }
        let approved = record.state == .approved || record.state == .fulfilled || record.state == .reviewed
        return AuditEvent(
            .approvalDecided, priority: approved ? 5 : 4,
            message: "request \(record.id) of \(record.requesterUser) is \(record.state.rawValue)"
                + (record.decision.map { ": \($0)" } ?? ""),
            fields: fields)
    }

    static func breakGlass(_ plan: ExecPlan, _ record: ApprovalRecord) -> AuditEvent {
        var fields = [("APPROVAL_ID", record.id), ("EXECUTION_ID", record.id)] + plan.auditFields
        fields += [("RUN_AS", plan.runAs), ("COMMAND_PATH", plan.command), ("DIGEST", record.digest)]
        if let reason = record.reason { fields.append(("REQUEST_REASON", reason)) }
        return AuditEvent(
            .breakGlass, priority: 2,
            message:
                "BREAK-GLASS: \(plan.caller.displayName) (uid \(plan.caller.uid)) runs without approval on '\(plan.executor.name)': \(JSONText.array(plan.argv))",
            fields: fields)
    }
}
