import Foundation
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The history of playbook runs: a run's row, its steps found by `run_id`, its end, the ones a stopped daemon
/// left running, and retention removing a run only with the last of its steps.
struct PlaybookRunStoreTests {
    static func step(_ id: String, run: String?, createdAtMs: Int64) -> ExecutionInfo {
        ExecutionInfo(
            executionId: id, status: .succeeded, callerUid: 1000, callerUser: "alice", callerPid: 1, executor: "e",
            runAs: "nobody:nogroup", argv: ["true"], workingDirectory: "/", envKeys: [], pid: 2, exitCode: 0,
            signal: nil, createdAtMs: createdAtMs, startedAtMs: createdAtMs, finishedAtMs: createdAtMs,
            durationUsec: 1, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false,
            configDigest: "d", reason: nil, runId: run)
    }

    @Test func runsGroupTheirStepsEndAndGoWithTheirLastStep() throws {
        let directory = NSTemporaryDirectory() + "runvoy-runs-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ExecutionStore(stateDirectory: directory)
        let run = "run-01aaaaaaaaaaaaaaaaaaaaaaaa"
        try store.insertRun(
            PlaybookRunRecord(
                id: run, playbook: "deploy", callerUid: 1000, callerUser: "alice", paramsJSON: #"{"env":"dev"}"#,
                startedAtMs: 1000))
        try store.insert(Self.step("01aaaaaaaaaaaaaaaaaaaaaaa1", run: run, createdAtMs: 1000))
        try store.insert(Self.step("01aaaaaaaaaaaaaaaaaaaaaaa2", run: nil, createdAtMs: 1001))
        let steps = try store.list(ListParams(runId: run), ownerUid: nil)
        #expect(steps.map(\.executionId) == ["01aaaaaaaaaaaaaaaaaaaaaaa1"])
        #expect(steps.first?.runId == run)
        try store.endUnfinishedRuns(atMs: 1500)
        #expect(try store.run(run)?.state == "lost")
        try store.finishRun(run, state: "succeeded", atMs: 2000, stepsJSON: "[]")
        let ended = try #require(try store.run(run))
        #expect(ended.state == "succeeded" && ended.endedAtMs == 2000 && ended.stepsJSON == "[]")
        _ = try store.prune(olderThanMs: 999, maxTotalBytes: nil)
        #expect(try store.run(run) != nil)
        _ = try store.prune(olderThanMs: 5000, maxTotalBytes: nil)
        #expect(try store.run(run) == nil, "its steps went, so it goes too")
    }
}
