import RunvoyConfig
import RunvoyKit

/// `capabilities`: the caller's roles and permissions, the executors it may use with their command rules, and its
/// temporary grants in force with their expiry.
struct CapabilitiesHandler: MethodHandler {
    static let method = Method.capabilities.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<CapabilitiesResult> {
        try context.require(.executorsRead)
        let (caller, config) = (context.caller, context.config)
        let roles = Authorizer.roles(caller, config)
        let executors = config.executors.filter { Authorizer.mayUse(caller, $0, config) }.map {
            Self.capability($0, config)
        }
        var result = CapabilitiesResult(
            user: caller.displayName, roles: roles.sorted().map(\.rawValue),
            permissions: PermissionTable.permissions(roles).map(\.rawValue), executors: executors)
        result.containment = context.executions.containment.mode.rawValue
        result.grants = config.grants(of: caller.uid, atMs: WallClock.milliseconds()).map(Grants.info)
        let sandboxed = config.executors.filter { Authorizer.mayUse(caller, $0, config) }
        if let units = context.executions.units?.summary(sandboxed, detail: roles.contains(.admin)) {
            result.containment! += "; " + units
        }
        return .result(result)
    }

    private static func capability(_ executor: ExecutorConfig, _ config: DaemonConfig) -> ExecutorCapability {
        let rules: [RuleInfo]
        if case .any = executor.commands {
            rules = [RuleInfo(effect: "allow", pattern: "any", rule: nil)]
        } else {
            rules = executor.commands.rules.map {
                RuleInfo(
                    effect: $0.effect.rawValue, pattern: $0.display, rule: Authorizer.location($0, config),
                    approval: $0.approval?.display)
            }
        }
        var capability = ExecutorCapability(
            name: executor.name, description: executor.description,
            isDefault: executor.name == config.defaultExecutorName,
            runAs: executor.runAs.user + (executor.runAs.group.map { ":" + $0 } ?? ""), rules: rules,
            recordInput: executor.recordInput)
        capability.approval = executor.approval?.display
        return capability
    }
}
