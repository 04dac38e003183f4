import Foundation
import Glibc
import RunvoyKit
import Testing

/// Security review of the approvals (docs/REVIEW-appr.md), F1, as real users against the real daemon: proofs of
/// concept that FAIL on the branch `appr` as reviewed.
extension ApprovalTests {
    /// Rewrites the daemon's configuration file (`replacing` with `with`, which must be there) and reloads it.
    func reload(replacing: String, with: String) throws {
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let changed = text.replacingOccurrences(of: replacing, with: with)
        #expect(changed != text, "the configuration has no \(replacing)")
        try changed.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let out = try daemon.ctl(["reload"])
        #expect(out.status == 0, "\(out.stderrText)")
    }

    /// An attached request (runvoyctl exec without --detach) waits in `ExecHandler` and, once approved, is planned
    /// and started under the configuration of the moment it was *asked* (`context.config`), however long it
    /// waited: `fulfil` compares the policy of that stale plan with itself. A reload that asks for more approvals
    /// while it waits is ignored (a detached request, started by the daemon under the current configuration, is
    /// invalidated in the same case).
    @Test func anAttachedRequestIsStartedUnderThePolicyInForceWhenItIsApproved() throws {
        let (waiting, stderr) = try background(
            "alice", ["exec", "-e", "prod", "--reason", "INC-5", "--", "echo", "stale-policy"])
        let shown = try waitFor("runvoyctl approve ", in: stderr)
        let id = try #require(shown.components(separatedBy: "runvoyctl approve ").last?.prefix(26)).description
        // The administrators now want three approvals for prod.
        try reload(replacing: "count: 2\n", with: "count: 3\n")
        #expect(try ctl("bob", ["approve", id]).status == 0)
        #expect(try ctl("carol", ["approve", id]).status == 0)
        let status = waiting.wait(seconds: 30)
        let output = (try? String(contentsOfFile: stderr + ".out", encoding: .utf8)) ?? ""
        #expect(!output.contains("stale-policy"), "it ran with 2 approvals under a policy asking for 3")
        #expect(status != nil && status != 0)
        #expect(try info(id)["state"] as? String == "invalidated")
    }

    /// The same stale snapshot outlives a revocation: the requester's command is forbidden by a reload while the
    /// request waits (the rule that allowed it now denies it); approved, it runs anyway.
    @Test func anAttachedRequestWhoseCommandWasForbiddenWhileItWaitedNeverRuns() throws {
        let (waiting, stderr) = try background(
            "alice", ["exec", "-e", "prod", "--reason", "INC-6", "--", "echo", "revoked-rule"])
        let shown = try waitFor("runvoyctl approve ", in: stderr)
        let id = try #require(shown.components(separatedBy: "runvoyctl approve ").last?.prefix(26)).description
        try reload(replacing: "- {allow: [echo, \"*\"]}", with: "- {deny: [echo, \"*\"]}")
        #expect(try ctl("bob", ["approve", id]).status == 0)
        #expect(try ctl("carol", ["approve", id]).status == 0)
        let status = waiting.wait(seconds: 30)
        let output = (try? String(contentsOfFile: stderr + ".out", encoding: .utf8)) ?? ""
        #expect(!output.contains("revoked-rule"), "a command the policy in force denies ran")
        #expect(status != nil && status != 0)
    }
}

