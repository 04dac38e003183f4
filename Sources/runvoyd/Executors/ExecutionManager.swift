import CRunvoyPosix
import Glibc
import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// Starts executions after the policy and audit checks, keeps the set of running ones, and drains them at shutdown.
final class ExecutionManager: Sendable {
    private struct State: ~Copyable {
        var running: [String: Execution] = [:]
        var shuttingDown = false
        var started = 0
    }

    private let state = Mutex(State())
    private let group: any EventLoopGroup
    private let logger: Logger
    /// The durable history every execution is recorded in, with its output.
    let store: ExecutionStore
    /// The secrets executors inject.
    let secrets: SecretStore
    /// Called whenever the number of running executions changes (for sd_notify STATUS=).
    private let onChange: @Sendable (Int) -> Void
    /// How long output is still read after a command exited while something else holds its pipes.
    let drainGrace: Duration
    /// Bounds the refusal records one user can write.
    let refusals: RefusalThrottle

    init(
        group: any EventLoopGroup, logger: Logger, store: ExecutionStore, secrets: SecretStore,
        refusals: RefusalThrottle, drainGrace: Duration = .seconds(2), onChange: @escaping @Sendable (Int) -> Void
    ) {
        self.refusals = refusals
        self.group = group
        self.logger = logger
        self.store = store
        self.secrets = secrets
        self.drainGrace = drainGrace
        self.onChange = onChange
    }

    var runningCount: Int { state.withLock { $0.running.count } }

    /// A running execution by id.
    func running(id: String) -> Execution? { state.withLock { $0.running[id] } }
    var startedCount: Int { state.withLock { $0.started } }

