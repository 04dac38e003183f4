import RunvoyKit

/// How runvoyctl shows requests for approval: the `approval` events of a waiting `exec`, and the requests
/// `approvals` lists.
enum ApprovalDisplay {
    /// "waiting for approval 1/2 (bob) from roles admin; groups sre, expires in 14m; digest 3f2a9c1d…:
    /// runvoyctl approve ID".
    static func waiting(_ frame: JSONValue) -> String {
        let id = frame["execution_id"]?.string ?? "?"
        let approvals = frame["approvals"]?.int ?? 0
        let required = frame["required"]?.int ?? 0
        var by: [String] = []
        if case .array(let names)? = frame["approved_by"] { by = names.compactMap(\.string) }
        let approvers = ApproverList(
            users: strings(frame["approvers"]?["users"]), groups: strings(frame["approvers"]?["groups"]),
            roles: strings(frame["approvers"]?["roles"]))
        let left = max(0, Int64(frame["expires_at_ms"]?.int ?? 0) - WallClock.milliseconds())
        let digest = String((frame["digest"]?.string ?? "").dropFirst("sha256:".count).prefix(12))
        return "waiting for approval \(approvals)/\(required)" + (by.isEmpty ? "" : " (\(by.joined(separator: ", ")))")
            + " from \(approvers.display), expires in \(duration(left)); digest \(digest)…: runvoyctl approve \(id)"
    }

    private static func strings(_ value: JSONValue?) -> [String] {
        guard case .array(let items)? = value else { return [] }
        return items.compactMap(\.string)
    }

    /// A short duration: `14m`, `3h`, `40s`.
    static func duration(_ ms: Int64) -> String {
        let seconds = ms / 1000
        if seconds >= 3600 { return "\(seconds / 3600)h\(seconds % 3600 / 60 > 0 ? "\(seconds % 3600 / 60)m" : "")" }
        if seconds >= 60 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    /// The lines `approvals` and `approve` print for one request.
    static func lines(_ info: ApprovalInfo) -> [String] {
        let age = duration(max(0, WallClock.milliseconds() - info.createdAtMs))
        var lines = [
            "\(info.id)  \(info.kind == "break_glass" ? "BREAK-GLASS" : info.state.rawValue)  \(info.approvals)/\(info.required)  by \(info.requester) (uid \(info.requesterUid)), \(age) ago"
                + (info.state == .pending
                    ? ", expires in \(duration(info.expiresAtMs - WallClock.milliseconds()))" : "")
        ]
        if let grant = info.grant {
            lines.append("  asks for a temporary grant of \(grant.display), from when it is approved")
        } else {
            lines.append("  executor \(info.executor) as \(info.runAs): \(JSONText.array(info.argv))")
            lines.append("  command \(info.command) in \(info.cwd)" + (info.terminal ? " on a terminal" : ""))
        }
        if info.argvTruncated { lines.append("  (argv cut: only its start is shown)") }
        if !info.envKeys.isEmpty { lines.append("  environment: \(info.envKeys.joined(separator: ", "))") }
        if info.envKeysTruncated { lines.append("  (environment names cut: only the first are shown)") }
        if !info.secrets.isEmpty { lines.append("  secrets: \(info.secrets.joined(separator: ", "))") }
        if info.stdin || info.terminal {
            // What it runs may come from there, after the approval: nobody approves that (review 2, F2).
            lines.append(
                "  reads the requester's input (\(info.terminal ? "its terminal" : "standard input")): what it does may come from there, unseen by approvers"
            )
        }
        lines.append("  timeout " + (info.timeoutMs.map { DurationParser.format(.milliseconds($0)) } ?? "none"))
        if let reason = info.reason { lines.append("  reason: \(TerminalText.escape(reason))") }
        lines.append("  approvers: \(info.approvers.display)")
        for answer in info.answers {
            lines.append(
                "  \(answer.answer.rawValue) by \(answer.user)"
                    + (answer.comment.map { ": \(TerminalText.escape($0))" } ?? ""))
        }
        if let decision = info.decision { lines.append("  \(TerminalText.escape(decision))") }
        lines.append("  digest \(info.digest)" + (info.mayAnswer ? "  (you may answer)" : ""))
        return lines
    }
}
