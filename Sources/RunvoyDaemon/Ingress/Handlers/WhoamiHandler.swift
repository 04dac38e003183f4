import RunvoyKit

/// `whoami`: what the daemon sees of the caller, its roles and the executors it may use.
struct WhoamiHandler: MethodHandler {
    static let method = Method.whoami.rawValue
    /// A greeting keeps no connection from being idle.
    static let countsAsActivity = false
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<WhoamiResult> {
        let (caller, config) = (context.caller, context.config)
        let usable = config.executors.filter { Authorizer.mayUse(caller, $0, config) }.map(\.name)
        let roles = Authorizer.roles(caller, config)
        var result = WhoamiResult(
            uid: caller.uid, gid: caller.gid, pid: caller.pid, user: caller.userName, group: caller.groupName,
            groups: caller.groupNames, admin: roles.contains(.admin), pidfd: caller.hasPidfd, executors: usable,
            defaultExecutor: usable.contains(config.defaultExecutorName) ? config.defaultExecutorName : nil)
        result.roles = roles.sorted().map(\.rawValue)
        result.containment = context.executions.containment.mode.rawValue
        let sandboxed = config.executors.filter { usable.contains($0.name) }
        if let units = context.executions.units?.summary(sandboxed, detail: roles.contains(.admin)) {
            result.containment! += "; " + units
        }
        return .result(result)
    }
}