    /// Authorizes, audits and starts `params` for `caller`. Every refusal is audited and thrown as a wire error.
    /// `onStarted` runs after the command is allowed, audited and spawned, before it runs and before any output.
    func start(
        _ params: ExecParams, requestID: RequestID?, caller: Caller, config: DaemonConfig, sink: (any OutputSink)?,
        onStarted: @Sendable (Execution) async throws -> Void
    ) async throws(RunvoyError) -> Execution {
        let audit = AuditLog(
            failClosed: config.audit.failClosed, writeTimeout: config.audit.writeTimeout, logger: logger)
        let argv = params.argv
        let executorName = params.executor ?? config.defaultExecutorName
        var fields: [(String, String)] = [
            ("REQUEST_ID", requestID?.description ?? ""),
            ("CALLER_UID", String(caller.uid)),
            ("CALLER_GID", String(caller.gid)),
            ("CALLER_USER", caller.displayName),
            ("CALLER_PID", String(caller.pid)),
            ("EXECUTOR", executorName),
            ("ARGV", JSONText.array(argv)),
        ]
        if let env = params.env, !env.isEmpty {
            fields.append(("ENV_KEYS", env.keys.sorted().joined(separator: ",")))
        }

        func deny(_ error: RunvoyError) -> RunvoyError {
            // A refused argv is recorded within a bound (a prefix, its length and SHA-256), and one user's
            // refusals within a rate: a refusal costs its caller nothing, and must not flood the journal.
            let hasRole = !Authorizer.roles(caller, config).isEmpty
            let bound = hasRole ? RefusalThrottle.argvBytesWithRole : RefusalThrottle.argvBytesWithoutRole
            var denial = fields.filter { $0.0 != "ARGV" && $0.0 != "ENV_KEYS" }
            denial += RefusalThrottle.boundedArgv(argv, limit: bound)
            if let env = params.env, !env.isEmpty {
                let keys = env.keys.sorted().joined(separator: ",")
                denial.append(("ENV_KEYS", keys.utf8.count <= bound ? keys : String(keys.prefix(bound)) + "…"))
            }
            denial.append(("DECISION", "deny"))
            denial.append(("REASON", "\(error.code.rawValue): \(error.message)"))
            let record = AuditEvent(
                .decision, priority: 4,
                message: "denied \(caller.displayName) (uid \(caller.uid)) exec on '\(executorName)': \(error.message)",
                fields: denial)
            // A denial stands whether or not its record is written.
            refusals.record(record, caller: caller, hasRole: hasRole, audit: audit)
            return error
        }

        if let tooLarge = RequestLimits.refusal(argv: argv, env: params.env, config.limits) { throw deny(tooLarge) }
        guard !argv.isEmpty, !argv[0].isEmpty else {
            throw deny(RunvoyError(.badRequest, "argv must name a command"))
        }
        // exec would cut a string at its first NUL; refuse rather than run something other than what is audited.
        guard !argv.contains(where: { $0.utf8.contains(0) }) else {
            throw deny(RunvoyError(.badRequest, "an argument contains a NUL byte"))
        }
        for (key, value) in params.env ?? [:] where !Self.isEnvironmentName(key) || value.utf8.contains(0) {
            throw deny(
                RunvoyError(
                    .badRequest, "environment names are letters, digits and '_' (not first), and values have no NUL"))
        }
        guard let executor = config.executor(named: executorName) else {
            throw deny(RunvoyError(.noSuchExecutor, "no executor named '\(executorName)'"))
        }
        let workingDirectory = executor.workingDirectory
        let runAsIdentity = Result { () throws(RunvoyError) in try Self.resolveIdentity(executor) }
        // What runs is the command's identity (directories resolved, file name kept), which is what the rules
        // were checked against: a link the caller swaps after the check cannot change the program. It is looked
        // up as the run-as user, so a path that user cannot reach is "not found" like one that does not exist.
        let search = CommandResolver.search(
            argv[0], searchPath: executor.environment["PATH"], workingDirectory: workingDirectory,
            as: try? runAsIdentity.get().0)
        var resolved: String?
        if case .found(let path) = search { resolved = CommandMatcher.identity(path) }
        let decision = Authorizer.decide(caller: caller, executor: executor, argv: argv, config: config)
        if let rule = decision.rule { fields.append(("RULE", rule)) }
        if let error = decision.error { throw deny(error) }

        var environment = executor.environment
        for (key, value) in params.env ?? [:] {
            guard executor.allowsEnv(key) else {
                throw deny(RunvoyError(.permissionDenied, "executor '\(executor.name)' does not accept --env \(key)"))
            }
            environment[key] = value
        }
        var timeout = executor.defaultTimeout
        if let requested = params.timeoutMs {
            guard requested > 0 else {
                throw deny(RunvoyError(.invalidArgument, "timeout must be positive"))
            }
            let duration = Duration.milliseconds(requested)
            if let maximum = executor.maxTimeout, duration > maximum {
                throw deny(
                    RunvoyError(
                        .invalidArgument,
                        "timeout \(DurationParser.format(duration)) exceeds executor '\(executor.name)' maximum of \(DurationParser.format(maximum))"
                    ))
            }
            timeout = duration
        }
        guard let path = resolved else {
            if search == .notExecutable {
                throw deny(
                    RunvoyError(
                        .spawnFailed, "not an executable file on executor '\(executor.name)': \(argv[0])",
                        reason: "not_executable"))
            }
            throw deny(
                RunvoyError(
                    .spawnFailed, "command not found on executor '\(executor.name)': \(argv[0])", reason: "not_found"))
        }
        let identity: SpawnRequest.Identity?
        let runAs: String
        do throws(RunvoyError) {
            (identity, runAs) = try runAsIdentity.get()
        } catch {
            throw deny(error)
        }
        if !executor.secretNames.isEmpty {
            fields.append(("SECRETS", executor.secretNames.sorted().joined(separator: ",")))
            guard Authorizer.permits(caller, .secretsUse, config) else {
                throw deny(Authorizer.refusal(caller, .secretsUse, config))
            }
        }
        let admitted = state.withLock { state -> RunvoyError? in
            if state.shuttingDown { return RunvoyError(.busy, "runvoyd is shutting down") }
            if state.running.count >= config.limits.maxExecutions {
                return RunvoyError(
                    .busy, "runvoyd is at its limit of \(config.limits.maxExecutions) running executions")
            }
            return nil
        }
        if let admitted { throw deny(admitted) }

        // A reserve of free space keeps room for running executions' output and ends: new ones are refused first.
        let reserve = config.history.minFreeBytes
        if reserve > 0, let free = store.freeBytes, free < reserve {
            logger.warning(
                "refusing executions: the state directory is nearly full",
                metadata: ["free_bytes": "\(free)", "min_free_bytes": "\(reserve)"])
            throw deny(
                RunvoyError(
                    .storeUnavailable,
                    "the execution history is nearly out of space (\(free >> 20) MiB free, below the reserve of \(reserve >> 20) MiB); nothing was run"
                ))
        }
        let createdAtMs = WallClock.milliseconds()
        let id = ExecutionID.make(milliseconds: UInt64(createdAtMs))
        // The history records the execution before anything is audited or run: what cannot be recorded
        // does not run. (Its output folder is created with the first chunk.)
        let recorder: OutputRecorder
        do throws(StoreError) {
            try store.insert(
                ExecutionInfo(
                    executionId: id, status: .running, callerUid: caller.uid, callerUser: caller.displayName,
                    callerPid: caller.pid, executor: executor.name, runAs: runAs, argv: argv,
                    workingDirectory: workingDirectory, envKeys: (params.env ?? [:]).keys.sorted(), pid: nil,
                    exitCode: nil, signal: nil, createdAtMs: createdAtMs, startedAtMs: nil, finishedAtMs: nil,
                    durationUsec: nil, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0,
                    outputPruned: false, configDigest: config.digest, reason: nil))
            recorder = store.makeRecorder(id, cap: config.history.maxOutputBytes)
        } catch {
            logger.error("cannot record an execution; refusing it", metadata: ["error": "\(error)"])
            try? store.finish(id, Self.notStarted(reason: "store_unavailable: \(error.message)"))
            throw deny(RunvoyError(.storeUnavailable, "the execution history cannot be written; nothing was run"))
        }
        let injection: SecretInjection
        do throws(RunvoyError) {
            injection = try SecretInjection.prepare(
                executor: executor, store: secrets, executionID: id,
                runtimeDirectory: config.secrets.runtimeDirectory,
                owner: identity.map { (uid: $0.uid, gid: $0.gid) }, adminContact: config.adminContact,
                trustedWriter: { Authorizer.mayWriteInjectedSecrets(uid: $0, config) })
        } catch {
            recorder.finish()
            recordNotStarted(id, reason: "\(error.code.rawValue): \(error.message)")
            throw deny(error)
        }
        for (key, value) in injection.environment { environment[key] = value }
        fields.insert(("EXECUTION_ID", id), at: 0)
        fields.append(("RUN_AS", runAs))
        fields.append(("COMMAND_PATH", path))
        fields.append(("CWD", workingDirectory))
        if let timeout { fields.append(("TIMEOUT_USEC", String(Self.micros(timeout)))) }

        var allowed = fields
        allowed.append(("DECISION", "allow"))
        allowed.append(("REASON", decision.reason))
        do throws(RunvoyError) {
            try await audit.record(
                AuditEvent(
                    .decision,
                    message:
                        "allowed \(caller.displayName) (uid \(caller.uid)) exec on '\(executor.name)' as \(runAs): \(JSONText.array(argv))",
                    fields: allowed))

            // Both records are in the journal before the command exists: fail-closed means nothing runs unaudited.
            try await audit.record(
                AuditEvent(
                    .executionStarted,
                    message: "execution \(id) starting for \(caller.displayName) on '\(executor.name)' as \(runAs)",
                    fields: fields))
        } catch {
            recorder.finish()
            injection.cleanUp()
            recordNotStarted(id, reason: "\(error.code.rawValue): \(error.message)")
            throw error
        }

        let wantsStdin = params.stdin ?? false && !(params.detach ?? false)
        let spawned: SpawnedProcess
        do throws(RunvoyError) {
            spawned = try Spawner.spawn(
                SpawnRequest(
                    path: path, argv: argv, environment: environment, workingDirectory: workingDirectory,
                    identity: identity, stdinPipe: wantsStdin))
        } catch {
            audit.recordBestEffort(
                AuditEvent(
                    .executionFinished, priority: 4, message: "execution \(id) failed to start: \(error.message)",
                    fields: fields + [("REASON", "spawn_failed: \(error.message)")]))
            recorder.finish()
            injection.cleanUp()
            recordNotStarted(id, reason: "spawn_failed: \(error.message)")
            throw error
        }
        let startedAtMs = WallClock.milliseconds()

        let channels: (NIOAsyncChannel<ByteBuffer, Never>, NIOAsyncChannel<ByteBuffer, Never>, (any Channel)?)
        do {
            channels = try await attachPipes(spawned, redaction: injection.redaction)
        } catch {
            kill(-spawned.pid, SIGKILL)
            var exited: Int32 = 0
            var status: Int32 = 0
            _ = runvoy_pidfd_wait(spawned.pidfd, &exited, &status)
            close(spawned.pidfd)
            audit.recordBestEffort(
                AuditEvent(
                    .executionFinished, priority: 4, message: "execution \(id) was killed at start: \(error)",
                    fields: fields + [("PID", String(spawned.pid)), ("REASON", "pipes: \(error)")]))
            recorder.finish()
            injection.cleanUp()
            recordNotStarted(id, reason: "pipes: \(error)")
            throw RunvoyError(.spawnFailed, "cannot set up the command's pipes: \(error)", reason: "resources")
        }

        let execution = Execution(
            id: id, requestID: requestID, caller: caller, executorName: executor.name, runAs: runAs, argv: argv,
            path: path, pid: spawned.pid, killOnDisconnect: params.killOnDisconnect ?? false, timeout: timeout,
            killGrace: config.killGrace, sink: sink, stdin: channels.2, recorder: recorder,
            createdAtMs: createdAtMs, startedAtMs: startedAtMs, secrets: injection)
        let count = state.withLock { state -> Int in
            state.running[id] = execution
            state.started += 1
            return state.running.count
        }
        onChange(count)
        do {
            try await onStarted(execution)
        } catch {
            execution.clientGone()
        }
        let finishFields = fields
        let pidfd = spawned.pidfd
        let drainGrace = drainGrace
        let store = store
        let logger = logger
        Task {
            // The pid and start time reach the history as soon as the process exists (off the request's path), so
            // a daemon that dies now still finds, and ends, the process at its next start.
            do throws(StoreError) {
                try store.started(
                    execution.id, pid: execution.pid, atMs: execution.startedAtMs,
                    startTicks: LostProcess.read(execution.pid)?.startTicks, bootID: LostProcess.bootID)
            } catch {
                logger.warning(
                    "cannot record an execution's pid", metadata: ["execution": "\(execution.id)", "error": "\(error)"])
            }
            await execution.run(stdout: channels.0, stderr: channels.1, pidfd: pidfd, drainGrace: drainGrace) {
                execution, event in
                self.finished(execution, event, fields: finishFields, audit: audit)
            }
        }
        return execution
    }

