import Glibc
import RunvoyConfig
import RunvoyKit

extension ExecPlan {
    /// Checks and decides `params` for `caller` under `config`, creating nothing: the request's size and shape,
    /// the executor, the decision (role, access, command rules), the environment and timeout the executor
    /// accepts, that the command exists and the run-as identity does, and the permission to use its secrets.
    /// The first check that fails is the refusal, with the audit fields known by then. A playbook's `step` adds
    /// its run, its locks and its trust (see `PlaybookStepContext`).
    static func make(
        _ params: ExecParams, requestID: RequestID?, caller: Caller, config: DaemonConfig,
        step: PlaybookStepContext? = nil
    ) throws(ExecRefusal) -> ExecPlan {
        let argv = params.argv
        let executorName = params.executor ?? config.defaultExecutorName
        var fields = requestFields(params, requestID: requestID, caller: caller, executorName: executorName)
        fields += step?.auditFields ?? []
        func refuse(_ error: RunvoyError) -> ExecRefusal {
            ExecRefusal(error: error, fields: fields, argv: argv, executorName: executorName)
        }
        if let invalid = validate(params, config.limits) { throw refuse(invalid) }
        guard var executor = config.executor(named: executorName) else {
            throw refuse(RunvoyError(.noSuchExecutor, "no executor named '\(executorName)'"))
        }
        if let step { executor.locks = step.locks(with: executor.locks) }
        let runAs = Result { () throws(RunvoyError) in try RunAsIdentity.resolve(executor) }
        let command = ResolvedCommand(
            argv[0], searchPath: executor.environment["PATH"], workingDirectory: executor.workingDirectory,
            as: try? runAs.get().identity)
        let decision = Authorizer.decide(
            caller: caller, executor: executor, argv: argv, command: judged(command, on: executor), config: config,
            trusted: step?.trustLabel)
        if let rule = decision.rule { fields.append(("RULE", rule)) }
        if let error = decision.error { throw refuse(error) }
        if let invalid = reasonRefusal(params.reason, decision.approval, executor) { throw refuse(invalid) }
        var environment: [String: String]
        let timeout: Duration?
        let path: String
        let identity: RunAsIdentity
        let terminal: TerminalSize?
        do throws(RunvoyError) {
            terminal = try Self.terminal(params.tty, on: executor)
            environment = try Authorizer.environment(params.env, on: executor)
            if let term = params.tty?.term, executor.allowsEnv("TERM"), params.env?["TERM"] == nil {
                environment["TERM"] = term
            }
            timeout = try Authorizer.timeout(milliseconds: params.timeoutMs, on: executor)
            path = try executable(command, on: executor)
            identity = try runAs.get()
        } catch {
            throw refuse(error)
        }
        if !executor.secretNames.isEmpty {
            fields.append(("SECRETS", executor.secretNames.sorted().joined(separator: ",")))
            guard Authorizer.permits(caller, .secretsUse, config) else {
                throw refuse(Authorizer.refusal(caller, .secretsUse, config))
            }
        }
        var plan = ExecPlan(
            requestID: requestID, caller: caller, argv: argv, executor: executor, identity: identity.identity,
            runAs: identity.label, command: path, environment: environment,
            envKeys: (params.env ?? [:]).keys.sorted(), timeout: timeout, decision: decision,
            reason: params.reason.flatMap { $0.isEmpty ? nil : $0 },
            wantsStdin: params.stdin ?? false && !(params.detach ?? false),
            killOnDisconnect: params.killOnDisconnect ?? false, terminal: terminal, config: config,
            auditFields: fields)
        plan.playbookStep = step
        return plan
    }

    /// The terminal the executor gives the command: the one asked for, unless it says `deny`; `require` refuses a
    /// request without one.
    static func terminal(_ asked: TerminalParams?, on executor: ExecutorConfig) throws(RunvoyError) -> TerminalSize? {
        if executor.sandbox != nil, asked != nil {
            throw RunvoyError(
                .permissionDenied, "executor '\(executor.name)' is sandboxed: its commands run without a terminal")
        }
        switch (executor.tty, asked) {
        case (.deny, .some):
            throw RunvoyError(.permissionDenied, "executor '\(executor.name)' does not give commands a terminal")
        case (.require, nil):
            throw RunvoyError(
                .permissionDenied, "executor '\(executor.name)' runs commands only on a terminal (exec -t)")
        case (_, nil):
            return nil
        case (_, .some(let tty)):
            guard let size = TerminalSize(rows: tty.rows, cols: tty.cols) else {
                throw RunvoyError(.invalidArgument, "a terminal has 1 to 10000 rows and columns")
            }
            return size
        }
    }

