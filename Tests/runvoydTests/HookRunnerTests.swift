import Foundation
import Glibc
import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Hooks run by the real spawner (as root, as `nobody`): the JSON they read, what their exit means, the fixed
/// environment, the timeout that kills their whole process group, the output cap, and the stored runs.
@Suite(.serialized) struct HookRunnerTests {
    static let nobody = UserDatabase.user(named: "nobody")!

    static func hook(
        _ script: String, event: HookEvent = .preExec, timeout: Duration = .seconds(10), name: String = "h"
    ) -> HookConfig {
        var hook = HookConfig(name: name, event: event, command: ["/bin/sh", "-c", script], user: "nobody")
        hook.timeout = timeout
        return hook
    }

    static func subject(executor: ExecutorConfig? = nil) -> HookSubject {
        HookSubject(
            execution: HookPayload.Execution(
                id: "01exec", executor: "prod", runAs: "deploy:deploy", command: "/usr/bin/systemctl",
                argv: ["systemctl", "restart", "nginx"], cwd: "/", envKeys: ["DEBUG"], secrets: ["db_password"],
                terminal: false, timeoutMs: 60000),
            caller: HookPayload.Caller(uid: 1000, user: "alice", pid: 4242), executor: executor)
    }

    func run(_ hook: HookConfig, input: [UInt8] = Array("{}\n".utf8)) async -> HookProcess.Ran {
        await HookProcess(spawner: PosixSpawner()).run(hook, input: input, executionID: "01exec")
    }

    func text(_ ran: HookProcess.Ran) -> String { String(decoding: ran.output, as: UTF8.self) }

    // MARK: - The payload

    @Test func thePayloadIsExactlyVersionOneWithNamesOnly() {
        var subject = Self.subject()
        subject.reason = "INC-1: restart"
        let bytes = subject.payload(.preExec, hook: "window", timeMs: 1_700_000_000_000).bytes
        let expected =
            #"{"approval":null,"break_glass":false,"caller":{"pid":4242,"uid":1000,"user":"alice"},"event":"pre_exec","#
            + #""execution":{"argv":["systemctl","restart","nginx"],"command":"/usr/bin/systemctl","cwd":"/","#
            + #""env_keys":["DEBUG"],"executor":"prod","id":"01exec","run_as":"deploy:deploy","#
            + #""secrets":["db_password"],"terminal":false,"timeout_ms":60000},"hook":"window","#
            + #""reason":"INC-1: restart","time_ms":1700000000000,"version":1}"# + "\n"
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
        subject.result = HookPayload.Result(status: "succeeded", exitCode: 0, signal: nil, durationUsec: 12)
        let post = String(decoding: subject.payload(.postExec, hook: "chat", timeMs: 1).bytes, as: UTF8.self)
        #expect(post.contains(#""result":{"duration_usec":12,"exit_code":0,"signal":null,"status":"succeeded"}"#))
        #expect(post.contains(#""event":"post_exec""#))
    }

    @Test func theHookReadsItsPayloadOnStdinThenEndOfFile() async {
        let payload = Self.subject().payload(.preExec, hook: "h", timeMs: 5).bytes
        let ran = await run(Self.hook("cat"), input: payload)
        #expect(ran.status == .exited(0))
        #expect(ran.output == payload)
    }

    @Test func aLargePayloadTheHookNeverReadsDoesNotHangIt() async {
        let ran = await run(Self.hook("exit 0"), input: Array(repeating: 0x61, count: 4 << 20))
        #expect(ran.status == .exited(0) && !ran.timedOut)
    }

    // MARK: - Identity and environment