    private func finished(_ execution: Execution, _ event: ExitEvent, fields: [(String, String)], audit: AuditLog) {
        var record = fields
        record.append(("PID", String(execution.pid)))
        var outcome: String
        if let code = event.exitCode {
            record.append(("EXIT_STATUS", String(code)))
            outcome = "exited with status \(code)"
        } else {
            outcome = "killed by signal \(event.signal ?? 0)"
        }
        if let signal = event.signal { record.append(("SIGNAL", String(signal))) }
        if event.timedOut {
            record.append(("TIMED_OUT", "1"))
            outcome += " after timing out"
        }
        record.append(("DURATION_USEC", String(event.durationUsec)))
        execution.recorder.finish()
        execution.secrets.cleanUp()
        let totals = execution.recorder.totals
        record.append(("STDOUT_BYTES", String(totals.stdoutBytes)))
        record.append(("STDERR_BYTES", String(totals.stderrBytes)))
        let status: ExecutionStatus =
            event.timedOut ? .timedOut : event.signal != nil ? .killed : event.exitCode == 0 ? .succeeded : .failed
        do throws(StoreError) {
            try store.finish(
                execution.id,
                ExecutionStore.Outcome(
                    status: status, pid: execution.pid, exitCode: event.exitCode, signal: event.signal,
                    startedAtMs: execution.startedAtMs, finishedAtMs: WallClock.milliseconds(),
                    durationUsec: event.durationUsec, totals: totals, reason: nil))
        } catch {
            logger.error(
                "cannot record the end of an execution in the history",
                metadata: ["execution": "\(execution.id)", "error": "\(error)"])
        }
        audit.recordBestEffort(
            AuditEvent(
                .executionFinished, priority: event.exitCode == 0 ? 6 : 5,
                message: "execution \(execution.id) \(outcome)", fields: record))
        let count = state.withLock { state -> Int in
            state.running.removeValue(forKey: execution.id)
            return state.running.count
        }
        onChange(count)
    }

