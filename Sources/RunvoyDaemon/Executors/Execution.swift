import CRunvoyPosix
import Glibc
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore

import struct Synchronization.Atomic

/// One running command: its identity, its process group, its live output routing, and its end. It owns what its
/// launch made (the process and its pipes, its output recorder, its secret files, its history row) from the moment
/// it exists, and releases all of it when it ends (`run`); its phases are `StateMachine`'s.
final class Execution: Sendable {
    let id: String
    let requestID: RequestID?
    let caller: Caller
    let executorName: String
    let runAs: String
    let argv: [String]
    let path: String
    let pid: pid_t
    let killOnDisconnect: Bool
    let timeout: Duration?
    let killGrace: Duration
    /// How long a client that takes no output may hold up an execution whose output is done (`limits.idle_timeout`)
    /// before it is given up on.
    let clientGrace: Duration
    let hasStdin: Bool
    /// Who else may write to the command's input: the writer attached with `attach --write`, if any.
    let writer = WriterSlot()
    /// Stores the output as it streams, for `logs` and its followers.
    let recorder: OutputRecorder
    /// Stores the input too, where the executor has `record_input`.
    let inputRecording: InputRecording?
    /// Wall-clock milliseconds when the execution was accepted and when its process started.
    let createdAtMs: Int64
    let startedAtMs: Int64
    /// The secrets injected into the command: removed from its output, their files removed at its end.
    let secrets: SecretInjection
    /// The history and audit trail this execution records itself in.
    let records: Records
    /// Every process of the execution, beyond its process group: its cgroup, or what the subreaper finds.
    let scope: any ExecutionScope
    /// What happens to the execution's other processes when its main process exits.
    let leftovers: LeftoverPolicy
    /// The pidfd of the process group leader: waited for, and reaped once nothing can signal the group any more.
    private let pidfd: Int32
    /// The daemon's ends of the command's output pipes, read by `run` (with a terminal, its master alone).
    private let output: (stdout: NIOAsyncChannel<ByteBuffer, Never>, stderr: NIOAsyncChannel<ByteBuffer, Never>?)
    /// The stored copy's own redaction, where it is apart from the live stream's (a terminal session's one stream;
    /// see `StoredOutputRedaction`).
    private let storedRedaction: StoredOutputRedaction?
    /// With a terminal: a descriptor of its master for window size changes, closed when the execution ends.
    private let terminalFD: Int32?
    /// Whether the command runs on a pseudo-terminal.
    var isTerminal: Bool { terminalFD != nil }

    private struct Locked: ~Copyable {
        var machine: StateMachine
        var sink: (any OutputSink)?
        var stdin: (any Channel)?
        var lastStdinWrite: EventLoopFuture<Void>?
        var waiters: [CheckedContinuation<ExitEvent, Never>] = []
        /// SIGKILL after the kill grace, once `terminate` sent SIGTERM; cancelled when the command ends.
        var killTimer: Scheduled<Void>?
        /// The execution's timeout, armed when it is registered; cancelled when the command ends.
        var timeoutTimer: Scheduled<Void>?
        /// Gives up on the client once the command's output is done and the client still takes nothing.
        var abandonTimer: Scheduled<Void>?
        /// Output flows once the client has its `started` event (or has been given up on).
        var outputReleased = false
        var releaseWaiters: [CheckedContinuation<Void, Never>] = []
        /// How many processes were left when the main process exited and were killed (`leftovers: kill`).
        var leftoversKilled = 0
        /// The main process had exited and nothing else of the execution was left (killed, or waited for): nothing
        /// of it can start any more, so the end needs no second search.
        var leftoversEnded = false
        /// What the execution's processes used, read once they have all ended.
        var usage: ResourceUsage?
    }

    /// How many `Execution` objects exist: each one is released once its command has ended and nothing refers
    /// to it, so this returns to zero when nothing runs (a regression test for retained executions reads it).
    static let live = Atomic(0)

    private let state: Mutex<Locked>
    /// What its `post_exec` hooks are told, with the configuration they come from; nil when it has none.
    let postExec: (subject: HookSubject, config: DaemonConfig)?
    /// How it was let run: a command that needs approval keeps running after a grant ends only as long as what
    /// let it run without one still holds (review 2 of grants, R4).
    let admitted: Admitted

