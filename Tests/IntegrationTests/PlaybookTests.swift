import Foundation
import Glibc
import RunvoyKit
import Testing

/// Playbook runs against a real runvoyd with playbook files beside its configuration, as real Unix users made for
/// the test (useradd; removed after): progress and output through runvoyctl, conditions and `continue_on_error`,
/// the history grouped under the run (`list --run`, `status RUN_ID`), the run's audit records in the journal
/// (by the daemon's `_PID`), refusals before anything runs, access, locks between two runs, trusted steps and a
/// schedule's user. Needs root and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class PlaybookTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var alice: String { "rvp\(suffix)-a" }
    var bob: String { "rvp\(suffix)-b" }
    var none: String { "rvp\(suffix)-n" }

    init() throws {
        for user in [alice, bob, none] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in [alice, bob, none] { try? AuthorizationTests.sh("userdel \(user)") }
    }

    /// A daemon where alice and bob are developers and `none` has no role, with `playbooks` (name: YAML).
    func daemon(_ playbooks: [String: String]) throws -> DaemonFixture {
        let (alice, bob) = (alice, bob)
        return try DaemonFixture(config: { directory in
            mkdir(directory + "/playbooks", 0o755)
            for (name, text) in playbooks {
                try? text.write(toFile: "\(directory)/playbooks/\(name).yaml", atomically: true, encoding: .utf8)
            }
            return DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: "roles:\n  developer: {users: [\(alice), \(bob)]}\n")
        })
    }

    func release() -> String {
        """
        description: Conditions, continue_on_error and a value that stays one argument
        access: {users: [\(alice)]}
        parameters:
          msg: {type: string, required: true, description: What to say}
          count: {type: integer, min: 1, max: 5, default: "2"}
        steps:
          - name: tolerated
            argv: [/bin/sh, -c, "exit 3"]
            continue_on_error: true
          - name: say
            argv: [/bin/echo, "{{msg}}"]
          - name: break
            argv: [/bin/sh, -c, "exit 4"]
          - name: never
            argv: [/bin/echo, never]
          - name: cleanup
            argv: [/bin/echo, "n={{count}}"]
            when: failed
        """
    }

    /// The run id runvoyctl printed on stderr.
    static func runID(_ stderr: String) -> String? {
        guard let range = stderr.range(of: "run run-") else { return nil }
        return String(stderr[range.lowerBound...].dropFirst(4).prefix(30))
    }

    @Test func aRunFollowsItsConditionsIsGroupedInTheHistoryAndAudited() throws {
        let daemon = try daemon(["release": release()])
        defer { daemon.stop() }
        let message = #"a b; $(id) "q" -n"#
        let run = try daemon.ctl(["playbook", "run", "release", "--param", "msg=\(message)"], asUser: alice)
        #expect(run.status == 4, "the last failed step's status; stderr: \(run.stderrText)")
        #expect(run.stdoutText == message + "\nn=2\n", "the value is one argument, as given")
        for line in [
            "[1/5] tolerated: failed (exit 3)", "[2/5] say: succeeded", "[3/5] break: failed (exit 4)",
            "[4/5] never: skipped", "[5/5] cleanup: succeeded", "failed",
        ] {
            #expect(run.stderrText.contains(line), "\(line) in \(run.stderrText)")
        }
        let runID = try #require(Self.runID(run.stderrText), "\(run.stderrText)")
        let listed = try daemon.ctl(["list", "--run", runID, "--json"], asUser: alice)
        let object = try JSONSerialization.jsonObject(with: Data(listed.stdoutText.utf8)) as? [String: Any]
        let executions = try #require(object?["executions"] as? [[String: Any]])
        #expect(executions.count == 4)
        #expect(executions.allSatisfy { $0["run_id"] as? String == runID })
        let status = try daemon.ctl(["status", runID], asUser: alice)
        #expect(status.status == 0 && status.stdoutText.contains("state        failed"), "\(status.stdoutText)")
        #expect(status.stdoutText.contains("never: skipped"))
        // bob may see only his own executions: alice's run is "no run" to him.
        #expect(try daemon.ctl(["status", runID], asUser: bob).status == 125)
        let started = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=playbook_run_started", "RUNVOY_RUN_ID=\(runID)",
        ])
        let params = try #require(started.first?["RUNVOY_PARAMS"])
        #expect(params == #"{"count":"2","msg":"a b; $(id) \"q\" -n"}"#)
        #expect(started.first?["RUNVOY_CALLER_USER"] == alice)
        let finished = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=playbook_run_finished", "RUNVOY_RUN_ID=\(runID)",
        ])
        #expect(finished.first?["RUNVOY_STATE"] == "failed")
        let steps = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EVENT=execution_finished", "RUNVOY_RUN_ID=\(runID)"],
            until: { $0.count >= 4 })
        #expect(steps.count == 4)
    }

    @Test func invalidParametersOrARefusedStepRunNothingAndAccessIsChecked() throws {
        let refused = """
            access: {users: ["*"]}
            steps:
              - name: fine
                executor: limited
                argv: [echo, fine]
              - name: refused
                executor: limited
                argv: [/bin/cat, /etc/hostname]
            """
        let daemon = try daemon(["release": release(), "refused": refused])
        defer { daemon.stop() }
        let invalid = try daemon.ctl(
            ["playbook", "run", "release", "--param", "count=9", "--param", "bogus=x"], asUser: alice)
        #expect(invalid.status == 125)
        for name in ["'bogus'", "'msg'", "'count'"] {
            #expect(invalid.stderrText.contains(name), "\(name) in \(invalid.stderrText)")
        }
        let step = try daemon.ctl(["playbook", "run", "refused"], asUser: alice)
        #expect(step.status == 125)
        #expect(step.stderrText.contains("step 'refused' (2 of 2)"), "\(step.stderrText)")
        let history = try daemon.ctl(["list", "--json"])
        #expect(!history.stdoutText.contains("execution_id"), "nothing ran: \(history.stdoutText)")
        // bob is not on release's access list; `none` has no role at all.
        let bobRun = try daemon.ctl(["playbook", "run", "release", "--param", "msg=x"], asUser: bob)
        #expect(bobRun.status == 125 && bobRun.stderrText.contains("may not run playbook 'release'"))
        #expect(try daemon.ctl(["playbook", "show", "release"], asUser: bob).status == 125)
        let bobList = try daemon.ctl(["playbook", "list"], asUser: bob)
        #expect(bobList.status == 0 && !bobList.stdoutText.contains("release"))
        #expect(bobList.stdoutText.contains("refused"))
        for arguments in [["playbook", "run", "release"], ["playbook", "show", "release"], ["playbook", "list"]] {
            let out = try daemon.ctl(arguments, asUser: none)
            #expect(out.status == 125 && out.stderrText.contains("has no runvoy role"), "\(out.stderrText)")
        }
        let shown = try daemon.ctl(["playbook", "show", "release"], asUser: alice)
        #expect(shown.stdoutText.contains("msg (string, required): What to say"), "\(shown.stdoutText)")
    }

    @Test func aTrustedStepRunsWhatTheRulesRefuseAndTheRecordSaysSo() throws {
        let trusted = """
            access: {users: ["*"]}
            steps:
              - name: host
                executor: limited
                argv: [/bin/cat, /etc/hostname]
                trusted: true
            """
        let daemon = try daemon(["trusted": trusted])
        defer { daemon.stop() }
        let run = try daemon.ctl(["playbook", "run", "trusted"], asUser: alice)
        #expect(run.status == 0, "\(run.stderrText)")
        let shown = try daemon.ctl(["playbook", "show", "trusted"], asUser: alice)
        #expect(shown.stdoutText.contains("TRUSTED"))
        let records = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=decision", "RUNVOY_STEP=host",
        ])
        #expect(records.first?["RUNVOY_TRUSTED"] == "1")
        #expect(records.first?["RUNVOY_REASON"]?.contains("trusted by the administrator") == true)
        // `playbook explain` says so before anything runs; the same command on `limited` without trust is refused.
        let explained = try daemon.ctl(["playbook", "explain", "trusted", "host"], asUser: alice)
        #expect(explained.status == 0, "\(explained.stderrText)")
        #expect(explained.stdoutText.contains("trusted: the executor's command rules are not applied"))
        #expect(explained.stdoutText.contains(#"command: ["/bin/cat","/etc/hostname"]"#), "\(explained.stdoutText)")
        let plain = try daemon.ctl(["explain", "-e", "limited", "--", "/bin/cat", "/etc/hostname"], asUser: alice)
        #expect(plain.status == 1, "\(plain.stdoutText)")
    }

    @Test func twoRunsWithAnExclusiveLockNeverOverlapAndAScheduleIsItsUsersOnly() throws {
        let locked = """
            access: {users: ["*"]}
            locks: [deploy]
            schedule: {calendar: daily, run_as_caller: \(bob)}
            steps:
              - name: hold
                argv: [/bin/sh, -c, "mkdir \\"$0\\" || exit 9; sleep 1; rmdir \\"$0\\"", "{{dir}}"]
            parameters:
              dir: {type: string, default: /tmp/rvp-lock-\(suffix)}
            """
        let daemon = try daemon(["locked": locked])
        defer { daemon.stop() }
        let first = try daemon.startCtl(["playbook", "run", "locked"])
        let second = try daemon.startCtl(["playbook", "run", "locked"])
        let statuses = [first.process.wait(seconds: 120), second.process.wait(seconds: 120)]
        #expect(statuses == [0, 0], "\(first.stderr)\n\(second.stderr)")
        let scheduled = try daemon.ctl(["playbook", "run", "locked", "--schedule"], asUser: alice)
        #expect(scheduled.status == 125)
        #expect(scheduled.stderrText.contains("only \(bob), the user of its schedule"), "\(scheduled.stderrText)")
    }
}

