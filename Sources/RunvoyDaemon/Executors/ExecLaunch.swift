import CRunvoyPosix
import Glibc
import Logging
import NIOCore
import RunvoyKit
import RunvoyStore

/// Makes what one planned execution needs, in order, and owns it until the `Execution` does: its history row and
/// output recorder, its secret files, the two audit records that must be in the journal before the command exists
/// (fail-closed: what cannot be audited does not run), the process and its pipes. A failure at any stage releases
/// exactly what was made, in one place (`rollBack`), and says what the history and the audit trail record of it.
struct ExecLaunch: Sendable {
    /// The durable history every execution is recorded in, with its output.
    let store: ExecutionStore
    /// The secrets executors inject.
    let secrets: SecretStore
    let spawner: any ProcessSpawner
    /// Where the pipes' channels run.
    let group: any EventLoopGroup
    let logger: Logger
    /// Where audit records go (a test's own journal socket in tests).
    var journal: Journal = .shared
    /// What confines each execution's processes (chosen at start-up).
    var containment: any Containment = ProcessGroupContainment()
    /// Transient units for sandboxed executors; nil where the daemon offers none (their executions are refused).
    var units: UnitContainment?
    /// The hooks running now (shutdown kills those left after its grace).
    var runningHooks = RunningHooks()

    /// What a launch made, all of which the execution takes over.
    struct Launched: Sendable {
        let id: String
        let createdAtMs: Int64
        let startedAtMs: Int64
        let recorder: OutputRecorder
        let injection: SecretInjection
        let process: SpawnedProcess
        let pipes: ExecutionPipes
        let records: Execution.Records
        /// Every process of the execution (its cgroup, or what the subreaper finds).
        let scope: any ExecutionScope
    }

    /// What was made so far, for the rollback.
    private struct Made {
        let id: String
        let createdAtMs: Int64
        var recorder: OutputRecorder?
        var injection: SecretInjection?
        var fields: [(String, String)] = []
        var process: SpawnedProcess?
        var scope: (any ExecutionScope)?
    }

    /// Launches `plan`. An execution that waited in the queue has its id and its history row already
    /// (`queued`: made `running` by `ExecutionStore.dequeue` before this).
    func launch(
        _ plan: ExecPlan, queued: (id: String, createdAtMs: Int64)? = nil
    ) async throws(LaunchFailure)
        -> Launched
    {
        let createdAtMs = queued?.createdAtMs ?? WallClock.milliseconds()
        var made = Made(
            id: queued?.id ?? ExecutionID.make(milliseconds: UInt64(createdAtMs)), createdAtMs: createdAtMs)
        let audit = plan.auditLog(logger: logger, journal: journal)
        do throws(LaunchFailure.Stage) {
            let recorder =
                queued == nil
                ? try insert(plan, id: made.id, createdAtMs: createdAtMs)
                : store.makeRecorder(made.id, cap: plan.config.history.maxOutputBytes)
            made.recorder = recorder
            let hooksFailedOpen = try await runPreExecHooks(plan, id: made.id)
            let injection = try injectSecrets(plan, id: made.id)
            made.injection = injection
            made.fields = plan.startedFields(executionID: made.id)
            try await recordDecision(plan, id: made.id, hooksFailedOpen: hooksFailedOpen, audit: audit)
            let (process, scope) = try await startCommand(plan, injection, id: made.id)
            made.scope = scope
            made.process = process
            let startedAtMs = WallClock.milliseconds()
            let pipes = try await attachPipes(
                process, redaction: injection.redaction, holdStored: plan.executor.recordInput)
            return Launched(
                id: made.id, createdAtMs: createdAtMs, startedAtMs: startedAtMs, recorder: recorder,
                injection: injection, process: process, pipes: pipes,
                records: Execution.Records(store: store, audit: audit, fields: made.fields, logger: logger),
                scope: scope)
        } catch {
            rollBack(made, error, audit: audit)
            throw LaunchFailure(stage: error)
        }
    }

    /// The history records the execution before anything is audited or run: what cannot be recorded does not
    /// run. (Its output folder is created with the first chunk of output.)
    private func insert(_ plan: ExecPlan, id: String, createdAtMs: Int64) throws(LaunchFailure.Stage) -> OutputRecorder
    {
        do throws(StoreError) {
            try store.insert(plan.historyRow(id: id, status: .running, createdAtMs: createdAtMs))
        } catch {
            logger.error("cannot record an execution; refusing it", metadata: ["error": "\(error)"])
            throw .history(error)
        }
        return store.makeRecorder(id, cap: plan.config.history.maxOutputBytes)
    }

    /// The hooks that run as the execution runs: through the same spawner, stored with its history.
    var hooks: HookRunner {
        HookRunner(
            spawner: spawner, store: store, logger: logger, journal: journal,
            children: containment as? any ChildHolding, running: runningHooks)
    }