    /// Records in the history that an execution which was allowed never ran.
    private func recordNotStarted(_ id: String, reason: String) {
        do throws(StoreError) {
            try store.finish(id, Self.notStarted(reason: reason))
        } catch {
            logger.error(
                "cannot record a failed start in the history", metadata: ["execution": "\(id)", "error": "\(error)"])
        }
    }

    static func notStarted(reason: String) -> ExecutionStore.Outcome {
        ExecutionStore.Outcome(
            status: .failed, pid: nil, exitCode: nil, signal: nil, startedAtMs: nil,
            finishedAtMs: WallClock.milliseconds(), durationUsec: nil,
            totals: .init(stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, failure: nil),
            reason: reason)
    }

    /// Stops admitting executions, lets running ones finish for `grace`, then terminates their process groups
    /// (SIGTERM, SIGKILL after `killGrace`) and waits for them to be reaped.
    func shutdown(grace: Duration, killGrace: Duration) async {
        let running = state.withLock { state -> [Execution] in
            state.shuttingDown = true
            return Array(state.running.values)
        }
        guard !running.isEmpty else { return }
        logger.notice("waiting for running executions", metadata: ["count": "\(running.count)", "grace": "\(grace)"])
        let deadline = ContinuousClock.now + grace
        while runningCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if runningCount == 0 { return }
        let left = state.withLock { Array($0.running.values) }
        logger.warning(
            "terminating executions still running after the shutdown grace", metadata: ["count": "\(left.count)"])
        for execution in left { execution.terminate() }
        for execution in left { await execution.waitFinished() }
    }

