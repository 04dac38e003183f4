import Glibc
import RunvoyConfig
import RunvoyKit

/// Who an executor's commands run as, looked up when a request is planned, so a changed user database takes
/// effect at once.
struct RunAsIdentity: Sendable, Equatable {
    /// The ids to switch to; nil keeps the daemon's own (a daemon that is not root runs commands as itself).
    var identity: SpawnRequest.Identity?
    /// `user:group`, as the audit trail and the `started` event name it.
    var label: String

    /// The executor's run-as user and group, or `spawn_failed` (reason `identity`) when either does not exist or
    /// the daemon cannot take that identity.
    static func resolve(_ executor: ExecutorConfig) throws(RunvoyError) -> RunAsIdentity {
        guard let user = UserDatabase.user(named: executor.runAs.user) else {
            throw RunvoyError(
                .spawnFailed, "executor '\(executor.name)' runs as user '\(executor.runAs.user)', who does not exist",
                reason: "identity")
        }
        var gid = user.gid
        if let groupName = executor.runAs.group {
            guard let found = UserDatabase.groupID(named: groupName) else {
                throw RunvoyError(
                    .spawnFailed, "executor '\(executor.name)' runs as group '\(groupName)', which does not exist",
                    reason: "identity")
            }
            gid = found
        }
        let label = "\(user.name):\(UserDatabase.groupName(gid: gid) ?? String(gid))"
        if geteuid() != 0 {
            // An unprivileged daemon (development) can only run commands as itself.
            guard user.uid == geteuid() else {
                throw RunvoyError(
                    .spawnFailed, "runvoyd is not running as root and cannot run commands as '\(user.name)'",
                    reason: "identity")
            }
            return RunAsIdentity(identity: nil, label: label)
        }
        var groups = UserDatabase.groupIDs(user: user.name, primary: gid)
        if !groups.contains(gid) { groups.insert(gid, at: 0) }
        return RunAsIdentity(identity: SpawnRequest.Identity(uid: user.uid, gid: gid, groups: groups), label: label)
    }
}
