import Foundation
import Glibc
import RunvoyKit
import Testing

/// The rest of a request's life as real users (expiry, withdrawal, a waiting client told of a denial, a restart
/// with a request pending, a changed command, a stale digest) and what an attacker on the socket may try.
extension ApprovalTests {
    /// A raw client as `who` (python, as AuditTests does): sends one request frame and prints every frame it
    /// reads, one a line, until the reply; with `stall`, prints "sent" and reads nothing.
    func raw(_ who: String, _ request: String, stall: Bool = false) throws -> ChildProcess {
        let path = daemon.directory + "/raw.py"
        if !FileManager.default.fileExists(atPath: path) {
            try """
            import socket, struct, sys, time
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b = sys.argv[2].encode()
            s.sendall(struct.pack('>I', len(b)) + b)
            if sys.argv[3] == 'stall':
                print('sent', flush=True); time.sleep(600)
            while True:
                h = s.recv(4, socket.MSG_WAITALL)
                if len(h) < 4: break
                f = s.recv(struct.unpack('>I', h)[0], socket.MSG_WAITALL).decode()
                print(f, flush=True)
                if '"event"' not in f: break
            """.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            chmod(daemon.directory, 0o755)
        }
        let base = daemon.directory + "/raw-\(UInt32.random(in: 0...UInt32.max))"
        return try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", user(who), "--", "/usr/bin/python3", path, daemon.socketPath, request,
                stall ? "stall" : "read",
            ], stdoutPath: base + ".out", stderrPath: base + ".err")
    }

    /// What `raw` printed, once it exited.
    func rawOutput(_ process: ChildProcess) -> String {
        process.wait()
        let files = (try? FileManager.default.contentsOfDirectory(atPath: daemon.directory)) ?? []
        return files.filter { $0.hasPrefix("raw-") && $0.hasSuffix(".out") }
            .compactMap { try? String(contentsOfFile: daemon.directory + "/" + $0, encoding: .utf8) }
            .joined(separator: "\n")
    }

    /// The request as `who` sees it in `approvals --json`.
    func info(_ id: String, as who: String = "bob") throws -> [String: Any] {
        let out = try ctl(
            who, ["approvals", "--json", "--state", "pending,approved,fulfilled,denied,expired,withdrawn,invalidated"])
        let object = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
        let requests = object?["requests"] as? [[String: Any]] ?? []
        return try #require(requests.first { $0["id"] as? String == id }, "\(out.stdoutText) \(out.stderrText)")
    }

    /// A runvoyctl in the background as `who`, its stderr in a file.
    func background(_ who: String, _ arguments: [String]) throws -> (ChildProcess, String) {
        let stderr = daemon.directory + "/bg-\(UInt32.random(in: 0...UInt32.max)).err"
        let argv =
            [
                "/usr/sbin/runuser", "-u", user(who), "--", Harness.runvoyctl, arguments[0], "--socket",
                daemon.socketPath,
            ]
            + arguments.dropFirst()
        return (try ChildProcess(argv, stdoutPath: stderr + ".out", stderrPath: stderr), stderr)
    }

    /// Waits until `path` holds `text` (bounded).
    func waitFor(_ text: String, in path: String) throws -> String {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if content.contains(text) { return content }
            usleep(20_000)
        }
        throw HarnessError("\(path) never held \(text)")
    }

    // MARK: - Life

    @Test func anAttachedRequestExpiresAndItsClientIsToldSo() throws {
        let out = try ctl("alice", ["exec", "-e", "quick", "--", "echo", "too-late"])
        #expect(out.status != 0)
        #expect(out.stderrText.contains("approval_expired"), "\(out.stderrText)")
        #expect(out.stderrText.contains("waiting for approval 0/1"), "\(out.stderrText)")
        #expect(!out.stdoutText.contains("too-late"))
        let requested = try Harness.journal(["RUNVOY_EVENT=approval_requested", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(requested.first?["RUNVOY_APPROVAL_ID"])
        let decided = try Harness.journal(["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)"])
        #expect(decided.first?["RUNVOY_STATE"] == "expired", "\(decided)")
        #expect(try status(id, until: ["cancelled"]).contains("expired"))
    }

    @Test func anAttachedClientIsToldOfADenialWithItsComment() throws {
        let (waiting, stderr) = try background(
            "alice", ["exec", "-e", "prod", "--reason", "INC-2", "--", "echo", "never-runs"])
        let shown = try waitFor("runvoyctl approve ", in: stderr)
        let id = try #require(shown.components(separatedBy: "runvoyctl approve ").last?.prefix(26)).description
        #expect(try ctl("dave", ["deny", id, "--comment", "change freeze"]).status == 0)
        let status = waiting.wait(seconds: 30)
        #expect(status != nil && status != 0)
        let told = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
        #expect(told.contains("approval_denied") && told.contains("change freeze"), "\(told)")
    }

    /// Ctrl-C while waiting withdraws the request (before, runvoyctl left and said it did not run, while the
    /// request stayed pending and would have run once approved).
    @Test func ctrlCWhileWaitingForApprovalWithdrawsTheRequest() throws {
        let (waiting, stderr) = try background(
            "alice", ["exec", "-e", "prod", "--reason", "INC-3", "--", "echo", "interrupted"])
        let shown = try waitFor("runvoyctl approve ", in: stderr)
        let id = try #require(shown.components(separatedBy: "runvoyctl approve ").last?.prefix(26)).description
        // runuser's child is runvoyctl: the terminal's Ctrl-C reaches it.
        let children = try String(
            contentsOfFile: "/proc/\(waiting.pid)/task/\(waiting.pid)/children", encoding: .utf8)
        let ctl = try #require(children.split(separator: " ").first.flatMap { pid_t($0) })
        kill(ctl, SIGINT)
        #expect(waiting.wait(seconds: 30) != nil)
        let told = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
        #expect(told.contains("withdrew request \(id)"), "\(told)")
        #expect(try info(id)["state"] as? String == "withdrawn")
        #expect(try status(id, until: ["cancelled"]).contains("withdrawn by"))
    }

    /// `logs -f` of a request that waits for approval shows where it stands, then its output once it runs.
    @Test func logsFollowShowsApprovalEventsThenTheOutput() throws {
        let id = try request(["echo", "followed"])
        let (follower, stderr) = try background("alice", ["logs", "-f", id])
        _ = try waitFor("waiting for approval 0/2", in: stderr)
        #expect(try ctl("bob", ["approve", id]).status == 0)
        _ = try waitFor("waiting for approval 1/2", in: stderr)
        #expect(try ctl("carol", ["approve", id]).status == 0)
        #expect(follower.wait(seconds: 30) == 0)
        #expect((try? String(contentsOfFile: stderr + ".out", encoding: .utf8)) == "followed\n")
        // A follower of a request that ends without running is let go with its record.
        let denied = try request(["echo", "never"])
        let (second, secondErr) = try background("alice", ["logs", "-f", denied])
        _ = try waitFor("waiting for approval 0/2", in: secondErr)
        #expect(try ctl("dave", ["deny", denied, "--comment", "no"]).status == 0)
        #expect(second.wait(seconds: 30) == 0)
        #expect((try? String(contentsOfFile: secondErr + ".out", encoding: .utf8)) == "")
    }

    @Test func itsRequesterWithdrawsARequestWithCancel() throws {
        let id = try request(["echo", "withdrawn"])
        let other = try ctl("bob", ["cancel", id])
        #expect(other.status != 0, "only its requester (or kill_all) withdraws it")
        #expect(try ctl("alice", ["cancel", id]).status == 0)
        #expect(try status(id, until: ["cancelled"]).contains("withdrawn by"))
        #expect(try info(id)["state"] as? String == "withdrawn")
        #expect(try ctl("bob", ["approve", id]).status != 0)
        let decided = try Harness.journal(["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)"])
        #expect(decided.first?["RUNVOY_STATE"] == "withdrawn")
    }

    /// An approval is of one request: another command is another request, and an approval sent with the digest
    /// of what another request showed is refused.
    @Test func aChangedCommandIsANewRequestAndAStaleDigestIsRefused() throws {
        let first = try request(["echo", "one"])
        #expect(try ctl("bob", ["approve", first]).status == 0)
        let second = try request(["echo", "two"])
        let firstDigest = try #require(try info(first)["digest"] as? String)
        #expect(try info(second)["digest"] as? String != firstDigest)
        #expect((try info(second)["answers"] as? [Any])?.isEmpty == true, "bob's approval of the first is not of this")
        let stale = try raw(
            "carol", #"{"v":1,"id":2,"method":"approve","params":{"id":"\#(second)","digest":"\#(firstDigest)"}}"#)
        let reply = rawOutput(stale)
        #expect(reply.contains("conflict") && reply.contains("not the one you saw"), "\(reply)")
        #expect(try ctl("carol", ["approve", first]).status == 0)
        _ = try status(first, until: ["succeeded"])
        #expect(try ctl("alice", ["logs", first]).stdoutText == "one\n")
        #expect(try status(second, until: ["awaiting_approval"]).contains("awaiting_approval"))
    }

    /// A request waits in the state database through a restart, and runs once approved by the new daemon.
    @Test func aPendingDetachedRequestSurvivesARestartAndRunsOnceApproved() throws {
        let id = try request(["echo", "after-restart"])
        #expect(try ctl("bob", ["approve", id]).status == 0)
        daemon.stop()
        let state = daemon.directory + "/state"
        let second = try DaemonFixture(config: { directory in
            Self.config(suffix: self.suffix, directory: directory)
                .replacingOccurrences(of: "state_directory: \(directory)/state", with: "state_directory: \(state)")
        })
        defer { second.stop() }
        let listed = try second.ctl(["approvals", "--json"], asUser: user("carol"))
        #expect(listed.stdoutText.contains(id), "\(listed.stdoutText) \(listed.stderrText)")
        let approved = try second.ctl(["approve", id], asUser: user("carol"))
        #expect(approved.status == 0, "\(approved.stderrText)")
        let deadline = Date().addingTimeInterval(30)
        var record = ""
        while Date() < deadline, !record.contains("\"status\":\"succeeded\"") {
            record = try second.ctl(["status", "--json", id], asUser: user("alice")).stdoutText
            usleep(50_000)
        }
        #expect(record.contains("\"status\":\"succeeded\""), "\(record)")
        #expect(try second.ctl(["logs", id], asUser: user("alice")).stdoutText == "after-restart\n")
    }

    // MARK: - Attackers

    @Test func floodingPastTheBoundsIsBusyClearAndAudited() throws {
        for n in 0..<3 { _ = try request(["echo", "flood-\(n)"]) }
        let mine = try ctl("alice", ["exec", "-e", "prod", "--detach", "--reason", "x", "--", "echo", "4"])
        #expect(mine.status != 0)
        #expect(mine.stderrText.contains("busy") && mine.stderrText.contains("max_pending"), "\(mine.stderrText)")
        for who in ["bob", "carol", "dave"] {
            let out = try ctl(who, ["exec", "-e", "prod", "--detach", "--reason", "x", "--", "echo", who])
            #expect(out.status == 0, "\(out.stderrText)")
        }
        let everyone = try ctl("eve", ["exec", "-e", "prod", "--detach", "--reason", "x", "--", "echo", "7"])
        #expect(everyone.status != 0)
        #expect(everyone.stderrText.contains("busy"), "\(everyone.stderrText)")
        let refusals = try Harness.journal(["RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=prod"])
        #expect(refusals.contains { $0["RUNVOY_CALLER_USER"] == user("eve") }, "\(refusals)")
        // A request that needs no approval is not held up by them.
        #expect(try ctl("eve", ["exec", "-e", "prod", "--", "true"]).status == 0)
    }

    @Test func oversizedOrControlCharacterReasonsAndCommentsAreRefused() throws {
        let long = String(repeating: "x", count: 1025)
        let reason = try ctl("alice", ["exec", "-e", "prod", "--detach", "--reason", long, "--", "echo", "x"])
        #expect(reason.status != 0 && reason.stderrText.contains("at most 1024 bytes"), "\(reason.stderrText)")
        let escape = try ctl("alice", ["exec", "-e", "prod", "--detach", "--reason", "a\u{1b}[2Jb", "--", "echo", "x"])
        #expect(escape.status != 0 && escape.stderrText.contains("control characters"), "\(escape.stderrText)")
        let id = try request(["echo", "commented"])
        let deny = try ctl("bob", ["deny", id, "--comment", long])
        #expect(deny.status != 0 && deny.stderrText.contains("at most 1024 bytes"), "\(deny.stderrText)")
        let approve = try ctl("bob", ["approve", id, "--comment", "line\nbreak"])
        #expect(approve.status != 0 && approve.stderrText.contains("control characters"), "\(approve.stderrText)")
        #expect(try info(id)["state"] as? String == "pending")
    }

    /// Who may not see a request learns nothing of it: the answer to its id is the answer to an id that does not
    /// exist; a member of the socket's group with no role is refused every approval method, audited.
    @Test func outsidersLearnNothingAndTheRolelessAreRefusedAudited() throws {
        let id = try request(["echo", "private"])
        let unknown = "01aaaaaaaaaaaaaaaaaaaaaaaa"
        for method in ["approve", "deny"] {
            let extra = method == "deny" ? ["--comment", "no"] : []
            let real = try ctl("eve", [method, id] + extra)
            let none = try ctl("eve", [method, unknown] + extra)
            #expect(real.status != 0 && real.status == none.status)
            #expect(
                real.stderrText.replacingOccurrences(of: id, with: unknown) == none.stderrText, "\(real.stderrText)")
        }
        #expect(try ctl("eve", ["approvals"]).stdoutText.contains("no requests"))
        let cancel = try ctl("eve", ["cancel", id])
        #expect(cancel.status != 0)
        for arguments in [["approvals"], ["approve", id], ["deny", id, "--comment", "no"]] {
            let out = try ctl("frank", arguments)
            #expect(out.status != 0)
            #expect(out.stderrText.contains("permission_denied"), "\(out.stderrText)")
            #expect(!out.stdoutText.contains(id) && !out.stderrText.contains("private"))
        }
        // runvoyctl approve asks for the request first; the method itself, sent as is, is refused as well.
        let direct = rawOutput(
            try raw("frank", #"{"v":1,"id":2,"method":"approve","params":{"id":"\#(id)","digest":"sha256:x"}}"#))
        #expect(direct.contains("permission_denied") && !direct.contains("private"), "\(direct)")
        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_CALLER_USER=\(user("frank"))"], until: { $0.count >= 3 })
        // A user with no role has 3 refusals a minute recorded in full; the rest are counted (RefusalThrottle).
        #expect(denied.count == 3, "\(denied)")
        #expect(Set(denied.compactMap { $0["RUNVOY_METHOD"] }) == ["approvals", "deny"], "\(denied)")
        #expect(try info(id)["state"] as? String == "pending")
    }

    /// A client that asks and then reads nothing holds up no one: others are served, its request is answered,
    /// and runs (its output waits for the client, as any attached command's does).
    @Test func aClientThatStopsReadingWhileWaitingHoldsUpNoOne() throws {
        let stalled = try raw(
            "alice",
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["echo","stalled"],"executor":"prod","reason":"r"}}"#,
            stall: true)
        defer {
            stalled.signal(SIGKILL)
            stalled.wait()
        }
        let requested = try Harness.journal(["RUNVOY_EVENT=approval_requested", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(requested.first?["RUNVOY_APPROVAL_ID"])
        #expect(try ctl("bob", ["exec", "-e", "prod", "--", "true"]).status == 0)
        #expect(try ctl("bob", ["approve", id]).status == 0)
        #expect(try ctl("carol", ["approve", id]).status == 0)
        _ = try status(id, until: ["succeeded"])
        #expect(try ctl("alice", ["logs", id]).stdoutText == "stalled\n")
    }
}
