import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// A client that stops reading, and a burst of requests, against the execution manager in process (found by a
/// review of the restructured exec path: each of these failed before its fix).
@Suite(.serialized) struct StalledClientTests {
    /// A client that takes nothing: every write to it waits until the daemon gives up on it (`abandon`).
    final class StalledSink: OutputSink {
        private struct State {
            var abandoned = false
            var waiters: [CheckedContinuation<Void, Never>] = []
        }
        private let state = Mutex(State())
        var abandoned: Bool { state.withLock { $0.abandoned } }

        func output(_ stream: OutputStreamKind, _ chunk: ByteBuffer) async throws { try await stall() }
        func exit(_ event: ExitEvent) async throws { try await stall() }

        func abandon() {
            let waiters = state.withLock { state in
                state.abandoned = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Waits until abandoned, then fails as a closed connection's write does.
        func stall() async throws {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.abandoned { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
            throw ChannelError.ioOnClosedChannel
        }
    }

    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    /// Reads and drops every datagram on `fd` until the returned flag is set to false.
    static func drain(_ fd: Int32) -> Mutex<Bool> {
        let reading = Mutex(true)
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while reading.withLock({ $0 }) {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 { usleep(1000) }
            }
        }
        thread.start()
        return reading
    }

    /// Waits (bounded, so a regression fails instead of hanging) until `condition` holds.
    static func eventually(seconds: Int = 60, _ condition: () throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if (try? condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return (try? condition()) == true
    }

    /// `limits.max_executions` held only against executions already registered: a burst of requests all passed
    /// admission while the first ones were still being launched (40 ran under a limit of 3).
    @Test func aBurstOfRequestsCannotPassTheCeilingOfRunningExecutions() async throws {
        let fixture = try ExecLaunchTests.Fixture(limits: "{max_executions: 2}", auditTimeout: "10s")
        let manager = fixture.manager(PosixSpawner())
        let config = fixture.config
        // The test's journal holds 10 datagrams (net.unix.max_dgram_qlen): read it all along, as journald would.
        let reading = Self.drain(fixture.journald.fd)
        defer { reading.withLock { $0 = false } }
        try await ExecutionLifetimeTests.running(manager) {
            let results = await withTaskGroup(of: Result<Execution, RunvoyError>.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        do throws(RunvoyError) {
                            return .success(
                                try await manager.start(
                                    ExecParams(argv: ["sleep", "30"]), requestID: nil, caller: Self.root,
                                    config: config, sink: nil
                                ) { _ in })
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                var results: [Result<Execution, RunvoyError>] = []
                for await result in group { results.append(result) }
                return results
            }
            let started = results.compactMap { try? $0.get() }
            #expect(started.count <= 2, "\(started.count) executions run under a limit of 2")
            for result in results {
                if case .failure(let error) = result { #expect(error.code == .busy, "\(error)") }
            }
            for execution in started { execution.terminate() }
            for execution in started { await execution.waitFinished() }
        }
    }

    /// A client that read neither `started` nor any output: the timeout was only armed once `started` was sent,
    /// so the command ran on past its timeout, and its end was never recorded. Now the timeout holds, the end is
    /// recorded, the client is given up on `limits.idle_timeout` after the command's output is done, and
    /// shutdown does not wait for that client.
    @Test func aClientThatReadsNothingCannotKeepACommandPastItsTimeout() async throws {
        let fixture = try ExecLaunchTests.Fixture(limits: "{idle_timeout: 1s}", auditTimeout: "10s")
        let manager = fixture.manager(PosixSpawner(), drainGrace: .milliseconds(200))
        let sink = StalledSink()
        let config = fixture.config
        try await ExecutionLifetimeTests.running(manager) {
            let start = Task {
                try await manager.start(
                    ExecParams(argv: ["yes"], timeoutMs: 500), requestID: .number(1), caller: Self.root,
                    config: config, sink: sink
                ) { _ in try await sink.stall() }
            }
            let ended = await Self.eventually {
                let rows = try fixture.store.list(ListParams(limit: 10), ownerUid: nil)
                return rows.count == 1 && rows[0].status != .running
            }
            #expect(ended, "the command's end was never recorded")
            #expect(try fixture.row().status == .timedOut)
            #expect(await Self.eventually { sink.abandoned }, "the client was never given up on")
            let execution = try await start.value
            // (Read first: a failed expectation would reflect the execution, whose state cannot be copied, and crash.)
            let finished = execution.isFinished
            #expect(finished)
            #expect(fixture.secretFolders.isEmpty)
        }
    }

    /// A client that stops reading once its command has ended, while the `exit` event waits for it: shutdown
    /// waited for the executions' task group, which waited for that write, so the daemon never stopped.
    @Test func shutdownDoesNotWaitForAClientThatStoppedReading() async throws {
        let fixture = try ExecLaunchTests.Fixture(auditTimeout: "10s")
        let manager = fixture.manager(PosixSpawner())
        let sink = StalledSink()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await manager.run() }
            let execution = try await manager.start(
                ExecParams(argv: ["true"]), requestID: .number(2), caller: Self.root, config: fixture.config,
                sink: sink
            ) { _ in }
            // (Not `waitFinished`: that returns once the `exit` event is out, which is what never happens here.)
            #expect(await Self.eventually { execution.isFinished })
            await manager.shutdown(grace: .seconds(5), killGrace: .seconds(1))
            #expect(manager.runningCount == 0)
            // What the server does next: it closes the connections, which fails the write, and the group ends.
            sink.abandon()
            tasks.cancelAll()
        }
        #expect(try fixture.row().status == .succeeded)
    }
}
