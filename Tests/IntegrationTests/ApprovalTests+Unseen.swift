import Foundation
import Glibc
import RunvoyKit
import Testing

/// An approver must never approve what they were not shown (issue 18, approvals): a reply carries at most 64 KiB
/// of a request's argv, so `runvoyctl approve` refuses one it received cut unless told `--unseen-ok`.
extension ApprovalTests {
    /// alice asks to run `echo` with two arguments of 100 KiB (more than a reply carries); bob is refused without
    /// `--unseen-ok` (nothing is answered), told where the whole request is, and approves with it.
    @Test func approveRefusesARequestItCouldNotShowWholeWithoutUnseenOk() throws {
        let word = String(repeating: "x", count: 100 << 10)
        let id = try request(["echo", word, word])
        let listed = try ctl("bob", ["approvals"])
        #expect(listed.status == 0, "\(listed.stderrText)")
        #expect(listed.stdoutText.contains("argv cut"), "\(listed.stdoutText.prefix(500))")
        #expect(listed.stdoutText.utf8.count < 64 << 10)

        let refused = try ctl("bob", ["approve", id])
        #expect(refused.status != 0)
        #expect(refused.stdoutText.contains("argv cut"), "\(refused.stdoutText.suffix(500))")
        #expect(refused.stderrText.contains("--unseen-ok"), "\(refused.stderrText)")
        #expect(refused.stderrText.contains("approval_requested"), "\(refused.stderrText)")
        let shown = try ctl("alice", ["approvals", "--json"])
        let result = try JSONDecoder().decode(ApprovalsResult.self, from: Data(shown.stdoutText.utf8))
        let info = try #require(result.requests.first { $0.id == id })
        #expect(info.answers.isEmpty && info.state == .pending)
        #expect(info.argvTruncated && !info.isWhole)

        // The whole argv is in the request's audit record.
        let records = try Harness.journal(["RUNVOY_EVENT=approval_requested", "RUNVOY_APPROVAL_ID=\(id)"])
        let audited = try JSONDecoder().decode([String].self, from: Data((records.first?["RUNVOY_ARGV"] ?? "").utf8))
        #expect(audited == ["echo", word, word])

        let approved = try ctl("bob", ["approve", id, "--unseen-ok"])
        #expect(approved.status == 0, "\(approved.stderrText)")
        #expect(approved.stdoutText.contains("pending, 1/2 approvals"), "\(approved.stdoutText.suffix(300))")
    }

    /// A listing pages as `list` does: `more` with `--limit`, then `--before` the last id for the next ones.
    @Test func aListingPagesWithMoreAndBefore() throws {
        let ids = try (1...3).map { try request(["echo", "page-\($0)"]) }
        let first = try ctl("bob", ["approvals", "--limit", "2", "--json"])
        let page = try JSONDecoder().decode(ApprovalsResult.self, from: Data(first.stdoutText.utf8))
        #expect(page.requests.map(\.id) == [ids[2], ids[1]] && page.more, "\(first.stdoutText)")
        let hinted = try ctl("bob", ["approvals", "--limit", "2"])
        #expect(hinted.stderrText.contains("add --before \(ids[1])"), "\(hinted.stderrText)")
        let next = try ctl("bob", ["approvals", "--limit", "2", "--before", ids[1], "--json"])
        let rest = try JSONDecoder().decode(ApprovalsResult.self, from: Data(next.stdoutText.utf8))
        #expect(rest.requests.map(\.id) == [ids[0]] && !rest.more, "\(next.stdoutText)")
        let wrong = try ctl("bob", ["approvals", "--before", "nope"])
        #expect(wrong.status != 0 && wrong.stderrText.contains("not a request id"), "\(wrong.stderrText)")
    }
}
