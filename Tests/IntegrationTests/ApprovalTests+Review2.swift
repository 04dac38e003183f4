import Foundation
import Glibc
import RunvoyKit
import Testing

/// Second security review of approvals (docs/REVIEW-appr2.md), as real users against the real daemon: proofs of
/// concept that FAIL on main as reviewed (922d646).
extension ApprovalTests {
    /// alice runs `sleep 600` on `slot` (no approval; `concurrency: 1`): its one slot is hers while she likes.
    func holdSlot() throws -> String {
        let out = try ctl("alice", ["exec", "-e", "slot", "--detach", "--", "sleep", "600"])
        #expect(out.status == 0, "\(out.stderrText)")
        let id = out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try status(id, until: ["running"])
        return id
    }

    /// F1 (review 2). An approval is spent when its execution enters the queue (`fulfil` in `recordQueued`); at
    /// its turn the queue plans it again under the configuration in force (`redecided`) but only compares the
    /// digest (`approvalRefusal`): the approval policy in force is never compared with the one it was approved
    /// under. alice holds `slot`'s only slot, bob approves her `echo` (1 of 1), it waits in the queue; the
    /// administrators now want 2 approvals for it; alice frees the slot when she likes, and it runs with one.
    /// (F1 of the first review fixed this for a request started at once, not for one that waits in the queue.)
    @Test func anApprovedRequestWaitingInTheQueueRunsOnlyUnderThePolicyInForceAtItsTurn() throws {
        let holder = try holdSlot()
        let asked = try ctl(
            "alice", ["exec", "-e", "slot", "--detach", "--reason", "INC-8", "--", "echo", "queued-policy"])
        #expect(asked.status == 0, "\(asked.stderrText)")
        let id = asked.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try ctl("bob", ["approve", id]).status == 0)
        _ = try status(id, until: ["queued"])
        // The administrators now want two approvals for slot's commands.
        try reload(
            replacing: "approval: {count: 1, approvers: {users: [rva\(suffix)-bob, rva\(suffix)-carol]}, expires: 9m}",
            with: "approval: {count: 2, approvers: {users: [rva\(suffix)-bob, rva\(suffix)-carol]}, expires: 9m}")
        #expect(try ctl("alice", ["kill", holder]).status == 0)
        let final = try status(id, until: ["succeeded", "failed", "cancelled", "killed", "timed_out", "lost"])
        #expect(!final.contains("\"status\":\"succeeded\""), "it ran with 1 approval under a policy asking for 2")
        #expect(!(try ctl("alice", ["logs", id]).stdoutText.contains("queued-policy")))
        // It ends invalidated, audited, its row cancelled with what changed.
        #expect(final.contains("\"status\":\"cancelled\""), "\(final)")
        #expect(final.contains("asks for 2 approvals now, 1 when it was approved"), "\(final)")
        let decided = try Harness.journal(
            ["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)", "RUNVOY_STATE=invalidated"])
        #expect(decided.first?["RUNVOY_REASON"]?.contains("asks for 2 approvals now") == true, "\(decided)")
    }

    /// F1 (review 2), break-glass: a break-glass run that has to wait in the queue is planned again at its turn
    /// without asking whether `break_glass` still admits its requester. alice breaks the glass on `slot` while
    /// her own `sleep` holds it; the administrators take break-glass away from her; she frees the slot, and it
    /// runs.
    @Test func aBreakGlassRunWaitingInTheQueueRunsOnlyIfBreakGlassStillAdmitsItsRequester() throws {
        let holder = try holdSlot()
        let (glass, stderr) = try background(
            "alice", ["exec", "-e", "slot", "--break-glass", "--reason", "fire", "--", "echo", "queued-glass"])
        let requested = try Harness.journal(["RUNVOY_EVENT=break_glass", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(requested.first?["RUNVOY_APPROVAL_ID"])
        _ = try status(id, until: ["queued"])
        try reload(
            replacing: "break_glass: {users: [rva\(suffix)-alice]}", with: "break_glass: {users: [rva\(suffix)-dave]}")
        #expect(try ctl("alice", ["kill", holder]).status == 0)
        _ = glass.wait(seconds: 30)
        let output = (try? String(contentsOfFile: stderr + ".out", encoding: .utf8)) ?? ""
        #expect(
            !output.contains("queued-glass"), "a break-glass run ran after break-glass was taken from its requester")
        let final = try status(id, until: ["succeeded", "failed", "cancelled", "killed", "timed_out", "lost"])
        #expect(!final.contains("\"status\":\"succeeded\""))
        // Its record ends invalidated (audited), no run left to review; its client is told why.
        #expect(final.contains("\"status\":\"cancelled\""), "\(final)")
        #expect(final.contains("no longer admits user \(user("alice"))"), "\(final)")
        let decided = try Harness.journal(
            ["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)", "RUNVOY_STATE=invalidated"])
        #expect(!decided.isEmpty)
        let told = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
        #expect(told.contains("no longer admits"), "\(told)")
    }

    /// F2 (review 2), fixed: an attached `runvoyctl exec` forwards its input; approvers are told the command reads
    /// it (and its timeout), and so is the audit trail.
    @Test func approversAreToldThatAnAttachedRequestReadsItsRequestersInput() throws {
        let (waiting, stderr) = try background(
            "alice", ["exec", "-e", "slot", "--reason", "INC-9", "--", "echo", "reads-input"])
        let shown = try waitFor("runvoyctl approve ", in: stderr)
        let id = try #require(shown.components(separatedBy: "runvoyctl approve ").last?.prefix(26)).description
        let listed = try ctl("bob", ["approvals"])
        #expect(listed.stdoutText.contains("reads the requester's input (standard input)"), "\(listed.stdoutText)")
        #expect(listed.stdoutText.contains("timeout "), "\(listed.stdoutText)")
        let requested = try Harness.journal(["RUNVOY_EVENT=approval_requested", "RUNVOY_APPROVAL_ID=\(id)"])
        #expect(requested.first?["RUNVOY_STDIN"] == "pipe", "\(requested)")
        #expect(try ctl("bob", ["deny", id, "--comment", "reads its input"]).status == 0)
        _ = waiting.wait(seconds: 30)
        let detached = try ctl(
            "alice", ["exec", "-e", "slot", "--detach", "--reason", "INC-9", "--", "echo", "no-input"])
        let other = detached.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        // A detached request reads nothing (`--detach` forwards no input): nothing said.
        let listedOther = try ctl("bob", ["approvals"]).stdoutText
        let block = try #require(listedOther.components(separatedBy: other).dropFirst().first)
        let shownOther = try #require(block.components(separatedBy: "  digest ").first)
        #expect(shownOther.contains("no-input"), "\(listedOther)")
        #expect(!shownOther.contains("reads the requester's input"), "\(listedOther)")
        #expect(try ctl("alice", ["cancel", other]).status == 0)
    }
}
