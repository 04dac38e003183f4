import Glibc
import RunvoyConfig
import RunvoyKit

extension PlaybookRun {
    /// Checks `request` for the caller of `context` and plans every step; throws the refusal (audited) before
    /// anything runs: access, parameters (every problem listed), the schedule's caller, then each step's plan
    /// exactly as `exec` would judge it (its refusal is audited as an `exec` refusal).
    static func prepare(_ request: PlaybookRunParams, context: RequestContext) throws -> PlaybookRun {
        let playbook = try context.runnablePlaybook(request.name)
        let given = try scheduledValues(request, playbook, context: context)
        let arguments: PlaybookArguments
        switch PlaybookArguments.bind(given, to: playbook, writer: context.caller.pathWriter) {
        case .success(let bound): arguments = bound
        case .failure(let error): throw context.denied(error.runvoyError, fields: [("PLAYBOOK", playbook.name)])
        }
        let id = "run-" + ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds()))
        var planned: [(step: PlaybookStep, params: ExecParams)] = []
        var executors: [ExecutorConfig] = []
        for (index, step) in playbook.steps.enumerated() {
            let stepContext = PlaybookStepContext(
                runID: id, playbook: playbook.name, step: step.name, trusted: step.trusted, locks: [],
                definition: playbook)
            let params = execParams(step, argv: arguments.argv(of: step), request: request)
            let plan = try check(
                params, stepContext, index: index, of: playbook, config: context.config, context: context)
            executors += context.config.executors.filter { $0.name == plan.executor.name }
            planned.append((step, params))
        }
        let locks = runLocks(playbook.locks, steps: executors)
        let steps = planned.map { step, params in
            Step(
                config: step, params: params,
                context: PlaybookStepContext(
                    runID: id, playbook: playbook.name, step: step.name, trusted: step.trusted, locks: locks,
                    definition: playbook))
        }
        return PlaybookRun(
            id: id, playbook: playbook, values: arguments.values, steps: steps, locks: locks, caller: context.caller,
            config: context.config, requestID: context.id, reason: request.reason,
            schedule: request.schedule == true ? playbook.name : nil)
    }

    /// The locks a run holds from before its first step to after its last: none when the playbook names none
    /// (each step then takes its executor's locks for itself); else the playbook's and every lock its steps'
    /// executors name, all taken at once, so that a run never holds some locks while it waits for others (two
    /// runs could wait for each other for ever), each exclusive when anyone names it so.
    static func runLocks(_ locks: [ExecutorLock], steps executors: [ExecutorConfig]) -> [ExecutorLock] {
        guard !locks.isEmpty else { return [] }
        var shared: [String: Bool] = [:]
        for lock in locks + executors.flatMap(\.locks) {
            shared[lock.name] = (shared[lock.name] ?? true) && lock.shared
        }
        return shared.map { ExecutorLock(name: $0.key, shared: $0.value) }.sorted { $0.name < $1.name }
    }

    /// What a step's execution is asked: its argv on its executor, its timeout, no input, killed when the run's
    /// client goes, waiting in the queue (for its executor's slots and locks) as `exec --wait` does.
    static func execParams(_ step: PlaybookStep, argv: [String], request: PlaybookRunParams) -> ExecParams {
        var params = ExecParams(
            argv: argv, executor: step.executor, timeoutMs: step.timeout.map { ExecPlan.micros($0) / 1000 },
            killOnDisconnect: true, stdin: false, binaryOutput: request.binaryOutput, wait: true)
        params.reason = request.reason
        return params
    }

    /// Plans one step under `config` as `exec` would, and returns its plan; a refusal is audited as `exec`'s and
    /// refuses the run, naming the step.
    @discardableResult
    static func check(
        _ params: ExecParams, _ step: PlaybookStepContext, index: Int, of playbook: PlaybookConfig,
        config: DaemonConfig, context: RequestContext, outcome: String = "so nothing ran"
    ) throws(RunvoyError) -> ExecPlan {
        let plan: ExecPlan
        do throws(ExecRefusal) {
            plan = try ExecPlan.make(params, requestID: context.id, caller: context.caller, config: config, step: step)
        } catch {
            let denied = context.executions.deny(error, caller: context.caller, config: config)
            throw RunvoyError(
                denied.code,
                "step '\(step.step)' (\(index + 1) of \(playbook.steps.count)) of playbook '\(playbook.name)' is refused, \(outcome): \(denied.message)"
            )
        }
        if let policy = plan.decision.approval {
            throw RunvoyError(
                .permissionDenied,
                "step '\(step.step)' of playbook '\(playbook.name)' needs approval (\(policy.display)) by its executor's rules; steps that need approval of their own are not supported in playbooks yet (give the playbook an approval instead), \(outcome)"
            )
        }
        return plan
    }

    /// The values the run binds: the request's, or, for `schedule`, the schedule's from the configuration, which
    /// only the schedule's own user may fire (else `permission_denied`, audited).
    static func scheduledValues(
        _ request: PlaybookRunParams, _ playbook: PlaybookConfig, context: RequestContext
    ) throws -> [String: String] {
        guard request.schedule == true else { return request.params ?? [:] }
        guard let schedule = playbook.schedule else {
            throw RunvoyError(.invalidArgument, "playbook '\(playbook.name)' has no schedule")
        }
        guard (request.params ?? [:]).isEmpty else {
            throw RunvoyError(
                .invalidArgument, "a scheduled run takes its parameters from the configuration: give none")
        }
        guard let user = Caller.lookup(userName: schedule.runAsCaller), user.uid == context.caller.uid else {
            let reason = RunvoyError(
                .permissionDenied,
                "only \(schedule.runAsCaller), the user of its schedule, may run playbook '\(playbook.name)' as scheduled"
            )
            throw context.denied(reason, fields: [("PLAYBOOK", playbook.name), ("SCHEDULE", playbook.name)])
        }
        return schedule.params
    }
}
