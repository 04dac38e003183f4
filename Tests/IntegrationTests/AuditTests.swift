import Foundation
import Glibc
import Testing

/// Decisions and executions leave the right journal entries; denials are refused and audited; a journal that
/// cannot be written stops executions (fail-closed).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AuditTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture()
    }

    deinit {
        daemon.stop()
    }

    @Test func anExecutionTellsItsWholeStoryInTheJournal() throws {
        let out = try daemon.ctl(["exec", "--", "sh", "-c", "exit 5"], asUser: "nobody")
        #expect(out.status == 5)
        let id = try #require(ExecTests.executionID(out.stderrText))
        let entries = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 })
        let kinds = entries.compactMap { $0["RUNVOY_EVENT"] }
        #expect(kinds == ["decision", "execution_started", "execution_finished"])
        for entry in entries {
            #expect(entry["SYSLOG_IDENTIFIER"] == "runvoyd")
            #expect(entry["RUNVOY_CALLER_UID"] == "65534")
            #expect(entry["RUNVOY_CALLER_USER"] == "nobody")
            #expect(entry["RUNVOY_EXECUTOR"] == "default")
            #expect(entry["RUNVOY_RUN_AS"] == "nobody:nogroup")
            #expect(entry["RUNVOY_ARGV"] == #"["sh","-c","exit 5"]"#)
            #expect(entry["RUNVOY_CALLER_PID"].flatMap(Int.init) ?? 0 > 0)
            #expect(entry["MESSAGE_ID"]?.count == 32)
            #expect(entry["PRIORITY"] != nil)
        }
        #expect(entries[0]["RUNVOY_DECISION"] == "allow")
        #expect(entries[0]["MESSAGE_ID"] == "787f0a272bf243ed98b3018cc90a184e")
        #expect(entries[1]["MESSAGE_ID"] == "1d048f66969c4a758be0048c50380029")
        #expect(entries[2]["MESSAGE_ID"] == "e8390f8c07ed424c9272b23a12e6357f")
        #expect(entries[2]["RUNVOY_EXIT_STATUS"] == "5")
        #expect(entries[2]["RUNVOY_DURATION_USEC"].flatMap(Int.init) ?? -1 >= 0)
    }

    @Test func aUserNotAllowedOnAnExecutorIsDeniedAndAudited() throws {
        let out = try daemon.ctl(["exec", "-e", "staff", "--", "id"], asUser: "nobody")
        #expect(out.status == 125)
        #expect(out.stderrText.contains("permission_denied"))
        #expect(out.stderrText.contains("may not use executor 'staff'"))
        #expect(out.stderrText.contains("ask the test suite"))
        let denials = try Harness.journal([
            "RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=staff", "RUNVOY_CALLER_UID=65534",
        ])
        #expect(denials.last?["RUNVOY_ARGV"] == #"["id"]"#)
        #expect(denials.last?["RUNVOY_REASON"]?.contains("permission_denied") == true)
        #expect(denials.last?["PRIORITY"] == "4")
    }

    @Test func commandRulesAreEnforcedAndAudited() throws {
        let allowed = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "echo", "hi", "there"], asUser: "nobody")
        #expect(allowed.status == 0)
        #expect(allowed.stdoutText == "hi there\n")
        let exact = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "id", "-u"], asUser: "nobody")
        #expect(exact.status == 0)
        #expect(exact.stdoutText == "65534\n")
        let refused = try daemon.ctl(["exec", "-q", "-e", "limited", "--", "id", "-g"], asUser: "nobody")
        #expect(refused.status == 125)
        #expect(refused.stderrText.contains("command_not_allowed"))
        let denials = try Harness.journal([
            "RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=limited",
        ])
        #expect(denials.contains { $0["RUNVOY_ARGV"] == #"["id","-g"]"# })
    }

    @Test func onlyTheStarterOrRootMaySignalAnExecutionByID() throws {
        let started = try daemon.ctl(["exec", "--detach", "--", "sleep", "30"])
        let id = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let request = #"{"v":1,"id":2,"method":"signal","params":{"signal":"TERM","execution_id":"\#(id)"}}"#
        let script =
            "import socket,struct,sys,json\n"
            + "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b=sys.argv[2].encode()\n"
            + "s.sendall(struct.pack('>I',len(b))+b); n=struct.unpack('>I',s.recv(4,socket.MSG_WAITALL))[0]\n"
            + "print(s.recv(n,socket.MSG_WAITALL).decode())\n"
        let path = daemon.directory + "/signal.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let other = try Harness.run(
            ["/usr/sbin/runuser", "-u", "nobody", "--", "/usr/bin/env", "python3", path, daemon.socketPath, request])
        let unknown = try Harness.run([
            "/usr/bin/env", "python3", path, daemon.socketPath,
            request.replacingOccurrences(of: id, with: "01aaaaaaaaaaaaaaaaaaaaaaaa"),
        ])
        #expect(unknown.stdoutText.contains("invalid_argument"))
        // Another user's execution is answered as one that does not run; the journal has the refusal.
        #expect(
            other.stdoutText == unknown.stdoutText.replacingOccurrences(of: "01aaaaaaaaaaaaaaaaaaaaaaaa", with: id))
        let refusal = try Harness.journal([
            "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=signal", "RUNVOY_EXECUTION_ID=\(id)",
        ])
        #expect(refusal.first?["RUNVOY_REASON"]?.contains("started by another user") == true)
        let root = try Harness.run(["/usr/bin/env", "python3", path, daemon.socketPath, request])
        #expect(root.stdoutText.contains(#""delivered":true"#))
        let finished = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished"])
        #expect(finished.first?["RUNVOY_SIGNAL"] == String(SIGTERM))
    }

    @Test func unknownExecutorIsASpecificError() throws {
        let out = try daemon.ctl(["exec", "-e", "nope", "--", "true"])
        #expect(out.status == 125)
        #expect(out.stderrText.contains("no_such_executor"))
    }

    @Test func rootMayUseEveryExecutor() throws {
        let out = try daemon.ctl(["exec", "-q", "-e", "staff", "--", "id", "-un"])
        #expect(out.status == 0)
        #expect(out.stdoutText == "nobody\n")
    }

    @Test func secretsInEnvironmentValuesNeverReachTheJournal() throws {
        let out = try daemon.ctl(["exec", "--env", "TF_VAR_token=s3cr3t-value-xyz", "--", "true"])
        #expect(out.status == 0)
        let id = try #require(ExecTests.executionID(out.stderrText))
        let entries = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 })
        #expect(entries.count == 3)
        for entry in entries {
            #expect(entry["RUNVOY_ENV_KEYS"] == "TF_VAR_token")
            #expect(!entry.values.contains { $0.contains("s3cr3t-value-xyz") })
        }
    }

    @Test func withoutAJournalExecutionsAreRefused() throws {
        // A daemon in its own mount namespace where the journal socket is gone: fail-closed refuses to run.
        let jailed = try DaemonFixture(wrapper: [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            "mount -t tmpfs tmpfs /run/systemd/journal && exec \"$@\"", "sh",
        ])
        defer { jailed.stop() }
        let marker = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let out = try jailed.ctl(["exec", "-e", "root", "--", "touch", marker + "/ran"])
        #expect(out.status == 125)
        #expect(out.stderrText.contains("audit_unavailable"))
        #expect(access(marker + "/ran", F_OK) != 0)
        #expect(jailed.log.contains("every execution will be refused"))
    }
}
