import RunvoyConfig
import RunvoyKit

/// `explain`: whether `exec` would allow a command, for the caller or (with `explain_others`) another user, and
/// the rule that decides; nothing runs. With `playbook` and `step`: the command that step would run with
/// `params`, decided as the run would decide it (a `trusted` step is allowed past its executor's command rules,
/// and the reason says so).
struct ExplainHandler: MethodHandler {
    static let method = Method.explain.rawValue
    static let params = ParamsRule<ExplainParams>.required("explain needs params with argv")

    func handle(_ params: ExplainParams, context: RequestContext) async throws -> Outcome<ExplainResult> {
        let config = context.config
        if let tooLarge = RequestLimits.refusal(argv: params.argv, config.limits) { throw tooLarge }
        try context.require(.executorsRead)
        let subject = try Self.subject(params, context: context)
        if let playbook = params.playbook {
            return .result(try Self.explainStep(playbook, params, subject, context: context))
        }
        guard !params.argv.isEmpty, !params.argv[0].isEmpty else {
            throw RunvoyError(.badRequest, "argv must name a command")
        }
        let name = params.executor ?? config.defaultExecutorName
        guard let executor = config.executor(named: name) else {
            throw RunvoyError(.noSuchExecutor, "no executor named '\(name)'")
        }
        let decision = Authorizer.decide(caller: subject, executor: executor, argv: params.argv, config: config)
        return .result(Self.result(subject, executor, decision, config))
    }

    /// Who is asked about: the caller, or with `user` another user (needs `explain_others`).
    static func subject(_ params: ExplainParams, context: RequestContext) throws -> Caller {
        guard let user = params.user, user != context.caller.userName else { return context.caller }
        try context.require(.explainOthers)
        guard let other = Caller.lookup(userName: user) else {
            throw RunvoyError(.invalidArgument, "there is no user '\(user)'")
        }
        return other
    }

    /// A playbook's step. Asking about oneself, it is told only of a playbook one may run (else refused as
    /// `playbook_show` refuses: `permission_denied` without the exec permission, `no_such_playbook`,
    /// `permission_denied` outside its access list; audited), so nothing of a playbook leaks to who may not run
    /// it. An administrator asking about another user is told `deny` when that user may not run it. The values
    /// must bind (else `invalid_argument` listing every problem); then the rendered command is decided on the
    /// step's executor as the run decides it (a step whose rules need approval of their own is refused by a run).
    static func explainStep(
        _ name: String, _ params: ExplainParams, _ subject: Caller, context: RequestContext
    ) throws -> ExplainResult {
        guard params.argv.isEmpty, params.executor == nil else {
            throw RunvoyError(
                .invalidArgument, "explain a playbook's step without argv or executor: the step names them")
        }
        let config = context.config
        let playbook: PlaybookConfig
        if subject.uid == context.caller.uid {
            playbook = try context.runnablePlaybook(name)
        } else {
            guard let named = config.playbook(named: name) else {
                throw RunvoyError(.noSuchPlaybook, "no playbook named \(PlaybookAccess.label(name))")
            }
            playbook = named
        }
        guard let step = playbook.steps.first(where: { $0.name == params.step }) else {
            let names = playbook.steps.map(\.name).joined(separator: ", ")
            throw RunvoyError(
                .invalidArgument,
                "playbook '\(playbook.name)' has no step \(PlaybookAccess.label(params.step ?? "")): its steps are \(names)"
            )
        }
        let executorName = step.executor ?? config.defaultExecutorName
        guard let executor = config.executor(named: executorName) else {
            throw RunvoyError(.noSuchExecutor, "no executor named '\(executorName)'")
        }
        let arguments: PlaybookArguments
        switch PlaybookArguments.bind(params.params ?? [:], to: playbook, writer: subject.pathWriter) {
        case .success(let bound): arguments = bound
        case .failure(let error): throw error.runvoyError
        }
        var result = result(subject, executor, decision(subject, playbook, step, executor, arguments, config), config)
        result.argv = arguments.argv(of: step)
        result.trusted = step.trusted
        return result
    }

    /// What a run would decide of `step` for `subject`.
    static func decision(
        _ subject: Caller, _ playbook: PlaybookConfig, _ step: PlaybookStep, _ executor: ExecutorConfig,
        _ arguments: PlaybookArguments, _ config: DaemonConfig
    ) -> Authorizer.Decision {
        guard PlaybookAccess.mayRun(subject, playbook, config) else {
            return .deny(.permissionDenied, "user \(subject.displayName) may not run playbook '\(playbook.name)'")
        }
        let trusted = step.trusted ? "step '\(step.name)' of playbook '\(playbook.name)'" : nil
        let decision = Authorizer.decide(
            caller: subject, executor: executor, argv: arguments.argv(of: step), config: config, trusted: trusted)
        if decision.allowed, let policy = decision.approval {
            return .deny(
                .permissionDenied,
                "step '\(step.name)' needs approval (\(policy.display)) by its executor's rules; steps that need approval of their own are not supported in playbooks yet, so a run is refused"
            )
        }
        return decision
    }

    static func result(
        _ subject: Caller, _ executor: ExecutorConfig, _ decision: Authorizer.Decision, _ config: DaemonConfig
    ) -> ExplainResult {
        ExplainResult(
            user: subject.displayName, roles: Authorizer.roles(subject, config).sorted().map(\.rawValue),
            executor: executor.name, decision: decision.allowed ? "allow" : "deny",
            code: decision.error?.code.rawValue, reason: decision.reason, rule: decision.rule,
            approval: decision.approval?.display)
    }
}
