import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// Runs a checked `PlaybookRun` on its client's connection: writes its start (audit first, fail-closed, then the
/// history), runs the steps in order, each a real execution through `ExecutionManager.start` whose output and
/// `exit` stream as an attached `exec`'s, with a `step` event for each step, and records the end.
///
/// The client going away (its connection closing, or half-closing) ends the run: the running step is killed, as
/// an `exec` with `kill_on_disconnect` is, the later steps are skipped, and the run ends `cancelled`. So does a
/// step the configuration in force no longer lets run as it was planned (see `PlaybookRun.replanned`).
struct PlaybookRunner: Sendable {
    let run: PlaybookRun
    let context: RequestContext
    /// The `exec_rate` token the run took (`ExecutionManager.meterRun`), given back for its first step to take.
    var prepaid: [RateBuckets.Key] = []

    /// Writes the `playbook_run_started` record (nothing runs without it), the run's history row, and sends
    /// `run_started`.
    func begin() async throws {
        let audit = context.auditor
        try await audit.record(startedRecord)
        let row = PlaybookRunRecord(
            id: run.id, playbook: run.playbook.name, callerUid: run.caller.uid, callerUser: run.caller.displayName,
            paramsJSON: run.valuesJSON, startedAtMs: WallClock.milliseconds(), schedule: run.schedule)
        do throws(StoreError) {
            try context.executions.store.insertRun(row)
        } catch {
            audit.recordBestEffort(finishedRecord(state: "failed", steps: []))
            throw RunvoyError(.storeUnavailable, "the run cannot be recorded in the history, so nothing ran: \(error)")
        }
        try? await context.sink.send(
            RunStartedEvent(id: context.id, runId: run.id, playbook: run.playbook.name, steps: run.steps.count))
    }

    /// Runs every step in order and records the end; returns the reply.
    func execute() async -> PlaybookRunResult {
        var outcomes: [PlaybookStepOutcome] = []
        var failed = false
        var cancelled = false
        var refunded = false
        // The run's locks, held from before the first step to after the last's hooks (none ran without them).
        let locks: UInt64?
        switch await holdLocks() {
        case .success(let ticket): locks = ticket
        case .failure(let error): return notStarted(error)
        }
        defer { context.executions.releaseRunLocks(locks) }
        for (index, step) in run.steps.enumerated() {
            cancelled = cancelled || context.activity.hangup.isClosed
            guard !cancelled, Self.runs(step.config.when, afterFailure: failed) else {
                let skipped = PlaybookStepOutcome(index: index, name: step.config.name, state: "skipped")
                outcomes.append(skipped)
                try? await context.sink.send(StepEvent(id: context.id, runId: run.id, step: skipped))
                continue
            }
            let first = !refunded
            if first {
                context.executions.refundRun(prepaid)
                refunded = true
            }
            let outcome: PlaybookStepOutcome
            do throws(RunvoyError) {
                let (current, config) = try run.replanned(index, context: context)
                outcome = await runStep(current, index: index, config: config)
            } catch {
                // The configuration in force no longer lets this step run as planned: the run ends here.
                outcome = PlaybookStepOutcome(index: index, name: step.config.name, state: "failed", error: error)
                cancelled = true
            }
            if first, outcome.executionId == nil {
                // The first step that ran did not start (it took no token): the run keeps its own spent.
                context.executions.respendRun(run)
            }
            outcomes.append(outcome)
            try? await context.sink.send(StepEvent(id: context.id, runId: run.id, step: outcome))
            if outcome.state == "failed" && !step.config.continueOnError { failed = true }
        }
        cancelled = cancelled || context.activity.hangup.isClosed
        let state = cancelled ? "cancelled" : failed ? "failed" : "succeeded"
        finish(state: state, steps: outcomes)
        return PlaybookRunResult(
            runId: run.id, playbook: run.playbook.name, state: state, steps: outcomes, callerUid: run.caller.uid,
            callerUser: run.caller.displayName, params: run.values)
    }

