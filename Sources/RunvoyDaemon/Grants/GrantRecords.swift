import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The `grant_changed` audit records: a temporary grant created, revoked or expired, with what its user gained or
/// lost (`executor: rule`, as `policy_loaded` writes them after a reload).
enum GrantRecords {
    enum Change: String {
        case created, revoked, expired
    }

    static func changed(
        _ change: Change, _ grant: TemporaryGrant, by: Caller?, comment: String? = nil, before: DaemonConfig,
        after: DaemonConfig
    ) -> AuditEvent {
        // By uid, as the grant applies: the name it was given under may have gone, or be another account's now.
        let subject = Caller.lookup(uid: grant.uid)
        let diff = PolicyReport.diff(
            from: PolicyReport.grants(before, of: subject, as: grant.user),
            to: PolicyReport.grants(after, of: subject, as: grant.user))
        var fields: [(String, String)] = [
            ("GRANT_ID", grant.id), ("CHANGE", change.rawValue), ("SUBJECT_UID", String(grant.uid)),
            ("SUBJECT_USER", grant.user), ("EXPIRES_USEC", String(grant.expiresAtMs * 1000)),
            ("REQUEST_REASON", grant.reason), ("GRANTS_GAINED", PolicyReport.json(diff.gained)),
            ("GRANTS_LOST", PolicyReport.json(diff.lost)),
        ]
        switch grant.subject {
        case .role(let role): fields.append(("ROLE", role.rawValue))
        case .executor(let name): fields.append(("EXECUTOR", name))
        }
        if let by { fields += [("BY_UID", String(by.uid)), ("BY_USER", by.displayName)] }
        if let request = grant.requestId { fields.append(("APPROVAL_ID", request)) }
        if let comment { fields.append(("COMMENT", comment)) }
        let who = by.map { " by \($0.displayName) (uid \($0.uid))" } ?? ""
        return AuditEvent(
            .grantChanged,
            message: "temporary grant \(grant.id) of \(grant.subject.display) to \(grant.user) (uid \(grant.uid)) "
                + "\(change.rawValue)\(who)",
            fields: fields)
    }
}

extension ApprovalInfo {
    /// The same, with what a request for a grant asks for.
    func with(grant: GrantRequestSummary?) -> ApprovalInfo {
        var info = self
        info.grant = grant
        return info
    }
}

extension GrantRecords {
    /// `approval_requested` of a request for a grant (kind `grant`: no execution).
    static func requested(_ record: ApprovalRecord, caller: Caller) -> AuditEvent {
        let asked = ExecutionStore.decode(GrantRequestSummary.self, record.summary)
        var fields: [(String, String)] = [
            ("APPROVAL_ID", record.id), ("KIND", record.kind), ("DIGEST", record.digest),
            ("REQUIRED", String(record.required)), ("APPROVERS", record.approvers.display),
            ("EXPIRES_USEC", String(record.expiresAtMs * 1000)), ("CALLER_UID", String(caller.uid)),
            ("CALLER_USER", caller.displayName), ("CALLER_PID", String(caller.pid)),
        ]
        if let role = asked?.role { fields.append(("ROLE", role)) }
        if let executor = asked?.executor { fields.append(("EXECUTOR", executor)) }
        if let asked { fields.append(("FOR_USEC", String(asked.forMs * 1000))) }
        if let reason = record.reason { fields.append(("REQUEST_REASON", reason)) }
        return AuditEvent(
            .approvalRequested,
            message: "\(caller.displayName) (uid \(caller.uid)) asks for approval of request \(record.id): a grant of "
                + (asked?.display ?? "?"),
            fields: fields)
    }
}