extension PlaybookTests {
    /// Leaving a run (Ctrl-C) kills its running step and skips the rest; the run ends `cancelled`, recorded.
    @Test func aClientThatLeavesEndsTheRunAndItsEndIsRecorded() throws {
        let long = """
            access: {users: ["*"]}
            steps:
              - name: wait
                argv: [/bin/sleep, "600"]
              - name: after
                argv: [/bin/echo, after]
                when: always
            """
        let daemon = try daemon(["long": long])
        defer { daemon.stop() }
        let client = try daemon.startCtl(["playbook", "run", "long"])
        #expect(Harness.waitUntil(seconds: 60) { client.stderr.contains("[1/2] wait: started") }, "\(client.stderr)")
        let runID = try #require(Self.runID(client.stderr))
        client.process.signal(SIGINT)
        #expect(client.process.wait(seconds: 60) == 128 + SIGINT)
        #expect(
            Harness.waitUntil(seconds: 120) {
                (try? daemon.ctl(["status", runID]))?.stdoutText.contains("state        cancelled") == true
            })
        let status = try daemon.ctl(["status", runID])
        #expect(status.stdoutText.contains("after: skipped"), "\(status.stdoutText)")
        #expect(status.stdoutText.contains("wait: failed"), "the step was killed: \(status.stdoutText)")
        let finished = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=playbook_run_finished", "RUNVOY_RUN_ID=\(runID)",
        ])
        #expect(finished.first?["RUNVOY_STATE"] == "cancelled")
    }
}
