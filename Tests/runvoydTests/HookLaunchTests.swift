import Foundation
import Glibc
import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Hooks at the points of an execution's life, in process through `ExecutionManager` and the real spawner:
/// a `pre_exec` veto is a denial before any secret exists, and `post_exec` hooks are told the result and are
/// awaited by the manager's task group.
@Suite(.serialized) struct HookLaunchTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    static func hook(_ name: String, _ event: HookEvent, _ script: String) -> HookConfig {
        HookConfig(name: name, event: event, command: ["/bin/sh", "-c", script], user: "nobody")
    }

    @Test func aPreExecVetoIsADenialBeforeAnySecretExists() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var config = fixture.config
        // As root, to read the secrets' runtime directory (0700): it is still empty when pre_exec runs.
        var window = Self.hook("window", .preExec, "ls \(config.secrets.runtimeDirectory) | wc -l; exit 1")
        window.user = "root"
        config.hooks = [window]
        let manager = fixture.manager(PosixSpawner())
        var refusal: RunvoyError?
        do {
            _ = try await manager.start(
                ExecParams(argv: ["true"]), requestID: .number(1), caller: Self.root, config: config, sink: nil
            ) { _ in }
        } catch {
            refusal = error
        }
        // The hook saw no secret folder: secrets come after pre_exec.
        #expect(refusal?.code == .hookRefused && refusal?.message == "pre_exec hook 'window' refused: 0")
        let row = try fixture.row()
        #expect(row.status == .failed && row.reason == "hook_refused: pre_exec hook 'window' refused: 0")
        #expect(fixture.secretFolders.isEmpty)
        let runs = try fixture.store.hookRuns(executionID: row.executionId)
        #expect(runs.map(\.outcome) == ["veto"])
        let records = fixture.records()
        #expect(records.map(\.event) == ["hook_ran", "decision"], "\(records)")
        #expect(records.last?.reason == "hook_refused: pre_exec hook 'window' refused: 0")
    }

    @Test func postExecHooksAreToldTheResultAndAwaited() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var config = fixture.config
        config.executors[0].hooks = [Self.hook("chat", .postExec, "cat")]
        let manager = fixture.manager(PosixSpawner())
        var id = ""
        try await ExecutionLifetimeTests.running(manager) {
            let execution = try await manager.start(
                ExecParams(argv: ["sh", "-c", "exit 4"]), requestID: .number(2), caller: Self.root, config: config,
                sink: nil
            ) { _ in }
            id = execution.id
            _ = await execution.waitFinished()
        }
        // `running` returned once the task group ended: the hook's run is stored by then.
        let runs = try fixture.store.hookRuns(executionID: id)
        #expect(runs.map(\.hook) == ["chat"] && runs.first?.outcome == "ok")
        let payload = try #require(
            try JSONSerialization.jsonObject(with: Data((runs.first?.output ?? "").utf8)) as? [String: Any])
        let result = try #require(payload["result"] as? [String: Any])
        #expect(result["status"] as? String == "failed" && result["exit_code"] as? Int == 4)
        let output = runs.first?.output ?? ""
        #expect(output.range(of: "s3cret") == nil)
    }

    @Test func theStatusOfAnEndedExecutionForItsHooks() {
        let event = { (code: Int32?, signal: Int32?, timedOut: Bool) in
            ExitEvent(id: nil, executionId: "x", exitCode: code, signal: signal, timedOut: timedOut, durationUsec: 1)
        }
        #expect(ExecutionManager.hookStatus(event(0, nil, false)) == .succeeded)
        #expect(ExecutionManager.hookStatus(event(2, nil, false)) == .failed)
        #expect(ExecutionManager.hookStatus(event(nil, 9, false)) == .killed)
        #expect(ExecutionManager.hookStatus(event(nil, 9, true)) == .timedOut)
    }

    @Test func aHookOfAUserOrGroupThatDoesNotExistIsAnError() async {
        var hook = Self.hook("x", .preExec, "true")
        hook.user = "no-such-user-for-hooks"
        let ran = await HookProcess(spawner: PosixSpawner()).run(hook, input: [], executionID: nil)
        #expect(ran.spawnError?.contains("does not exist") == true)
        hook.user = "nobody"
        hook.group = "no-such-group-for-hooks"
        let again = await HookProcess(spawner: PosixSpawner()).run(hook, input: [], executionID: nil)
        #expect(again.spawnError?.contains("does not exist") == true)
        #expect(HookRunner.judge(hook, again).reason?.hasPrefix("cannot start: hook 'x' runs as group") == true)
    }
}