    /// What let an execution run.
    enum Admitted: Sendable, Equatable {
        /// Its policy alone (or a policy that needs no approval for it).
        case policy
        /// An approval of exactly this plan.
        case approved
        /// `--break-glass`: at once, with no approval.
        case breakGlass

        init(_ ticket: ApprovalTicket?) {
            guard let ticket else {
                self = .policy
                return
            }
            self = ticket.isBreakGlass ? .breakGlass : .approved
        }
    }

    init(plan: ExecPlan, launched: ExecLaunch.Launched, sink: (any OutputSink)?, admitted: Admitted = .policy) {
        id = launched.id
        self.admitted = admitted
        requestID = plan.requestID
        caller = plan.caller
        executorName = plan.executor.name
        runAs = plan.runAs
        argv = plan.argv
        path = plan.command
        pid = launched.process.pid
        pidfd = launched.process.pidfd
        killOnDisconnect = plan.killOnDisconnect
        timeout = plan.timeout
        killGrace = plan.config.killGrace
        clientGrace = plan.config.limits.idleTimeout
        hasStdin = launched.pipes.stdin != nil
        output = (launched.pipes.stdout, launched.pipes.stderr)
        storedRedaction = launched.pipes.storedOutput
        terminalFD = launched.process.terminalFD
        recorder = launched.recorder
        inputRecording =
            plan.executor.recordInput
            ? InputRecording(recorder: launched.recorder, redaction: launched.injection.redaction) : nil
        createdAtMs = launched.createdAtMs
        startedAtMs = launched.startedAtMs
        secrets = launched.injection
        records = launched.records
        scope = launched.scope
        leftovers = plan.executor.leftovers
        postExec =
            HookRunner.hooks(.postExec, config: plan.config, executor: plan.executor).isEmpty
            ? nil : (HookSubject(plan, id: launched.id), plan.config)
        let machine = StateMachine(executionID: launched.id, requestID: plan.requestID, started: .now)
        state = Mutex(Locked(machine: machine, sink: sink, stdin: launched.pipes.stdin))
        Self.live.add(1, ordering: .relaxed)
    }

    deinit { Self.live.subtract(1, ordering: .relaxed) }

    /// Whether the command has ended and its `exit` event is known.
    var isFinished: Bool { state.withLock { $0.machine.exitEvent != nil } }

    /// Suspends until the execution has ended.
    @discardableResult
    func waitFinished() async -> ExitEvent {
        await withCheckedContinuation { continuation in
            let result = state.withLock { state -> ExitEvent? in
                if let event = state.machine.exitEvent { return event }
                state.waiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(returning: result) }
        }
    }

