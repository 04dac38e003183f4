import CRunvoyPosix
import Foundation
import Glibc
import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Review of the hooks feature (docs/REVIEW-hooks.md): proofs of concept of its findings. Each test FAILS on the
/// code as merged (28355b5) and states what should hold instead.
@Suite(.serialized) struct HookReviewTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    /// Starts hooks through the real spawner, then does to the hook's process what the subreaper's orphan reaper
    /// (`SubreaperContainment.reapOrphans`, every second and whenever an execution is released) does to every
    /// zombie child of the daemon that is not an execution's registered leader: it reaps it. Hooks are never
    /// registered (HookProcess calls the spawner directly, not through a containment scope), so a hook that exits
    /// while the reaper scans is reaped before its own thread reads its status. Here the scan is made to land in
    /// that window every time: once inside the spawn, once just after the spawn is registered. The reaper keeps to
    /// what `HeldChildren` (the subreaper's bookkeeping) allows, as `SubreaperContainment.reapOrphans` does; since
    /// the fix (H2) hooks are held there from before their spawn to after their final wait.
    final class OrphanReaperInTheWindow: ProcessSpawner, ChildHolding, @unchecked Sendable {
        let held = HeldChildren()
        var reaped = false

        /// runvoy_reap_orphans(keep: held): waitpid(pid, WNOHANG) of a zombie child not held.
        func reap(_ pid: pid_t) {
            var status: Int32 = 0
            let taken = held.reaping { keep in keep.contains(pid) ? 0 : Int(waitpid(pid, &status, WNOHANG)) }
            if taken == pid { reaped = true }
        }

        func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
            let process = try PosixSpawner().spawn(request)
            var ready = pollfd(fd: process.pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, 10_000)  // the hook has exited: a zombie child of ours
            reap(process.pid)
            return process
        }

        func spawning() { held.spawning() }
        func spawned(_ child: pid_t?) {
            held.spawned(child)
            if let child { reap(child) }
        }
        func released(_ child: pid_t) { held.released(child) }
    }

    /// H2. Under subreaper containment a `pre_exec` hook's exit status can be taken by the daemon's orphan reaper;
    /// the hook's thread then reads no status (`waitid` ECHILD) and judges the run "killed by signal 9", an error,
    /// which `on_error: allow` lets through: the hook's explicit veto (exit 1) becomes an allow.
    @Test func aVetoStaysAVetoWhenTheOrphanReaperRunsAsTheHookExits() async {
        var hook = HookConfig(
            name: "window", event: .preExec, command: ["/bin/sh", "-c", "echo outside the window; exit 1"],
            user: "nobody")
        hook.onErrorWritten = .allow  // a ticket service that is down should not stop work; a "no" still should
        let reaper = OrphanReaperInTheWindow()
        let ran = await HookProcess(spawner: reaper, children: reaper).run(
            hook, input: Array("{}\n".utf8), executionID: "01exec")
        let verdict = HookRunner.judge(hook, ran)
        #expect(!reaper.reaped, "the orphan reaper took the hook's exit status")
        #expect(ran.status == .exited(1), "the hook exited 1; the daemon read \(String(describing: ran.status))")
        #expect(verdict.outcome == .veto && verdict.refuses, "the veto was judged \(verdict)")
    }

    /// H2. A hook whose exit status cannot be read (`waitid` fails: reaped by someone else) is an error, "exit
    /// status lost", never a signal; under `on_error: allow` it lets the command run, under `deny` it refuses.
    @Test func aLostExitStatusIsAnErrorNotASignal() async {
        final class ReapedBehindItsBack: ProcessSpawner, @unchecked Sendable {
            func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
                let process = try PosixSpawner().spawn(request)
                var status: Int32 = 0
                _ = waitpid(process.pid, &status, 0)
                return process
            }
        }
        var hook = HookConfig(
            name: "window", event: .preExec, command: ["/bin/sh", "-c", "exit 1"], user: "nobody")
        let ran = await HookProcess(spawner: ReapedBehindItsBack()).run(hook, input: [], executionID: nil)
        #expect(ran.statusLost && ran.status == nil && !ran.timedOut, "\(ran)")
        #expect(HookRunner.judge(hook, ran) == .init(outcome: .error, reason: "exit status lost", refuses: true))
        hook.onErrorWritten = .allow
        #expect(HookRunner.judge(hook, ran).refuses == false)
    }

    /// H3. `post_exec` hooks run after `unregister` has given the execution's admission slot back, so nothing
    /// bounds how many run at once: a developer with `exec_rate` 600/1m and an executor of `concurrency: 1` can
    /// have hundreds of hook processes (each with a daemon thread) alive for up to their timeout (10 min), beyond
    /// every limit and fair share. Here: three short runs one after another on an executor of concurrency 1
    /// leave three `post_exec` hooks running together.
    @Test func postExecHooksStayWithinTheExecutorsConcurrency() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var config = fixture.config
        let spool = fixture.directory
        var hook = HookConfig(
            name: "chat", event: .postExec,
            command: [
                "/bin/sh", "-c",
                "touch \(spool)/hook-$RUNVOY_EXECUTION_ID; while [ ! -e \(spool)/release ]; do sleep 0.05; done",
            ], user: "root")
        hook.timeout = .seconds(60)
        config.executors[0].concurrency = 1
        config.executors[0].hooks = [hook]
        let manager = fixture.manager(PosixSpawner())
        var together = 0
        try await ExecutionLifetimeTests.running(manager) {
            defer { FileManager.default.createFile(atPath: "\(spool)/release", contents: Data()) }
            for n in 0..<3 {
                let execution: Execution
                do {
                    execution = try await manager.start(
                        ExecParams(argv: ["true"]), requestID: .number(Int64(n)), caller: Self.root, config: config,
                        sink: nil
                    ) { _ in }
                } catch {
                    break  // the slot is still held (by the running hook): what should happen
                }
                _ = await execution.waitFinished()
                try await Self.waitForFile("\(spool)/hook-\(execution.id)")
            }
            together = FileSystem.entries(spool).filter { $0.hasPrefix("hook-") }.count
        }
        #expect(together <= 1, "\(together) post_exec hooks ran at once on an executor of concurrency 1")
    }

    /// H4. `status` keeps hook output within 256 KiB counted as UTF-8, but a control byte is six bytes of JSON
    /// (`\u0001`): output of control bytes from a few hooks (a broken hook, or one that prints the caller's argv)
    /// makes the reply larger than the 1 MiB frame every reply about an execution must fit (issue 18), so nobody
    /// (owner, viewers, administrators) can read that execution's `status`.
    @Test func aStatusReplyWithHookOutputOfControlBytesStaysWithinAFrame() throws {
        let argv = Array(repeating: String(repeating: "\u{1}", count: (128 << 10) - 1), count: 8)
        let info = ReplyBoundsTests.info(argv: argv, envKeys: [], reason: nil)
        let run = HookRunInfo(
            hook: "echo-argv", event: "pre_exec", user: "runvoy-hooks", startedAtMs: 1, durationUsec: 1, exitCode: 0,
            signal: nil, timedOut: false, outcome: "ok", reason: nil,
            output: String(repeating: "\u{1}", count: HookProcess.outputCap), outputDropped: 0, approvalId: nil)
        var withHooks = info
        withHooks.hooks = RequestContext.budgeted(
            Array(repeating: run, count: 4), budget: RequestContext.hookOutputBudget)
        let size = try Frame.payload(withHooks.bounded(.single)).count
        #expect(size <= 1 << 20, "a status reply of \(size) bytes")
    }

    /// H3. Shutdown kills hooks still running after its grace (`RunningHooks.killAll`, from `terminateStragglers`),
    /// and any started after that at once: a hook that would run for a minute ends killed, an error, not a timeout.
    @Test func hooksRunningAtShutdownAreKilledAndLaterOnesAtOnce() async throws {
        var hook = HookConfig(name: "slow", event: .postExec, command: ["/bin/sleep", "60"], user: "nobody")
        hook.timeout = .seconds(60)
        let running = RunningHooks()
        let process = HookProcess(spawner: PosixSpawner(), running: running)
        let first = Task { await process.run(hook, input: [], executionID: nil) }
        let deadline = Date().addingTimeInterval(30)
        while running.isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(running.killAll() == 1)
        let ran = await first.value
        #expect(ran.status == .signaled(SIGKILL) && !ran.timedOut, "\(ran)")
        #expect(HookRunner.judge(hook, ran).outcome == .error)
        let late = await process.run(hook, input: [], executionID: nil)
        #expect(late.status == .signaled(SIGKILL) && !late.timedOut, "\(late)")
        #expect(running.isEmpty)
    }

    static func waitForFile(_ path: String) async throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if access(path, F_OK) == 0 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RunvoyError(.internalError, "no \(path)")
    }
}