extension ApprovalTests {
    /// The daemon's peak resident memory (VmHWM), in KiB.
    func peakKiB() -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(daemon.process.pid)/status", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// F5. Requests for approval are never removed (F4) and `approvals` reads `20 × limit` of them (up to 10 000)
    /// in full — `params` and `summary` each hold the whole argv — before it keeps only those its caller may see.
    /// alice asks and withdraws 40 times with a 900 KB argv (3 pending at a time is her only bound); then eve, who
    /// may see none of them, lists withdrawn requests once: the daemon loads them all (about 72 MB here; 20 GB
    /// with 10 000 such requests and `--limit 500`).
    @Test func listingRequestsOneMayNotSeeCostsTheDaemonNothing() throws {
        let path = daemon.directory + "/flood.py"
        try """
        import socket, struct, sys, json
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        def call(n, method, params):
            b = json.dumps({"v": 1, "id": n, "method": method, "params": params}).encode()
            s.sendall(struct.pack('>I', len(b)) + b)
            while True:
                h = s.recv(4, socket.MSG_WAITALL)
                f = json.loads(s.recv(struct.unpack('>I', h)[0], socket.MSG_WAITALL).decode())
                if f.get('id') == n and 'event' not in f: return f
        big = ['x' * 100000] * 9
        for i in range(int(sys.argv[2])):
            r = call(2 * i + 1, 'exec', {'argv': ['echo', str(i)] + big, 'executor': 'prod', 'reason': 'r',
                                         'detach': True})
            call(2 * i + 2, 'cancel', {'execution_id': r['result']['execution_id']})
        print('done', flush=True)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        chmod(daemon.directory, 0o755)
        let flood = try ChildProcess(
            ["/usr/sbin/runuser", "-u", user("alice"), "--", "/usr/bin/python3", path, daemon.socketPath, "40"],
            stdoutPath: daemon.directory + "/flood.out", stderrPath: daemon.directory + "/flood.err")
        #expect(
            flood.wait(seconds: 120) == 0,
            "\((try? String(contentsOfFile: daemon.directory + "/flood.err", encoding: .utf8)) ?? "")")
        let before = peakKiB()
        let listed = try ctl("eve", ["approvals", "--json", "--state", "withdrawn"])
        #expect(listed.status == 0, "\(listed.stderrText)")
        #expect(!listed.stdoutText.contains("xxxx"), "eve sees none of them")
        let grown = peakKiB() - before
        #expect(grown < 16 * 1024, "one listing of nothing raised the daemon's peak memory by \(grown) KiB")
    }
}

extension ApprovalTests {
    /// F6. `edit` (edit_open/edit_save) writes a file as an executor's `run_as` with no approval, on an executor
    /// whose every command needs two: nothing in the edit path looks at `approval`. One developer alone changes
    /// what prod's user reads (its configuration), or the script an approved request is about to run (the digest
    /// binds the command's path, never its content): the two-person rule does not hold for files.
    @Test func editingAFileOnAnExecutorThatNeedsApprovalNeedsApprovalToo() throws {
        let base = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        chmod(base, 0o755)
        mkdir("\(base)/conf", 0o755)
        let path = "\(base)/conf/app.conf"
        try "mode = safe\n".write(toFile: path, atomically: false, encoding: .utf8)
        try AuthorizationTests.sh("chown nobody:nogroup \(base)/conf \(path)")
        let editor = "\(base)/editor.sh"
        try "#!/bin/sh\necho 'mode = unsafe' > \"$1\"\n".write(toFile: editor, atomically: false, encoding: .utf8)
        chmod(editor, 0o755)
        try reload(
            replacing: "    break_glass: {roles: [admin]}\n",
            with: "    break_glass: {roles: [admin]}\n    editable: [\(base)/conf]\n")
        let out = try Harness.run([
            "/usr/sbin/runuser", "-u", user("bob"), "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(editor)",
            "TMPDIR=/tmp", Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "prod", path,
        ])
        let now = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        #expect(now == "mode = safe\n", "bob alone rewrote a file of prod (approval: 2) as its user: \(out.stderrText)")
        #expect(out.status != 0)
    }
}

extension ApprovalTests {
    /// F7. A refused answer leaves no trace: `approve`/`deny` throw the machine's refusal as is, never through
    /// `context.denied`, so the requester approving their own request (an administrator here), an approver who is
    /// not eligible, or a stale digest write no `request_denied` record — unlike every other refusal (cancel of
    /// another's execution, a method without its permission).
    @Test func refusedAnswersAreAuditedAsRequestDenied() throws {
        let id = try request(["echo", "self-approval"])
        #expect(try ctl("alice", ["approve", id]).status != 0)
        #expect(try ctl("eve", ["deny", id, "--comment", "x"]).status != 0)
        for who in ["alice", "eve"] {
            let denied = try Harness.journal([
                "RUNVOY_EVENT=request_denied", "RUNVOY_CALLER_USER=\(user(who))",
            ])
            #expect(
                denied.contains { ["approve", "deny"].contains($0["RUNVOY_METHOD"] ?? "") },
                "\(who)'s refused answer to \(id) was not audited")
        }
    }
}