    /// `pre_exec` hooks, after the history row is written and before any secret exists: a refusal ends the
    /// execution before it starts (the slot it holds is held for at most the hooks' timeouts).
    /// Returns the names of the hooks that failed open (`on_error: allow`), for the decision record.
    private func runPreExecHooks(_ plan: ExecPlan, id: String) async throws(LaunchFailure.Stage) -> [String] {
        guard !HookRunner.hooks(.preExec, config: plan.config, executor: plan.executor).isEmpty else { return [] }
        let (refusal, failedOpen) = await hooks.runAll(.preExec, HookSubject(plan, id: id), config: plan.config)
        if let refusal { throw .vetoed(refusal) }
        return failedOpen
    }

    private func injectSecrets(_ plan: ExecPlan, id: String) throws(LaunchFailure.Stage) -> SecretInjection {
        let config = plan.config
        do throws(RunvoyError) {
            return try SecretInjection.prepare(
                executor: plan.executor, store: secrets, executionID: id,
                runtimeDirectory: config.secrets.runtimeDirectory,
                owner: plan.identity.map { (uid: $0.uid, gid: $0.gid) }, adminContact: config.adminContact,
                trustedWriter: { Authorizer.mayWriteInjectedSecrets(uid: $0, config) })
        } catch {
            throw .secrets(error)
        }
    }

    /// Both records are in the journal before the command exists: fail-closed means nothing runs unaudited.
    private func recordDecision(
        _ plan: ExecPlan, id: String, hooksFailedOpen: [String], audit: AuditLog
    ) async throws(LaunchFailure.Stage) {
        var allowed = plan.allowedRecord(executionID: id)
        if !hooksFailedOpen.isEmpty {
            allowed.fields.append(("HOOKS_FAILED_OPEN", hooksFailedOpen.joined(separator: ",")))
        }
        do throws(RunvoyError) {
            try await audit.record(allowed)
            try await audit.record(plan.startedRecord(executionID: id))
        } catch {
            throw .audit(error)
        }
    }

    /// Starts the command in its scope: a sandboxed executor's as a transient unit (`ExecLaunch+Unit`), any
    /// other's spawned in the scope the containment makes for it.
    private func startCommand(
        _ plan: ExecPlan, _ injection: SecretInjection, id: String
    ) async throws(LaunchFailure.Stage) -> (SpawnedProcess, any ExecutionScope) {
        if plan.executor.sandbox != nil { return try await startUnit(plan, injection, id: id) }
        let scope = try makeScope(plan, id: id)
        return (try spawn(plan, injection, scope: scope), scope)
    }

    /// The execution's scope (its cgroup, with the executor's limits), made before the command, which starts in it.
    private func makeScope(_ plan: ExecPlan, id: String) throws(LaunchFailure.Stage) -> any ExecutionScope {
        do throws(SpawnError) {
            return try containment.scope(executionID: id, executor: plan.executor, caller: plan.caller.uid)
        } catch {
            throw .spawn(error)
        }
    }

    private func spawn(
        _ plan: ExecPlan, _ injection: SecretInjection, scope: any ExecutionScope
    ) throws(LaunchFailure.Stage) -> SpawnedProcess {
        var environment = plan.environment
        for (key, value) in injection.environment { environment[key] = value }
        do throws(SpawnError) {
            let process = try spawner.spawn(
                SpawnRequest(
                    path: plan.command, argv: plan.launchArgv, environment: environment,
                    workingDirectory: plan.workingDirectory, identity: plan.identity, stdinPipe: plan.wantsStdin,
                    terminal: plan.terminal, hooks: scope.spawnHooks, resourceLimits: plan.executor.rlimits))
            scope.spawned(leader: process.pid)
            return process
        } catch {
            scope.spawned(leader: nil)
            throw .spawn(error)
        }
    }

    /// Releases what `made` holds, in the order a failure has always been recorded: the process killed and
    /// reaped, its `execution_finished` record (once `execution_started` is written), the recorder finished, the
    /// secret files removed, and the history row ended with why the command never ran.
    private func rollBack(_ made: Made, _ stage: LaunchFailure.Stage, audit: AuditLog) {
        if let process = made.process {
            // Its pipes (and a terminal's control descriptor) were closed by `attachPipes`; the process group goes, and the leader is reaped.
            _ = made.scope?.signalMain(process.pid, SIGKILL)
            made.scope?.kill()
            var exited: Int32 = 0
            var status: Int32 = 0
            _ = runvoy_pidfd_wait(process.pidfd, &exited, &status)
            close(process.pidfd)
            made.scope?.release()
        }
        if let record = stage.finishedRecord(executionID: made.id, fields: made.fields, pid: made.process?.pid) {
            audit.recordBestEffort(record)
        }
        made.recorder?.finish()
        made.injection?.cleanUp()
        let outcome = ExecutionStore.Outcome.notStarted(reason: stage.historyReason)
        do throws(StoreError) {
            try store.finish(made.id, outcome)
        } catch {
            // A row that could not be inserted was logged as such already.
            if case .history = stage { return }
            logger.error(
                "cannot record a failed start in the history",
                metadata: ["execution": "\(made.id)", "error": "\(error)"])
        }
    }
}