    @Test func itRunsAsItsUserInSlashWithTheFixedEnvironmentOnly() async throws {
        var hook = Self.hook("")
        hook.command = ["/usr/bin/env"]
        let environment = text(await run(hook)).split(separator: "\n").map(String.init).sorted()
        #expect(
            environment == [
                "LANG=C.UTF-8", "PATH=\(HookProcess.path)", "RUNVOY_EXECUTION_ID=01exec", "RUNVOY_HOOK_EVENT=pre_exec",
                "RUNVOY_HOOK_NAME=h",
            ])
        let ids = text(await run(Self.hook("id -u; id -g; pwd")))
        #expect(ids == "\(Self.nobody.uid)\n\(Self.nobody.gid)\n/\n")
    }

    // MARK: - Outcomes

    @Test func aNonZeroExitIsAVetoWithItsFirstLineCleaned() async {
        let hook = Self.hook(#"printf '\n  \n\033[31mout of \342\200\256window\033]0;x\007\r\nsecond\n'; exit 3"#)
        let verdict = HookRunner.judge(hook, await run(hook))
        #expect(verdict.outcome == .veto && verdict.refuses)
        #expect(verdict.reason == "[31mout of window]0;x")
        let silent = Self.hook("exit 7")
        #expect(HookRunner.judge(silent, await run(silent)).reason == "exited 7")
        let long = Self.hook("head -c 1000 /dev/zero | tr '\\0' x; exit 1")
        #expect(HookRunner.judge(long, await run(long)).reason?.count == HookRunner.maxReason)
        let ok = Self.hook("echo fine")
        #expect(HookRunner.judge(ok, await run(ok)) == .init(outcome: .ok, reason: nil, refuses: false))
    }

    @Test func onlyVetoingEventsRefuseAndOnErrorDecidesFailures() async {
        let veto = Self.hook("exit 1", event: .postExec)
        #expect(HookRunner.judge(veto, await run(veto)).refuses == false)
        var missing = Self.hook("")
        missing.command = ["/nonexistent/hook"]
        let ran = await run(missing)
        #expect(ran.spawnError != nil && ran.status == nil)
        #expect(HookRunner.judge(missing, ran).outcome == .error && HookRunner.judge(missing, ran).refuses)
        missing.onErrorWritten = .allow
        #expect(HookRunner.judge(missing, ran).refuses == false)
        var breakGlass = missing
        breakGlass.event = .onBreakGlass
        breakGlass.onErrorWritten = .deny
        #expect(HookRunner.judge(breakGlass, ran).refuses == false)
    }

    /// The hook and the process it leaves behind in its group are killed at the timeout.
    @Test func theTimeoutKillsTheWholeProcessGroup() async throws {
        let hook = Self.hook("sleep 1000 & echo $!; sleep 1000", timeout: .seconds(1))
        let ran = await run(hook)
        #expect(ran.timedOut && ran.status == .signaled(SIGKILL))
        let verdict = HookRunner.judge(hook, ran)
        #expect(verdict.outcome == .error && verdict.refuses && verdict.reason == "timed out after 1s")
        let child = try #require(pid_t(text(ran).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await Self.waitGone(child))
    }

    /// A hook ends with the daemon (review of hooks, L3): the hook's process gets SIGKILL when the thread that
    /// spawned and supervises it ends, set after the change to the hook's user (which would clear it). Without it,
    /// a hook running when a daemon without systemd's cgroup (containment subreaper) died ran on with no timeout.
    @Test func aHooksParentDeathSignalIsSIGKILLUnderItsOwnUser() async {
        let probe = "import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); print(s.value)"
        let ran = await run(Self.hook("id -u; exec python3 -c '\(probe)'"))
        #expect(ran.status == .exited(0), "\(text(ran))")
        #expect(text(ran).split(separator: "\n") == ["65534", "\(SIGKILL)"], "\(text(ran))")
    }

    /// A hook that exits at once but leaves a child holding its output pipe: the child is killed with the group
    /// and the run ends with the hook's own exit.
    @Test func aChildLeftHoldingThePipeIsKilledWhenTheHookExits() async throws {
        let ran = await run(Self.hook("sleep 1000 & echo $!; exit 0", timeout: .seconds(600)))
        #expect(ran.status == .exited(0) && !ran.timedOut)
        let child = try #require(pid_t(text(ran).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await Self.waitGone(child))
    }

    /// A child that left the hook's session keeps the pipe, not the run: its output is read for a bounded time
    /// after the hook exits, and the run ends with the hook's exit.
    @Test func aChildThatLeftTheSessionDoesNotHoldTheRun() async throws {
        let ran = await run(Self.hook("setsid sleep 1000 & echo $!; exit 0", timeout: .seconds(600)))
        let child = try #require(pid_t(text(ran).trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(child, SIGKILL)
        #expect(ran.status == .exited(0) && !ran.timedOut)
    }

    @Test func outputIsCappedAndTheRestCounted() async {
        let ran = await run(Self.hook("head -c 200000 /dev/zero | tr '\\0' a; head -c 1000 /dev/zero >&2"))
        #expect(ran.status == .exited(0))
        #expect(ran.output.count == HookProcess.outputCap)
        #expect(ran.dropped == 201_000 - HookProcess.outputCap)
    }

    // MARK: - The runner

    @Test func globalHooksRunFirstAndTheFirstRefusalStopsTheRest() async throws {
        let directory = NSTemporaryDirectory() + "hooks-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileSystem.removeTree(directory) }
        let store = try ExecutionStore(stateDirectory: directory)
        var config = try ConfigLoader.parse(
            yaml: "executors: {prod: {run_as: {user: nobody}, commands: any}}", file: "hooks.yaml")
        config.audit.failClosed = false
        config.hooks = [Self.hook("echo one", name: "one"), Self.hook("echo no; exit 1", name: "two")]
        var executor = config.executors[0]
        executor.hooks = [Self.hook("echo three", name: "three"), Self.hook("echo post", event: .postExec)]
        #expect(HookRunner.hooks(.preExec, config: config, executor: executor).map(\.name) == ["one", "two", "three"])
        let runner = HookRunner(
            spawner: PosixSpawner(), store: store, logger: Logger(label: "HookRunnerTests"),
            journal: Journal(socketPath: "/nonexistent/journal.sock"))
        let refusal = await runner.run(.preExec, Self.subject(executor: executor), config: config)
        #expect(refusal?.code == .hookRefused)
        #expect(refusal?.message == "pre_exec hook 'two' refused: no")
        let runs = try store.hookRuns(executionID: "01exec")
        #expect(runs.map(\.hook) == ["one", "two"])
        #expect(runs.map(\.outcome) == ["ok", "veto"] && runs.map(\.output) == ["one\n", "no\n"])
        #expect(runs[1].exitCode == 1 && runs[1].reason == "no" && runs[0].user == "nobody")
        #expect(await runner.run(.postExec, Self.subject(executor: executor), config: config) == nil)
        #expect(try store.hookRuns(executionID: "01exec").count == 3)
    }

    @Test func aStatusReplyCarriesHookOutputWithinItsBudget() {
        let run = { (output: String) in
            HookRunInfo(
                hook: "h", event: "post_exec", user: "nobody", startedAtMs: 0, durationUsec: 0, exitCode: 0,
                signal: nil, timedOut: false, outcome: "ok", reason: nil, output: output, outputDropped: 1,
                approvalId: nil)
        }
        let runs = RequestContext.budgeted([run("aaaa"), run("bbbbbb"), run("cc")], budget: 7)
        #expect(runs.map(\.output) == ["aaaa", "", "cc"])
        #expect(runs.map(\.outputDropped) == [1, 7, 1])
    }

    /// Waits (bounded) until `pid` is gone or a zombie.
    static func waitGone(_ pid: pid_t) async -> Bool {
        // Polled with Task.sleep, not usleep: a blocked cooperative thread stalls every other in-process suite.
        for _ in 0..<2000 {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return false
    }
}
