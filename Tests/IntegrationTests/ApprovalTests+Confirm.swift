import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl approve` reads before it approves (review of approvals, D3): on a terminal it asks after showing the
/// request, and a script names the digest it read.
extension ApprovalTests {
    /// bob at a terminal: "n" approves nothing, "y" approves. carol's script passes a digest: another than the
    /// request's is refused, the request's counts.
    @Test func approveAsksOnATerminalAndADigestBindsWhatWasRead() throws {
        let id = try request(["echo", "confirm-me"])
        let argv = [
            "/usr/sbin/runuser", "-u", user("bob"), "--", Harness.runvoyctl, "approve", "--socket", daemon.socketPath,
            id,
        ]
        let no = try PtyDriver.run(
            argv, steps: [.expect(#"(?s)confirm-me.*approve this request\? \[y/N\]"#), .send("n\r")])
        #expect(no.status != 0 && no.output.contains("was not confirmed"), "\(no.output)")
        let listed = try ctl("bob", ["approvals", "--json"]).stdoutText
        #expect(listed.contains(id) && !listed.contains("\"approvals\":1"), "\(listed)")
        let yes = try PtyDriver.run(
            argv, steps: [.expect(#"\[y/N\]"#), .send("y\r"), .expect("1/2 approvals")])
        #expect(yes.status == 0, "\(yes.output)")
        let digest = try #require(
            listed.firstMatch(of: /"digest":"(sha256:[0-9a-f]+)"/).map { String($0.1) }, "\(listed)")
        let wrong = try ctl("carol", ["approve", "--digest", "sha256:" + String(repeating: "0", count: 64), id])
        #expect(wrong.status != 0, "\(wrong.stdoutText)")
        #expect(!wrong.stdoutText.contains("2/2 approvals"), "\(wrong.stdoutText)")
        let right = try ctl("carol", ["approve", "--digest", digest, id])
        #expect(right.status == 0 && right.stdoutText.contains("2/2 approvals"), "\(right.stderrText)")
    }
}