    /// What the command rules judge. `command` was found once, as the run-as user (a path that user cannot reach
    /// is "not found" like one that does not exist): the rules are checked against it, and it is what runs. When
    /// that user finds nothing, nothing runs; the rules then judge what a search as the daemon finds, as they
    /// always have, so a refusal names the same rule (or the missing command) as before.
    static func judged(_ command: ResolvedCommand, on executor: ExecutorConfig) -> ResolvedCommand {
        guard command.identity == nil, command.searchedAs != nil else { return command }
        return ResolvedCommand(
            command.typed, searchPath: executor.environment["PATH"], workingDirectory: executor.workingDirectory)
    }

    /// The audit fields of the request as it came: who asked, on which executor, for what.
    static func requestFields(
        _ params: ExecParams, requestID: RequestID?, caller: Caller, executorName: String
    ) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("REQUEST_ID", requestID?.description ?? ""),
            ("CALLER_UID", String(caller.uid)),
            ("CALLER_GID", String(caller.gid)),
            ("CALLER_USER", caller.displayName),
            ("CALLER_PID", String(caller.pid)),
            ("EXECUTOR", executorName),
            ("ARGV", JSONText.array(params.argv)),
        ]
        if let env = params.env, !env.isEmpty {
            fields.append(("ENV_KEYS", env.keys.sorted().joined(separator: ",")))
        }
        return fields
    }

    /// What is wrong with the request itself, before any policy: its size, and what exec could not carry.
    static func validate(_ params: ExecParams, _ limits: Limits) -> RunvoyError? {
        let argv = params.argv
        if let tooLarge = RequestLimits.refusal(argv: argv, env: params.env, limits) { return tooLarge }
        guard !argv.isEmpty, !argv[0].isEmpty else { return RunvoyError(.badRequest, "argv must name a command") }
        // exec would cut a string at its first NUL; refuse rather than run something other than what is audited.
        guard !argv.contains(where: { $0.utf8.contains(0) }) else {
            return RunvoyError(.badRequest, "an argument contains a NUL byte")
        }
        if let term = params.tty?.term, term.utf8.count > 256 || term.utf8.contains(0) {
            return RunvoyError(.badRequest, "tty.term is at most 256 bytes without NUL")
        }
        for (key, value) in params.env ?? [:] where !isEnvironmentName(key) || value.utf8.contains(0) {
            return RunvoyError(
                .badRequest, "environment names are letters, digits and '_' (not first), and values have no NUL")
        }
        return nil
    }

    /// The longest reason a request may give, in UTF-8 bytes.
    static let maxReasonBytes = 1024

    /// What is wrong with a request's reason: too long, control characters, or missing where the approval
    /// policy requires one.
    static func reasonRefusal(
        _ reason: String?, _ approval: ApprovalPolicy?, _ executor: ExecutorConfig
    ) -> RunvoyError? {
        guard let reason, !reason.isEmpty else {
            return approval?.reasonRequired == true
                ? RunvoyError(.invalidArgument, "executor '\(executor.name)' requires --reason for this command") : nil
        }
        guard reason.utf8.count <= maxReasonBytes else {
            return RunvoyError(.invalidArgument, "a reason is at most \(maxReasonBytes) bytes")
        }
        guard !reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            return RunvoyError(.invalidArgument, "a reason has no control characters (newlines, escapes)")
        }
        return nil
    }

    /// The path to execute, or why there is none: `not_executable` when something is there that cannot be
    /// executed, else `not_found` (as a shell's 126 and 127).
    static func executable(_ command: ResolvedCommand, on executor: ExecutorConfig) throws(RunvoyError) -> String {
        if let identity = command.identity { return identity }
        if command.outcome == .notExecutable {
            throw RunvoyError(
                .spawnFailed, "not an executable file on executor '\(executor.name)': \(command.typed)",
                reason: "not_executable")
        }
        throw RunvoyError(
            .spawnFailed, "command not found on executor '\(executor.name)': \(command.typed)", reason: "not_found")
    }

    /// A portable environment variable name: letters, digits and underscores, not starting with a digit.
    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F
        }
    }
}
