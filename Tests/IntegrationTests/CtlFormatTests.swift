import RunvoyKit
import Testing

@testable import runvoyctl

/// How runvoyctl words what is unusual in an answer: output not stored or removed, a file edited but not changed,
/// partial usage figures, a run without a caller, a request on a terminal, a lock held while starting.
struct CtlFormatTests {
    @Test func statusSaysWhatOutputWasNotKeptAndWhatAnEditLeftAlone() {
        var info = ListCommandFormatTests.info("01statusformat000000000000")
        info.droppedBytes = 2048
        info.outputPruned = true
        info.edit = EditSummary(path: "/etc/motd", sha256Before: "aa", sha256After: "aa")
        info.usage = ResourceUsage(cpuSystemUsec: 30_000, memoryPeakBytes: 1 << 20, tasksPeak: 3, source: "cgroup")
        let text = StatusCommand.describe(info)
        #expect(
            text.contains("output:        0B stdout, 0B stderr; 2.0KiB not stored (cap); stored output removed"),
            "\(text)")
        #expect(text.contains("edited file:   /etc/motd (unchanged: nothing written)\n"), "\(text)")
        #expect(
            text.contains("usage:         cpu - user, 30ms system; memory peak 1.0MiB; tasks peak 3 (cgroup)\n"),
            "\(text)")
        info.reason = "disk full"
        #expect(StatusCommand.describe(info).contains("; 2.0KiB not stored; stored output"))
    }

    @Test func aRunWithoutItsCallerAndAStepWithoutAName() {
        let run = PlaybookRunResult(
            runId: "run-1", playbook: "deploy", state: "failed",
            steps: [
                PlaybookStepOutcome(index: 0, name: "", state: "failed", error: RunvoyError(.spawnFailed, "no sh"))
            ],
            params: ["b": "2", "a": "1"])
        #expect(
            StatusCommand.describe(run) == [
                "run          run-1", "playbook     deploy", "state        failed", "caller       ? (uid ?)",
                "params       a=1 b=2", "step 1       failed: no sh",
            ])
    }

    @Test func approvalLinesForATerminalRequestWithSecretsAndCutNames() {
        let info = ApprovalInfo(
            id: "01approvalformat0000000000", kind: "approval", state: .approved, requesterUid: 1000,
            requester: "alice", executor: "prod", runAs: "root", command: "vi", argv: ["vi"], cwd: "/", envKeys: ["A"],
            secrets: ["db"], terminal: true, timeoutMs: 600_000, reason: nil, createdAtMs: 0, expiresAtMs: 0,
            required: 1, approvers: ApproverList(roles: ["admin"]), answers: [], digest: "sha256:00", decision: nil,
            mayAnswer: false, envKeysTruncated: true)
        let lines = ApprovalDisplay.lines(info)
        #expect(lines.contains("  command vi in / on a terminal"), "\(lines)")
        #expect(lines.contains("  (environment names cut: only the first are shown)"))
        #expect(lines.contains("  secrets: db"))
        #expect(
            lines.contains(
                "  reads the requester's input (its terminal): what it does may come from there, unseen by approvers"))
        #expect(lines.contains("  timeout 10m"))
    }

    @Test func aRequestWithOnlyItsEnvironmentNamesCutIsNotApprovedUnseen() {
        let info = ApprovalInfo(
            id: "01unseenenv000000000000000", kind: "approval", state: .pending, requesterUid: 1000,
            requester: "alice", executor: "prod", runAs: "root", command: "env", argv: ["env"], cwd: "/",
            envKeys: ["A"], secrets: [], terminal: false, timeoutMs: nil, reason: nil, createdAtMs: 0,
            expiresAtMs: 0, required: 1, approvers: ApproverList(), answers: [], digest: "sha256:00", decision: nil,
            mayAnswer: true, envKeysTruncated: true)
        #expect(
            ApproveCommand.unseen(info).hasPrefix(
                "not approved: request 01unseenenv000000000000000 is too large to show whole (its environment names "
                    + "above are cut)"))
    }

    @Test func approvalWaitsInHoursAndApproversThatAreNotAList() {
        #expect(ApprovalDisplay.duration(3_600_000) == "1h")
        #expect(ApprovalDisplay.duration(5_460_000) == "1h31m")
        let frame: JSONValue = .object([
            "execution_id": .string("01x"), "approvals": .number(1), "required": .number(2),
            "approvers": .object(["users": .string("bob")]),
        ])
        #expect(ApprovalDisplay.waiting(frame).hasPrefix("waiting for approval 1/2 from no one,"))
    }

    @Test func aQueuedHolderWithoutItsTimeOrUser() {
        let event = QueueDisplayTests.event(
            waitingFor: "lock", holders: [.object(["execution_id": .string("01m8r2kqabcdefghijklmnopqr")])])
        #expect(QueueDisplay.describe(event) == "queued: 2nd for deploy (a lock); running: 01m8r2kq… by ? for 0s")
    }

    @Test func lockHoldersStartingSharedOrFromTheFuture() {
        let starting = LockHolder(executionId: nil, user: "alice", uid: 1000, executor: "db", shared: true, sinceMs: 0)
        #expect(LocksCommand.describe(starting, now: 61_000) == "(starting) alice on db shared for 1m1s")
        let overflowing = LockHolder(
            executionId: "01x", user: "bob", uid: 1001, executor: nil, shared: false, sinceMs: Int64.min)
        #expect(LocksCommand.describe(overflowing, now: Int64.max) == "01x bob for 0s")
    }

    @Test func valuesThatAreNotDurationsOrSizes() {
        #expect(ExecOptions.milliseconds("soon") == nil)
        #expect(ExecOptions.parseFast(["runvoyctl", "exec", "-e"]) == nil)
        #expect(GrantOptions.milliseconds("500ms") == nil)
        #expect(LogsCommand.parseSize("80x24").map { [$0.cols, $0.rows] } == [80, 24])
        #expect(LogsCommand.parseSize("80x0") == nil)
    }

    @Test func aParameterRangeOpenAtOneEnd() {
        #expect(
            PlaybookShowCommand.describe(PlaybookParameterInfo(name: "n", type: "int", max: 9)) == "n (int, ..9)")
        #expect(
            PlaybookShowCommand.describe(PlaybookParameterInfo(name: "n", type: "int", min: 1)) == "n (int, 1..)")
    }
}
