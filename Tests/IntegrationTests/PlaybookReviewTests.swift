import Foundation
import Glibc
import RunvoyKit
import Testing

/// Security review of playbooks (issue 19), against a real runvoyd and the real journal: each test is a finding of
/// docs/REVIEW-playbooks.md and fails on the code it was written against.
@Suite(.enabled(if: Harness.isRoot && Harness.hasJournal, "needs root (playbook files) and a journal"))
struct PlaybookReviewTests {
    static let playbook = """
        description: runs until killed
        steps:
          - name: hang
            executor: staff
            argv: [/bin/sleep, "600"]

        """

    static let startedID = "37ab2571e1914ce79111ffc2a202f5a3"
    static let finishedID = "0f12874282e146118c5c7ab4dae73e86"

    /// A daemon killed during a run: the next one ends the run `lost` in the history, and the audit trail must say
    /// so too (every `playbook_run_started` has its end), as it does for each lost execution.
    @Test func aRunLeftByAKilledDaemonGetsItsEndRecord() throws {
        var configText = ""
        let first = try DaemonFixture(config: { directory in
            mkdir(directory + "/playbooks", 0o755)
            try? Self.playbook.write(toFile: directory + "/playbooks/hang.yaml", atomically: true, encoding: .utf8)
            configText = DaemonFixture.standardConfig(directory: directory)
            return configText
        })
        let client = try ChildProcess(
            [Harness.runvoyctl, "playbook", "run", "--socket", first.socketPath, "hang"],
            stdoutPath: first.directory + "/ctl.out", stderrPath: first.directory + "/ctl.err")
        let started = try Harness.journal(
            ["MESSAGE_ID=\(Self.startedID)", "_PID=\(first.process.pid)"], seconds: 120)
        let runID = try #require(started.first?["RUNVOY_RUN_ID"], "no playbook_run_started: \(first.log)")
        // Wait for the step to run, then kill the daemon as a crash (or an OOM kill) would.
        _ = Harness.waitUntil(seconds: 120) {
            (try? Harness.journal(["RUNVOY_RUN_ID=\(runID)", "RUNVOY_STEP=hang"], seconds: 0.1))?.isEmpty == false
        }
        first.process.signal(SIGKILL)
        _ = first.process.wait()
        client.signal(SIGKILL)
        _ = client.wait()

        let second = try DaemonFixture(
            config: { directory in
                mkdir(directory + "/playbooks", 0o755)
                try? Self.playbook.write(toFile: directory + "/playbooks/hang.yaml", atomically: true, encoding: .utf8)
                return configText
            }, socketPath: first.socketPath)
        defer { second.stop() }
        let status = try second.ctl(["status", runID, "--json"])
        #expect(status.stdoutText.contains("lost"), "the history ends the run lost: \(status.stdoutText)")
        let finished = try Harness.journal(["MESSAGE_ID=\(Self.finishedID)", "RUNVOY_RUN_ID=\(runID)"], seconds: 60)
        #expect(!finished.isEmpty, "run \(runID) has a playbook_run_started record and no end in the audit trail")
    }
}