    /// Hands the daemon's pipe ends to NIO, all three at once. On failure every descriptor is closed.
    /// With a non-empty `redaction`, each output pipe's first handler takes the secrets out of what it reads.
    private func attachPipes(
        _ spawned: SpawnedProcess, redaction: RedactionSet?
    ) async throws -> (NIOAsyncChannel<ByteBuffer, Never>, NIOAsyncChannel<ByteBuffer, Never>, (any Channel)?) {
        let group = group
        @Sendable func reader(_ fd: Int32) async throws -> NIOAsyncChannel<ByteBuffer, Never> {
            try await NIOPipeBootstrap(group: group)
                .channelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 262_144)
                )
                .takingOwnershipOfDescriptor(input: fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let redaction, !redaction.isEmpty {
                            try channel.pipeline.syncOperations.addHandler(RedactingHandler(redaction))
                        }
                        return try NIOAsyncChannel<ByteBuffer, Never>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8)))
                    }
                }
        }
        @Sendable func writer(_ fd: Int32?) async throws -> (any Channel)? {
            guard let fd else { return nil }
            // Up to 4 MiB of input may wait here, so the connection keeps reading (and sees signals) while the
            // command is slow to read its input.
            return try await NIOPipeBootstrap(group: group)
                .channelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
                .takingOwnershipOfDescriptor(output: fd).get()
        }
        async let out = Self.settle { try await reader(spawned.stdoutFD) }
        async let err = Self.settle { try await reader(spawned.stderrFD) }
        async let input = Self.settle { try await writer(spawned.stdinFD) }
        let results = (await out, await err, await input)
        if case .success(let o) = results.0, case .success(let e) = results.1, case .success(let i) = results.2 {
            return (o, e, i)
        }
        // A channel that was created owns its descriptor; close it through NIO, the others directly.
        var failure: any Error = ChannelError.inappropriateOperationForState
        switch results.0 {
        case .success(let channel): try? await channel.channel.close()
        case .failure(let error):
            close(spawned.stdoutFD)
            failure = error
        }
        switch results.1 {
        case .success(let channel): try? await channel.channel.close()
        case .failure(let error):
            close(spawned.stderrFD)
            failure = error
        }
        switch results.2 {
        case .success(let channel): try? await channel?.close()
        case .failure(let error):
            if let fd = spawned.stdinFD { close(fd) }
            failure = error
        }
        throw failure
    }

    private static func settle<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    /// Looks up the executor's run-as user and group now, so a changed user database takes effect at once.
    static func resolveIdentity(_ executor: ExecutorConfig) throws(RunvoyError) -> (SpawnRequest.Identity?, String) {
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
            return (nil, label)
        }
        var groups = UserDatabase.groupIDs(user: user.name, primary: gid)
        if !groups.contains(gid) { groups.insert(gid, at: 0) }
        return (SpawnRequest.Identity(uid: user.uid, gid: gid, groups: groups), label)
    }

    /// A portable environment variable name: letters, digits and underscores, not starting with a digit.
    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F
        }
    }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}
