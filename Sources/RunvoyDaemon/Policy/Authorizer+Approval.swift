import RunvoyConfig
import RunvoyKit

extension Authorizer {
    /// Whether `caller` may answer requests whose approvers are `approvers`, with the roles and groups it holds
    /// now: it needs the `approve` permission and a place in the list. Whether it is the requester is the
    /// request's business (`ApprovalMachine`), not the list's.
    static func mayApprove(_ caller: Caller, _ approvers: ApproverList, _ config: DaemonConfig) -> Bool {
        let roles = roles(caller, config)
        guard PermissionTable.permits(roles, .approve), let name = caller.userName else { return false }
        return accessList(approvers).admits(userName: name, groupNames: caller.groupNames, roles: roles)
    }

    /// Whether `caller` may run `executor`'s commands at once with `--break-glass`.
    static func mayBreakGlass(_ caller: Caller, _ executor: ExecutorConfig, _ config: DaemonConfig) -> Bool {
        guard let list = executor.breakGlass, let name = caller.userName else { return false }
        return list.admits(userName: name, groupNames: caller.groupNames, roles: roles(caller, config))
    }

    static func accessList(_ approvers: ApproverList) -> AccessList {
        AccessList(
            users: approvers.users, groups: approvers.groups, roles: approvers.roles.compactMap(Role.init(rawValue:)))
    }

    static func approverList(_ list: AccessList) -> ApproverList {
        ApproverList(users: list.users, groups: list.groups, roles: list.roles.map(\.rawValue))
    }
}