    /// Whether a step with condition `when` runs, given whether an earlier step failed (a failure under
    /// `continue_on_error` is not one; a skipped step counts as neither).
    static func runs(_ when: StepCondition, afterFailure failed: Bool) -> Bool {
        switch when {
        case .succeeded: !failed
        case .failed: failed
        case .always: true
        }
    }

    /// Starts one step's execution on the connection under `config` (the configuration in force) and waits for
    /// its end.
    func runStep(_ step: PlaybookRun.Step, index: Int, config: DaemonConfig) async -> PlaybookStepOutcome {
        let name = step.config.name
        let sink = context.sink.binaryOutput(step.params.binaryOutput ?? false)
        let events = context.sink
        let activity = context.activity
        let (id, runID) = (context.id, run.id)
        let client = ExecutionManager.QueueClient(
            send: { try await events.send($0) }, onHangup: { activity.hangup.on($0) },
            isGone: { activity.hangup.isClosed }, sendApproval: { try await events.send($0) })
        do {
            let execution = try await context.executions.start(
                step.params, requestID: id, caller: run.caller, config: config, sink: sink, client: client,
                step: step.context
            ) { execution in
                try await events.send(
                    StartedEvent(
                        id: id, executionId: execution.id, executor: execution.executorName, runAs: execution.runAs,
                        pid: execution.pid))
                let started = PlaybookStepOutcome(
                    index: index, name: name, state: "started", executionId: execution.id)
                try await events.send(StepEvent(id: id, runId: runID, step: started))
            }
            let undo = activity.hangup.on { execution.clientGone() }
            let exit = await execution.waitFinished()
            // The step ends with its `post_exec` hooks: until then the run keeps its locks (review 3, R3-M1).
            await context.executions.admissionReturned(execution)
            undo()
            let succeeded = exit.exitCode == 0 && !exit.timedOut
            return PlaybookStepOutcome(
                index: index, name: name, state: succeeded ? "succeeded" : "failed", executionId: execution.id,
                exitCode: exit.exitCode, signal: exit.signal)
        } catch {
            return PlaybookStepOutcome(index: index, name: name, state: "failed", error: error)
        }
    }

    /// Records the run's end in the history and the audit trail (best-effort: the steps have run).
    func finish(state: String, steps: [PlaybookStepOutcome]) {
        do throws(StoreError) {
            try context.executions.store.finishRun(
                run.id, state: state, atMs: WallClock.milliseconds(), stepsJSON: ExecutionStore.json(steps))
        } catch {
            context.logger.error("cannot record the end of a playbook run", metadata: ["run": "\(run.id)"])
        }
        context.auditor.recordBestEffort(finishedRecord(state: state, steps: steps))
    }

    /// The fields every record of the run has.
    var runFields: [(String, String)] {
        [("RUN_ID", run.id), ("PLAYBOOK", run.playbook.name), ("REQUEST_ID", run.requestID.description)]
            + context.callerFields
    }

    var startedRecord: AuditEvent {
        var fields = runFields + [("PARAMS", run.valuesJSON), ("STEP_COUNT", String(run.steps.count))]
        if let reason = run.reason, !reason.isEmpty { fields.append(("REASON_TEXT", reason)) }
        if let schedule = run.schedule { fields.append(("SCHEDULE", schedule)) }
        return AuditEvent(
            .playbookRunStarted,
            message: "playbook run \(run.id) of '\(run.playbook.name)' starting for \(context.who)", fields: fields)
    }

    func finishedRecord(state: String, steps: [PlaybookStepOutcome]) -> AuditEvent {
        let summary = steps.map { step in
            [step.name + "=" + step.state, step.executionId, step.exitCode.map(String.init)]
                .compactMap { $0 }.joined(separator: ":")
        }
        return AuditEvent(
            .playbookRunFinished, priority: state == "succeeded" ? 5 : 4,
            message: "playbook run \(run.id) of '\(run.playbook.name)' ended \(state)",
            fields: runFields + [("STATE", state), ("STEPS", summary.joined(separator: ","))])
    }
}