    /// Sends `signal` to the command's process group. Returns false once the command has ended.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        // Under the lock, unlike other actions: the leader is reaped (its pid freed) only after the machine has
        // finished under it, so the group id cannot name another process here.
        state.withLock { state in
            guard state.machine.maySignal else { return false }
            return scope.signalMain(pid, signal)
        }
    }

    /// Sets the terminal's window size (the kernel sends SIGWINCH to its foreground process group). Returns false
    /// without a terminal or once the command has ended.
    func resize(_ size: TerminalSize) -> Bool {
        // Under the lock: the descriptor is closed under it when the execution finishes.
        state.withLock { state in
            guard let terminalFD, state.machine.exitEvent == nil else { return false }
            return runvoy_set_window_size(terminalFD, size.rows, size.cols) == 0
        }
    }

    /// SIGTERM or SIGKILL to every process of the execution: its process group, and the rest of its scope (all
    /// of its cgroup; or what the subreaper finds of it).
    private func signalEverything(_ signal: Int32) {
        state.withLock { state in
            guard state.machine.maySignal else { return }
            _ = scope.signalMain(pid, signal)
            if signal == SIGKILL { scope.kill() } else { scope.signal(signal) }
        }
    }

    /// SIGTERM to every process of the execution, then SIGKILL after the kill grace if anything is left. Returns
    /// whether this call signalled it (false: it was being terminated already, or had ended), so that a
    /// termination is audited once however many times it is asked for.
    @discardableResult
    func terminate(timedOut: Bool = false) -> Bool {
        guard state.withLock({ $0.machine.terminate(timedOut: timedOut) }) == .signalAndArmKillTimer else {
            return false
        }
        signalEverything(SIGTERM)
        let killer = Self.timerLoop.scheduleTask(in: TimeAmount(killGrace)) { [weak self] in
            guard let self, self.state.withLock({ $0.machine.killsWhenGraceEnds }) else { return }
            self.signalEverything(SIGKILL)
        }
        state.withLock { $0.killTimer = killer }
        return true
    }

    /// Arms the timeout, from the moment the execution is registered: a client that is slow to take its `started`
    /// event cannot hold a command past its timeout.
    func armTimeout() {
        guard let timeout else { return }
        let timer = output.stdout.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [weak self] in
            guard let self else { return }
            self.terminate(timedOut: true)
        }
        state.withLock { $0.timeoutTimer = timer }
    }

    /// Lets output flow to the client (and into the history): called once the client has its `started` event, or
    /// when the client is given up on.
    func releaseOutput() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.outputReleased = true
            defer { state.releaseWaiters = [] }
            return state.releaseWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func outputMayFlow() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.outputReleased { return true }
                state.releaseWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// The client took nothing for `clientGrace` after the command's output was done: stop waiting for it (its
    /// connection is closed, so whatever waits on a write to it fails), and let the rest of the output reach the
    /// history.
    private func abandonClient() {
        let sink = state.withLock { state -> (any OutputSink)? in
            defer { state.sink = nil }
            return state.sink
        }
        sink?.abandon()
        releaseOutput()
    }

    /// Where the kill-grace timer runs when the output's event loop is not at hand.
    private static var timerLoop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }

    /// The connection that started the execution went away: stop routing output to it, close the command's
    /// standard input once what was queued for it is written (no more can come), and kill the command if the
    /// client asked for that.
    func clientGone() {
        let (stdin, last) = state.withLock { state -> ((any Channel)?, EventLoopFuture<Void>?) in
            state.sink = nil
            defer {
                state.stdin = nil
                state.lastStdinWrite = nil
            }
            return (state.stdin, state.lastStdinWrite)
        }
        if let stdin {
            if let last {
                last.whenComplete { _ in stdin.close(promise: nil) }
            } else {
                stdin.close(promise: nil)
            }
        }
        if killOnDisconnect { terminate() }
    }

    /// Queues bytes for the command's standard input (and records them, where the executor records input). It returns at once while the input channel holds less than
    /// its high watermark, so a `signal` request behind some input is still read promptly; past the watermark it
    /// waits for the write (backpressure to the client). Bytes for a command that closed its input are dropped,
    /// as a shell pipeline would.
    func writeStdin(_ bytes: ByteBuffer) async throws(RunvoyError) {
        guard hasStdin else {
            throw RunvoyError(.invalidState, "execution \(id) was started without standard input")
        }
        guard !isFinished else { throw RunvoyError(.invalidState, "execution \(id) has ended") }
        guard let channel = state.withLock({ $0.stdin }) else { return }
        inputRecording?.record(bytes)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(bytes, promise: promise)
        let write = promise.futureResult
        state.withLock { $0.lastStdinWrite = write }
        write.whenFailure { [self] _ in
            state.withLock { if $0.stdin === channel { $0.stdin = nil } }
            channel.close(promise: nil)
        }
        if !channel.isWritable { try? await write.get() }
    }

    /// Returns once every byte queued for standard input so far is in the command's input pipe (or could not be
    /// written): what a `signal` sent after `stdin` on the same connection waits for (docs/PROTOCOL.md).
    func stdinWritten() async {
        let last = state.withLock { $0.lastStdinWrite }
        try? await last?.get()
    }

    /// Closes the command's standard input once everything queued for it is written.
    func closeStdin() async {
        let (channel, last) = state.withLock { state -> ((any Channel)?, EventLoopFuture<Void>?) in
            defer {
                state.stdin = nil
                state.lastStdinWrite = nil
            }
            return (state.stdin, state.lastStdinWrite)
        }
        guard let channel else { return }
        try? await last?.get()
        try? await channel.close().get()
    }

    /// The execution's whole life once launched: records the process in the history, pumps output until the
    /// command and every process holding its pipes are done (`drainGrace` bounds how long output is still read
    /// after the command itself exited), records the end, and tells the client. `ended` runs once the end is
    /// recorded and the execution finished, before the `exit` event goes out (the manager unregisters it there).
    func run(drainGrace: Duration, ended: @Sendable (Execution) -> Void) async {
        recordStarted()
        await pumpUntilDrained(drainGrace: drainGrace)
        await closeStdin()
        let event = state.withLock { $0.machine.outputDrained(at: .now) }
        recordFinished(event)
        // Finished before the `exit` event goes out: a client that sends its next request as soon as it reads
        // `exit` finds the connection free, and `stdin` or `signal` for this execution answer that it ended.
        let (sink, waiters) = state.withLock { state -> ((any OutputSink)?, [CheckedContinuation<ExitEvent, Never>]) in
            _ = state.machine.finish()
            state.killTimer?.cancel()
            if let terminalFD { close(terminalFD) }
            defer {
                state.sink = nil
                state.waiters = []
                state.killTimer = nil
            }
            return (state.sink, state.waiters)
        }
        // Unregistered once finished: whoever sees the manager with nothing running (shutdown's wait among them)
        // finds this execution finished too (ExecutionLifetimeTests' shutdown test lost that race now and then).
        ended(self)
        // Only now, finished (so `signal` sends nothing more), is the leader reaped and its pid free: while output
        // drained it stayed a zombie, so a signal to its process group could reach no other process. Whatever of
        // the execution started since its leftovers were handled goes first, while that still holds.
        if !state.withLock({ $0.leftoversEnded }) { scope.kill() }
        var exited: Int32 = 0
        var code: Int32 = 0
        _ = runvoy_pidfd_wait(pidfd, &exited, &code)
        close(pidfd)
        scope.release()
        if let sink {
            try? await sink.exit(event)
        }
        state.withLock { $0.abandonTimer?.cancel() }
        for waiter in waiters { waiter.resume(returning: event) }
    }

    /// Reads both output pipes while the timeout runs, until the leader has exited and the pipes are done (or
    /// closed at the end of the drain grace).
    private func pumpUntilDrained(drainGrace: Duration) async {
        let (stdout, stderr) = output
        // Timers are the event loop's: cancelling one frees it at once. (A cancelled `Task.sleep` keeps its task,
        // and everything the task holds, until its deadline, which for a one-hour timeout kept every execution
        // of the last hour in memory: swiftlang/swift#60441.)
        // (The timeout was armed when the execution was registered, see `armTimeout`.)
        let loop = stdout.channel.eventLoop
        async let pumps: Void = withTaskGroup(of: Void.self) { group in
            group.addTask { await self.pump(stdout, .stdout) }
            if let stderr { group.addTask { await self.pump(stderr, .stderr) } }
        }
        let status = await scope.waitMain(pidfd: pidfd)
        state.withLock { $0.machine.leaderExited(status) }
        // The timeout still runs while `leftovers: wait` waits for the rest of the execution.
        await endLeftovers()
        state.withLock { state in
            state.timeoutTimer?.cancel()
            state.usage = scope.usage() ?? Self.rusage(pidfd)
        }
        let closer = loop.scheduleTask(in: TimeAmount(drainGrace)) {
            stdout.channel.close(promise: nil)
            stderr?.channel.close(promise: nil)
        }
        // A client that takes nothing cannot hold the execution (its slot, its secret files, its history row) past
        // the drain grace and its own grace; cancelled once the `exit` event is out.
        let abandon = loop.scheduleTask(in: TimeAmount(drainGrace + clientGrace)) { [weak self] in
            guard let self else { return }
            self.abandonClient()
        }
        state.withLock { $0.abandonTimer = abandon }
        await pumps
        closer.cancel()
    }

    /// The main process exited: kill what else of the execution runs (`leftovers: kill`, counted for the audit
    /// trail), or wait until it has all ended (`wait`; the timeout, a kill or shutdown end it all).
    private func endLeftovers() async {
        switch leftovers {
        case .kill:
            state.withLock { state in
                guard state.machine.maySignal else { return }
                state.leftoversKilled = scope.kill()
                state.leftoversEnded = true
            }
        case .wait:
            // Polled: /proc gives no event to wait on. On the event loop's timers, not `Task.sleep` (see
            // ExecutionLifetimeTests: a cancelled one would hold its task until its deadline).
            // The check scans /proc under the subreaper (a fraction of a second on a crowded host): on the thread
            // pool, never on one of the few cooperative threads.
            let scope = self.scope
            while (try? await NIOThreadPool.singleton.runIfActive { scope.isPopulated }) ?? false {
                try? await Self.timerLoop.scheduleTask(in: .milliseconds(100)) {}.futureResult.get()
            }
            state.withLock { $0.leftoversEnded = true }
        }
    }

    /// What the exited (still unreaped) main process and the children it waited for used: the figures where the
    /// scope has none (subreaper containment). Processes it did not wait for (escaped ones) are not in them. No
    /// memory peak: the kernel's ru_maxrss of a vfork'd child is the daemon's own resident set, which the child
    /// shared until it exec'd (exec records the old memory's high-water mark).
    static func rusage(_ pidfd: Int32) -> ResourceUsage? {
        var usage = runvoy_usage()
        guard runvoy_pidfd_usage(pidfd, &usage) == 0 else { return nil }
        return ResourceUsage(
            cpuUserUsec: usage.user_usec, cpuSystemUsec: usage.system_usec, ioReadBytes: usage.read_bytes,
            ioWriteBytes: usage.write_bytes, source: "rusage")
    }

    /// How many leftover processes were killed when the main process exited, and what the execution used.
    var containmentReport: (leftoversKilled: Int, usage: ResourceUsage?) {
        state.withLock { ($0.leftoversKilled, $0.usage) }
    }

    /// The most output one frame (and one stored record) carries.
    static let maximumChunk = 256 << 10

    private func pump(_ channel: NIOAsyncChannel<ByteBuffer, Never>, _ stream: OutputStreamKind) async {
        await outputMayFlow()
        // Secret values were already taken out by the pipe's RedactingHandler: the client, the stored output and
        // every follower see only redacted bytes. Where the stored copy is redacted apart, it is stored from
        // there, after each live chunk and at the end.
        let stored = stream == .stdout ? storedRedaction : nil
        let recorder = recorder
        func store(_ bytes: [UInt8]) {
            var start = 0
            while start < bytes.count {
                let end = min(start + Self.maximumChunk, bytes.count)
                bytes[start..<end].withUnsafeBytes { recorder.append(stream, $0) }
                start = end
            }
        }
        func deliver(_ chunk: ByteBuffer) async {
            if let sink = state.withLock({ $0.sink }) {
                do {
                    try await sink.output(stream, chunk)
                } catch {
                    clientGone()
                }
            }
            if let stored {
                store(stored.take())
            } else {
                chunk.withUnsafeReadableBytes { recorder.append(stream, $0) }
            }
        }
        do {
            try await channel.executeThenClose { inbound in
                for try await chunk in inbound {
                    // The client first, then the stored copy: the first chunk creates the output files, which can
                    // take a while, and the caller should not wait for that. Markers can make a redacted chunk
                    // longer than a read: keep every frame within the 256 KiB of output the protocol promises.
                    var rest = chunk
                    while rest.readableBytes > Self.maximumChunk, let piece = rest.readSlice(length: Self.maximumChunk)
                    {
                        await deliver(piece)
                    }
                    if rest.readableBytes > 0 { await deliver(rest) }
                }
            }
        } catch {
            // A read error ends this stream; the exit status still comes from the reaper.
        }
        if let stored {
            // The handler has seen the end of the stream (it comes before the inbound stream's end); a stream
            // closed at the end of the drain grace is finished here.
            stored.finish()
            store(stored.take())
        }
    }
}
