import RunvoyConfig
import RunvoyKit

/// The policy methods: `explain`, `capabilities`, `users` and `reload`.
extension Connection {
    /// The refusal for a caller that lacks `permission` for `method`, audited as `request_denied`.
    func refuse(_ method: Method, _ permission: Permission, _ config: DaemonConfig) -> RunvoyError {
        let error = Authorizer.refusal(caller, permission, config)
        auditDenied(method, error)
        return error
    }

    /// Records a refused request (other than `exec`, `kill` and the secrets methods, which have records of
    /// their own) with the reason.
    func auditDenied(_ method: Method, _ error: RunvoyError, fields extra: [(String, String)] = []) {
        let hasRole = !Authorizer.roles(caller, context.config.current).isEmpty
        context.refusals.record(
            AuditEvent(
                .requestDenied, priority: 4,
                message: "refused \(caller.displayName) (uid \(caller.uid)) \(method.rawValue): \(error.message)",
                fields: [
                    ("METHOD", method.rawValue), ("CALLER_UID", String(caller.uid)),
                    ("CALLER_USER", caller.displayName), ("CALLER_PID", String(caller.pid)),
                    ("DECISION", "deny"), ("REASON", error.description),
                ] + extra),
            caller: caller, hasRole: hasRole, audit: AuditLog(failClosed: false, logger: context.logger))
    }

    func explain(_ params: ExplainParams, id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        let result: ExplainResult
        do throws(RunvoyError) {
            if let tooLarge = RequestLimits.refusal(argv: params.argv, config.limits) { throw tooLarge }
            guard Authorizer.permits(caller, .executorsRead, config) else {
                throw refuse(.explain, .executorsRead, config)
            }
            guard !params.argv.isEmpty, !params.argv[0].isEmpty else {
                throw RunvoyError(.badRequest, "argv must name a command")
            }
            var subject = caller
            if let user = params.user, user != caller.userName {
                guard Authorizer.permits(caller, .explainOthers, config) else {
                    throw refuse(.explain, .explainOthers, config)
                }
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
            result = ExplainResult(
                user: subject.displayName, roles: Authorizer.roles(subject, config).sorted().map(\.rawValue),
                executor: executor.name, decision: decision.allowed ? "allow" : "deny",
                code: decision.error?.code.rawValue, reason: decision.reason, rule: decision.rule)
        } catch {
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    func capabilities(id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        guard Authorizer.permits(caller, .executorsRead, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.capabilities, .executorsRead, config)))
            return
        }
        let roles = Authorizer.roles(caller, config)
        let executors = config.executors.filter { Authorizer.mayUse(caller, $0, config) }.map { executor in
            let rules: [RuleInfo]
            if case .any = executor.commands {
                rules = [RuleInfo(effect: "allow", pattern: "any", rule: nil)]
            } else {
                rules = executor.commands.rules.map {
                    RuleInfo(
                        effect: $0.effect.rawValue, pattern: $0.display, rule: Authorizer.location($0, config))
                }
            }
            return ExecutorCapability(
                name: executor.name, description: executor.description,
                isDefault: executor.name == config.defaultExecutorName,
                runAs: executor.runAs.user + (executor.runAs.group.map { ":" + $0 } ?? ""), rules: rules)
        }
        let result = CapabilitiesResult(
            user: caller.displayName, roles: roles.sorted().map(\.rawValue),
            permissions: PermissionTable.permissions(roles).map(\.rawValue), executors: executors)
        try await sink.send(Reply(id: id, result: result))
    }

    func users(id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        guard Authorizer.permits(caller, .usersRead, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.users, .usersRead, config)))
            return
        }
        let bindings = config.roles.map {
            BindingInfo(
                role: $0.role.rawValue, users: $0.users, groups: $0.groups,
                rule: "\(config.sourcePath ?? "(embedded configuration)"):\($0.line)")
        }
        let users = PolicyReport.knownUsers(config).compactMap { name -> UserRoles? in
            guard let subject = Caller.lookup(userName: name) else { return nil }
            return UserRoles(
                user: name, uid: subject.uid, roles: Authorizer.roles(subject, config).sorted().map(\.rawValue))
        }
        try await sink.send(Reply(id: id, result: UsersResult(bindings: bindings, users: users)))
    }

    func reload(id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        guard Authorizer.permits(caller, .configReload, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.reload, .configReload, config)))
            return
        }
        switch context.reloader.reload() {
        case .reloaded(let new):
            try await sink.send(
                Reply(
                    id: id,
                    result: ReloadResult(
                        configDigest: new.digest, policyDigest: PolicyReport.digest(new),
                        executors: new.executors.map(\.name))))
        case .rejected(let reason):
            try await sink.send(
                Reply<NoParams>(
                    id: id,
                    error: RunvoyError(
                        .invalidArgument, "the configuration was rejected; the previous one stays in force:\n\(reason)")
                ))
        case .noFile:
            try await sink.send(
                Reply<NoParams>(
                    id: id,
                    error: RunvoyError(
                        .invalidState, "runvoyd runs on its embedded configuration; there is no file to reload")))
        }
    }
}
