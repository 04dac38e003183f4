import RunvoyKit

/// `explain`: whether `exec` would allow a command, for the caller or (with `explain_others`) another user, and
/// the rule that decides; nothing runs.
struct ExplainHandler: MethodHandler {
    static let method = Method.explain.rawValue
    static let params = ParamsRule<ExplainParams>.required("explain needs params with argv")

    func handle(_ params: ExplainParams, context: RequestContext) async throws -> Outcome<ExplainResult> {
        let config = context.config
        if let tooLarge = RequestLimits.refusal(argv: params.argv, config.limits) { throw tooLarge }
        try context.require(.executorsRead)
        guard !params.argv.isEmpty, !params.argv[0].isEmpty else {
            throw RunvoyError(.badRequest, "argv must name a command")
        }
        var subject = context.caller
        if let user = params.user, user != context.caller.userName {
            try context.require(.explainOthers)
            guard let other = Caller.lookup(userName: user) else {
                throw RunvoyError(.invalidArgument, "there is no user '\(user)'")
            }
            subject = other
        }
        let name = params.executor ?? config.defaultExecutorName
        guard let executor = config.executor(named: name) else {
            throw RunvoyError(.noSuchExecutor, "no executor named '\(name)'")
        }
        let decision = Authorizer.decide(caller: subject, executor: executor, argv: params.argv, config: config)
        return .result(
            ExplainResult(
                user: subject.displayName, roles: Authorizer.roles(subject, config).sorted().map(\.rawValue),
                executor: executor.name, decision: decision.allowed ? "allow" : "deny",
                code: decision.error?.code.rawValue, reason: decision.reason, rule: decision.rule,
                approval: decision.approval?.display))
    }
}
