import CRunvoyPosix
import Glibc
import NIOCore
import NIOPosix
import RunvoyKit
import RunvoyStore

import struct Synchronization.Atomic

/// One running command: its identity, its process group, its live output routing, and its end.
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
    let started: ContinuousClock.Instant
    let hasStdin: Bool
    /// Stores the output as it streams, for `logs` and its followers.
    let recorder: OutputRecorder
    /// Wall-clock milliseconds when the execution was accepted and when its process started.
    let createdAtMs: Int64
    let startedAtMs: Int64
    /// The secrets injected into the command: removed from its output, their files removed at its end.
    let secrets: SecretInjection

    private struct State: ~Copyable {
        var sink: (any OutputSink)?
        var stdin: (any Channel)?
        var lastStdinWrite: EventLoopFuture<Void>?
        var timedOut = false
        var terminating = false
        var result: ExitEvent?
        var waiters: [CheckedContinuation<ExitEvent, Never>] = []
        /// SIGKILL after the kill grace, once `terminate` sent SIGTERM; cancelled when the command ends.
        var killTimer: Scheduled<Void>?
    }

    /// How many `Execution` objects exist: each one is released once its command has ended and nothing refers
    /// to it, so this returns to zero when nothing runs (a regression test for retained executions reads it).
    static let live = Atomic(0)

    private let state: Mutex<State>

    init(
        id: String, requestID: RequestID?, caller: Caller, executorName: String, runAs: String, argv: [String],
        path: String, pid: pid_t, killOnDisconnect: Bool, timeout: Duration?, killGrace: Duration,
        sink: (any OutputSink)?, stdin: (any Channel)?, recorder: OutputRecorder, createdAtMs: Int64,
        startedAtMs: Int64, secrets: SecretInjection = .none
    ) {
        self.secrets = secrets
        self.recorder = recorder
        self.createdAtMs = createdAtMs
        self.startedAtMs = startedAtMs
        self.id = id
        self.requestID = requestID
        self.caller = caller
        self.executorName = executorName
        self.runAs = runAs
        self.argv = argv
        self.path = path
        self.pid = pid
        self.killOnDisconnect = killOnDisconnect
        self.timeout = timeout
        self.killGrace = killGrace
        self.started = .now
        self.hasStdin = stdin != nil
        self.state = Mutex(State(sink: sink, stdin: stdin))
        Self.live.add(1, ordering: .relaxed)
    }

    deinit { Self.live.subtract(1, ordering: .relaxed) }

    /// Whether the command has ended and its `exit` event is known.
    var isFinished: Bool { state.withLock { $0.result != nil } }

    /// Suspends until the execution has ended.
    @discardableResult
    func waitFinished() async -> ExitEvent {
        await withCheckedContinuation { continuation in
            let result = state.withLock { state -> ExitEvent? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(returning: result) }
        }
    }

    /// Sends `signal` to the command's process group. Returns false once the command has ended.
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        // Under the lock: the leader is reaped (its pid freed) only after `result` is set under it.
        state.withLock { state in
            guard state.result == nil else { return false }
            return kill(-pid, signal) == 0
        }
    }

    /// SIGTERM to the process group, then SIGKILL after the kill grace if anything is left.
    func terminate(timedOut: Bool = false) {
        let first = state.withLock { state -> Bool in
            if timedOut { state.timedOut = true }
            defer { state.terminating = true }
            return !state.terminating
        }
        guard first else { return }
        signal(SIGTERM)
        let killer = Self.timerLoop.scheduleTask(in: TimeAmount(killGrace)) { [weak self] in
            if let self, !self.isFinished { self.signal(SIGKILL) }
        }
        state.withLock { $0.killTimer = killer }
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

    /// Queues bytes for the command's standard input. It returns at once while the input channel holds less than
    /// its high watermark, so a `signal` request behind some input is still read promptly; past the watermark it
    /// waits for the write (backpressure to the client). Bytes for a command that closed its input are dropped,
    /// as a shell pipeline would.
    func writeStdin(_ bytes: ByteBuffer) async throws(RunvoyError) {
        guard hasStdin else {
            throw RunvoyError(.invalidState, "execution \(id) was started without standard input")
        }
        guard !isFinished else { throw RunvoyError(.invalidState, "execution \(id) has ended") }
        guard let channel = state.withLock({ $0.stdin }) else { return }
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

    /// Pumps output until the command and every process holding its pipes are done, then finishes.
    /// `drainGrace` bounds how long output is still read after the command itself exited.
    func run(
        stdout: NIOAsyncChannel<ByteBuffer, Never>, stderr: NIOAsyncChannel<ByteBuffer, Never>, pidfd: Int32,
        drainGrace: Duration, finish: @Sendable (Execution, ExitEvent) async -> Void
    ) async {
        // Timers are the event loop's: cancelling one frees it at once. (A cancelled `Task.sleep` keeps its task,
        // and everything the task holds, until its deadline, which for a one-hour timeout kept every execution
        // of the last hour in memory: swiftlang/swift#60441.)
        let loop = stdout.channel.eventLoop
        let timer = timeout.map { timeout in
            loop.scheduleTask(in: TimeAmount(timeout)) { [weak self] in self?.terminate(timedOut: true) }
        }
        async let pumps: Void = withTaskGroup(of: Void.self) { group in
            group.addTask { await self.pump(stdout, .stdout) }
            group.addTask { await self.pump(stderr, .stderr) }
        }
        let status = await Reaper.shared.wait(pidfd: pidfd)
        timer?.cancel()
        let closer = loop.scheduleTask(in: TimeAmount(drainGrace)) {
            stdout.channel.close(promise: nil)
            stderr.channel.close(promise: nil)
        }
        await pumps
        closer.cancel()
        await closeStdin()

        let elapsed = ContinuousClock.now - started
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        var exitCode: Int32?
        var signal: Int32?
        switch status {
        case .exited(let code): exitCode = code
        case .signaled(let number): signal = number
        }
        let timedOut = state.withLock { $0.timedOut }
        let event = ExitEvent(
            id: requestID, executionId: id, exitCode: exitCode, signal: signal, timedOut: timedOut,
            durationUsec: micros)
        await finish(self, event)
        // Finished before the `exit` event goes out: a client that sends its next request as soon as it reads
        // `exit` finds the connection free, and `stdin` or `signal` for this execution answer that it ended.
        let (sink, waiters) = state.withLock { state -> ((any OutputSink)?, [CheckedContinuation<ExitEvent, Never>]) in
            state.result = event
            state.killTimer?.cancel()
            defer {
                state.sink = nil
                state.waiters = []
                state.killTimer = nil
            }
            return (state.sink, state.waiters)
        }
        // Only now, with `result` set (so `signal` sends nothing more), is the leader reaped and its pid free: while
        // output drained it stayed a zombie, so a signal to its process group could reach no other process.
        var exited: Int32 = 0
        var code: Int32 = 0
        _ = runvoy_pidfd_wait(pidfd, &exited, &code)
        close(pidfd)
        if let sink {
            try? await sink.exit(event)
        }
        for waiter in waiters { waiter.resume(returning: event) }
    }

    /// The most output one frame (and one stored record) carries.
    static let maximumChunk = 256 << 10

    private func pump(_ channel: NIOAsyncChannel<ByteBuffer, Never>, _ stream: OutputStreamKind) async {
        // Secret values were already taken out by the pipe's RedactingHandler: the client, the stored output and
        // every follower see only redacted bytes.
        func deliver(_ chunk: ByteBuffer) async {
            if let sink = state.withLock({ $0.sink }) {
                do {
                    try await sink.output(stream, chunk)
                } catch {
                    clientGone()
                }
            }
            chunk.withUnsafeReadableBytes { recorder.append(stream, $0) }
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
    }
}
