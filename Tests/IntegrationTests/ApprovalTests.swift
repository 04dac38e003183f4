import Foundation
import Glibc
import RunvoyKit
import Testing

/// Approvals against a real runvoyd, as real Unix users made for the test (useradd; removed after): alice asks,
/// bob and carol approve (2 of {bob, carol, dave}); alice is an administrator and still cannot approve her own
/// request; a denial reaches alice; the daemon's gate cannot be bypassed.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class ApprovalTests {
    let daemon: DaemonFixture
    let suffix: String
    func user(_ name: String) -> String { "rva\(suffix)-\(name)" }
    var users: [String] { Self.names.map(user) }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        for name in Self.names {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin rva\(suffix)-\(name)")
        }
        daemon = try DaemonFixture(config: { Self.config(suffix: suffix, directory: $0) })
    }

    /// alice (an administrator) asks; bob, carol and dave approve; eve is a developer who may not approve; frank
    /// may connect but holds no role.
    static let names = ["alice", "bob", "carol", "dave", "eve", "frank"]

    /// `prod` needs 2 of {alice, bob, carol, dave} within 10 minutes, with a reason; `quick` needs 1 within 3 s;
    /// `slot` runs one command at a time, `echo` with 1 of {bob, carol} (alice may break the glass), `sleep` with
    /// none (review 2).
    static func config(suffix: String, directory: String) -> String {
        DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: """
                    approvals: {max_pending: 6, max_pending_per_user: 3}
                    roles:
                      admin: {users: [rva\(suffix)-alice]}
                      developer: {users: [rva\(suffix)-bob, rva\(suffix)-carol, rva\(suffix)-dave, rva\(suffix)-eve]}

                    """)
                + """
                  prod:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    approval:
                      count: 2
                      approvers: {users: [rva\(suffix)-alice, rva\(suffix)-bob, rva\(suffix)-carol, rva\(suffix)-dave]}
                      expires: 10m
                      reason: required
                    break_glass: {roles: [admin]}
                    commands:
                      - {allow: [echo, "*"]}
                      - {allow: [true], approval: {count: 0}}
                  quick:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    approval: {count: 1, approvers: {users: [rva\(suffix)-bob]}, expires: 3s}
                    commands: any
                  slot:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    concurrency: 1
                    approval: {count: 1, approvers: {users: [rva\(suffix)-bob, rva\(suffix)-carol]}, expires: 9m}
                    break_glass: {users: [rva\(suffix)-alice]}
                    commands:
                      - {allow: ["echo", "*"]}
                      - {allow: [sleep, "*"], approval: {count: 0}}

                """
    }

    deinit {
        daemon.stop()
        for name in users { try? AuthorizationTests.sh("userdel \(name)") }
    }

    func ctl(_ who: String, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user(who))
    }

    /// A detached request as alice; its id.
    func request(_ words: [String], reason: String = "INC-1: test") throws -> String {
        let out = try ctl("alice", ["exec", "-e", "prod", "--detach", "--reason", reason, "--"] + words)
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(out.stderrText.contains("waits for approval"))
        return out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The execution's status, once it is one of `statuses` (polled, bounded).
    func status(_ id: String, until statuses: [String]) throws -> String {
        let deadline = Date().addingTimeInterval(30)
        var last = ""
        while Date() < deadline {
            let out = try ctl("alice", ["status", "--json", id])
            last = out.stdoutText
            if statuses.contains(where: { last.contains("\"status\":\"\($0)\"") }) { return last }
            usleep(50_000)
        }
        throw HarnessError("execution \(id) never reached \(statuses): \(last)")
    }

    @Test func twoOtherPeopleApproveThenItRunsAndTheRequesterNeverCounts() throws {
        let id = try request(["echo", "approved-output"])
        #expect(try status(id, until: ["awaiting_approval"]).contains("awaiting_approval"))
        let own = try ctl("alice", ["approve", id])
        #expect(own.status != 0)
        #expect(own.stderrText.contains("your own request"), "\(own.stderrText)")
        let outsider = try ctl("eve", ["approve", id])
        #expect(outsider.status != 0)
        #expect(outsider.stderrText.contains("no request"), "\(outsider.stderrText)")
        let first = try ctl("bob", ["approve", id, "--comment", "ok"])
        #expect(first.status == 0, "\(first.stderrText)")
        #expect(first.stdoutText.contains("pending, 1/2 approvals"), "\(first.stdoutText)")
        let again = try ctl("bob", ["approve", id])
        #expect(again.status != 0)
        #expect(again.stderrText.contains("answered"), "\(again.stderrText)")
        let second = try ctl("carol", ["approve", id])
        #expect(second.status == 0, "\(second.stderrText)")
        _ = try status(id, until: ["succeeded"])
        let logs = try ctl("alice", ["logs", id])
        #expect(logs.stdoutText.contains("approved-output"))
        let decided = try Harness.journal(["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)"])
        #expect(decided.contains { $0["RUNVOY_STATE"] == "approved" })
        // Its launch records say which request, approved by whom, for what.
        for event in ["decision", "execution_started"] {
            let launch = try Harness.journal(["RUNVOY_EVENT=\(event)", "RUNVOY_EXECUTION_ID=\(id)"])
            #expect(launch.first?["RUNVOY_APPROVAL_ID"] == id, "\(event): \(launch)")
            #expect(launch.first?["RUNVOY_APPROVED_BY"]?.split(separator: ",").count == 2, "\(event): \(launch)")
            #expect(launch.first?["RUNVOY_APPROVAL_DIGEST"]?.hasPrefix("sha256:") == true, "\(event): \(launch)")
        }
    }

    @Test func aDenialEndsTheRequestAndItsRowWithTheComment() throws {
        let id = try request(["echo", "never"])
        let denied = try ctl("dave", ["deny", id, "--comment", "not during the freeze"])
        #expect(denied.status == 0, "\(denied.stderrText)")
        let record = try status(id, until: ["cancelled"])
        #expect(record.contains("not during the freeze"), "\(record)")
        let late = try ctl("bob", ["approve", id])
        #expect(late.status != 0)
    }

    @Test func theReasonIsRequiredAndRuleExceptionsNeedNoApproval() throws {
        let missing = try ctl("alice", ["exec", "-e", "prod", "--", "echo", "x"])
        #expect(missing.status != 0)
        #expect(missing.stderrText.contains("requires --reason"), "\(missing.stderrText)")
        let exempt = try ctl("bob", ["exec", "-e", "prod", "--", "true"])
        #expect(exempt.status == 0, "\(exempt.stderrText)")
    }

    @Test func breakGlassRunsAtOnceAuditedCriticalAndIsListedForReview() throws {
        let noReason = try ctl("alice", ["exec", "-e", "prod", "--break-glass", "--", "echo", "x"])
        #expect(noReason.status != 0 && noReason.stderrText.contains("--reason"), "\(noReason.stderrText)")
        let needless = try ctl("alice", ["exec", "-e", "prod", "--break-glass", "--reason", "r", "--", "true"])
        #expect(needless.status != 0 && needless.stderrText.contains("needs no approval"), "\(needless.stderrText)")
        let refused = try ctl("bob", ["exec", "-e", "prod", "--break-glass", "--reason", "fire", "--", "echo", "x"])
        #expect(refused.status != 0)
        #expect(refused.stderrText.contains("may not break the glass"), "\(refused.stderrText)")
        let out = try ctl("alice", ["exec", "-e", "prod", "--break-glass", "--reason", "fire", "--", "echo", "glass"])
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(out.stdoutText.contains("glass"))
        let records = try Harness.journal(["RUNVOY_EVENT=break_glass", "RUNVOY_CALLER_USER=\(user("alice"))"])
        #expect(records.contains { $0["PRIORITY"] == "2" && $0["RUNVOY_REQUEST_REASON"] == "fire" }, "\(records)")
        let id = try #require(records.first?["RUNVOY_APPROVAL_ID"])
        let started = try Harness.journal(["RUNVOY_EVENT=execution_started", "RUNVOY_EXECUTION_ID=\(id)"])
        #expect(started.first?["RUNVOY_BREAK_GLASS"] == "1" && started.first?["RUNVOY_APPROVAL_ID"] == id, "\(started)")
        let listed = try ctl("bob", ["approvals", "--break-glass"])
        #expect(listed.stdoutText.contains("BREAK-GLASS"), "\(listed.stdoutText)")
        // Reviewed later by one of the executor's approvers, never by whoever broke the glass.
        let own = try ctl("alice", ["approve", id, "--comment", "fine"])
        #expect(own.status != 0 && own.stderrText.contains("your own"), "\(own.stderrText)")
        let review = try ctl("bob", ["approve", id, "--comment", "checked the fix"])
        #expect(review.status == 0, "\(review.stderrText)")
        #expect(try ctl("bob", ["approvals", "--break-glass"]).stdoutText.contains("no requests"))
        let reviewed = try Harness.journal(["RUNVOY_EVENT=approval_answered", "RUNVOY_APPROVAL_ID=\(id)"])
        #expect(reviewed.first?["RUNVOY_ANSWER"] == "review" && reviewed.first?["RUNVOY_COMMENT"] == "checked the fix")
    }
}
