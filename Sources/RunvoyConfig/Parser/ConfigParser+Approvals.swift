import RunvoyKit
import Yams

/// `approvals`, and the `approval` and `break_glass` of executors and rules: who must approve a command before it
/// runs, and who may skip that in an emergency.
extension ConfigParser {
    /// The top-level `approvals` bounds.
    func parseApprovalSettings(_ top: ConfigEntries) -> ApprovalSettings {
        typealias Keys = ConfigSchema.ApprovalsKeys
        var settings = ApprovalSettings()
        guard let entries = fields(ConfigSchema.TopKeys.approvals, in: top) else { return settings }
        if let value = integer(Keys.maxPending, in: entries) { settings.maxPending = value }
        if let value = integer(Keys.maxPendingPerUser, in: entries) { settings.maxPendingPerUser = value }
        if let value = duration(Keys.maxExpires, in: entries) { settings.maxExpires = value }
        return settings
    }

    /// An `approval: {count, approvers, expires, reason}` mapping at `path`; nil (reported) when it is wrong.
    func parseApproval(_ node: Node, _ path: String) -> ApprovalPolicy? {
        typealias Keys = ConfigSchema.ApprovalKeys
        guard let entries = fields(node, path, Keys.section) else { return nil }
        var policy = ApprovalPolicy(line: node.mark?.line ?? 1)
        var ok = true
        if entries.contains(Keys.count) {
            if let count = integer(Keys.count, in: entries) { policy.count = count } else { ok = false }
        }
        if entries.contains(Keys.expires) {
            if let expires = duration(Keys.expires, in: entries) { policy.expires = expires } else { ok = false }
        }
        if let text = string(Keys.reason, in: entries) {
            switch text {
            case "required": policy.reasonRequired = true
            case "optional": policy.reasonRequired = false
            default:
                error(entries[Keys.reason], entries.path(Keys.reason), "must be required or optional")
                ok = false
            }
        }
        if let approvers = entries[Keys.approvers] {
            guard
                let (users, groups, roles) = principals(
                    approvers, entries.path(Keys.approvers), ConfigSchema.ApproverKeys.section)
            else { return nil }
            policy.approvers = AccessList(users: users, groups: groups, roles: roles)
        } else if policy.requiresApproval {
            error(node, entries.path(Keys.approvers), "required when count is above 0: {users, groups, roles}")
            ok = false
        }
        if ok { checkApprovers(policy, node, entries.path(Keys.approvers)) }
        return ok ? policy : nil
    }

    /// Warnings about approvers who can never reach the count.
    private func checkApprovers(_ policy: ApprovalPolicy, _ node: Node, _ path: String) {
        guard policy.requiresApproval else { return }
        let list = policy.approvers
        if list.users.isEmpty && list.groups.isEmpty && list.roles.isEmpty {
            warning(node, path, "no one may approve: every request will expire")
        } else if list.groups.isEmpty && list.roles.isEmpty && !list.users.contains("*")
            && Set(list.users).count < policy.count
        {
            warning(
                node, path,
                "count \(policy.count) is more than the \(Set(list.users).count) users named: every request will expire"
            )
        }
    }

    /// An executor's `approval` and `break_glass`.
    func parseApprovalKeys(_ entries: ConfigEntries, into executor: inout ExecutorConfig) -> Bool {
        typealias Keys = ConfigSchema.ExecutorKeys
        var ok = true
        if let node = entries[Keys.approval] {
            if let policy = parseApproval(node, entries.path(Keys.approval)) {
                executor.approval = policy.requiresApproval ? policy : nil
            } else {
                ok = false
            }
        }
        if let node = entries[Keys.breakGlass] {
            if let (users, groups, roles) = principals(
                node, entries.path(Keys.breakGlass), ConfigSchema.BreakGlassKeys.section)
            {
                executor.breakGlass = AccessList(users: users, groups: groups, roles: roles)
            } else {
                ok = false
            }
        }
        return ok
    }

    /// Warns of `break_glass` on an executor none of whose commands needs approval, of `editable` on one whose
    /// commands need approval (edits are refused there), and of approval policies that wait longer than
    /// `approvals.max_expires` allows.
    func checkApprovals(_ executors: [ExecutorConfig], _ settings: ApprovalSettings) {
        for executor in executors {
            let policies = [executor.approval].compactMap { $0 } + executor.commands.rules.compactMap(\.approval)
            if executor.breakGlass != nil && !policies.contains(where: \.requiresApproval) {
                report(
                    .warning, nil, "executors.\(executor.name).break_glass",
                    "no command of this executor needs approval, so there is no glass to break", line: executor.line)
            }
            if !executor.editable.isEmpty && executor.needsApproval {
                report(
                    .warning, nil, "executors.\(executor.name).editable",
                    "commands of this executor need approval, and edits are not sent for approval: runvoyd refuses "
                        + "every edit on it", line: executor.line)
            }
            for policy in policies where policy.requiresApproval && policy.expires > settings.maxExpires {
                report(
                    .warning, nil, "executors.\(executor.name).approval.expires",
                    "\(DurationParser.format(policy.expires)) is longer than approvals.max_expires "
                        + "(\(DurationParser.format(settings.maxExpires))), which bounds it", line: policy.line)
            }
        }
    }
}
