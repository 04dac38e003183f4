import Foundation
import Glibc
import Testing

/// Promises of docs/CONFIGURATION.md, SECURITY.md and AUDIT.md about what runvoyd says and does at start and when
/// an audit record that cannot stop anything is refused (docs/TESTING.md, "From promise to test").
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class StartupPromiseTests {
    /// docs/CONFIGURATION.md: an invalid file ends the start with exit status 78 (EX_CONFIG), whatever is wrong
    /// with it, after naming the problem where it stands; `--check-config` says 1 for the same file.
    @Test func aFileWithErrorsEndsTheStartWithStatus78() throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let valid = DaemonFixture.standardConfig(directory: directory)
        let broken = [
            "unknown key": valid.replacingOccurrences(
                of: "shutdown_grace: 10s", with: "shutdown_grace: 10s\nshutdon: 1s"),
            "wrong type": valid.replacingOccurrences(of: "max_connections: 4096", with: "max_connections: many"),
            "YAML syntax": valid + "\n  executors: [unclosed\n",
            "unknown user": valid.replacingOccurrences(
                of: "run_as: {user: root}", with: "run_as: {user: no-such-user}"),
        ]
        for (what, text) in broken.sorted(by: { $0.key < $1.key }) {
            let path = "\(directory)/\(what.replacingOccurrences(of: " ", with: "-")).yaml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let start = try Harness.run(
                [Harness.runvoyd, "--config", path], environment: ["RUNVOYD_LOG_STDERR": "1"], timeout: 30)
            #expect(start.status == 78, "\(what): \(start.stderrText)")
            #expect(start.stderrText.contains(path + ":"), "\(what) is not placed: \(start.stderrText)")
            #expect(access(directory + "/runvoyd.sock", F_OK) != 0, "\(what): a socket was made")
            let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", path])
            #expect(check.status == 1, "\(what): --check-config \(check.status)")
        }
        let missing = try Harness.run(
            [Harness.runvoyd, "--config", directory + "/absent.yaml"], environment: ["RUNVOYD_LOG_STDERR": "1"],
            timeout: 30)
        #expect(missing.status == 78, "\(missing.stderrText)")
    }

    /// docs/SECURITY.md, AUDIT.md and CONFIGURATION.md: `audit.fail_closed: false` is announced loudly at start, and
    /// then every record the journal refuses goes to stderr as a `runvoyd-audit:` line while the command runs; a
    /// configuration without `roles` is warned about (only root can use runvoyd), and so is a secrets runtime
    /// directory that is not a tmpfs. A fail-closed daemon with roles announces none of the first two.
    @Test func aDevelopmentSetupIsAnnouncedAndItsRecordsGoToStderr() throws {
        let daemon = try DaemonFixture(
            config: {
                DaemonFixture.standardConfig(directory: $0)
                    .replacingOccurrences(of: "fail_closed: true", with: "fail_closed: false")
                    .replacingOccurrences(of: "roles:\n  developer: {users: [\"*\"]}\n", with: "")
            }, environment: ["RUNVOYD_JOURNAL_SOCKET": "/nonexistent/runvoy-journal.sock"])
        defer { daemon.stop() }
        let log = daemon.log
        #expect(log.contains("runvoyd: WARNING: audit is not fail-closed"), "\(log)")
        #expect(log.contains("AUDIT IS NOT FAIL-CLOSED (audit.fail_closed: false)"), "\(log)")
        #expect(log.contains("no roles are bound (`roles:`), so only root can use runvoyd"), "\(log)")
        #expect(
            log.contains("secret files go to \(daemon.directory)/secrets-run, which is not a tmpfs"),
            "\(log)")

        // No journal at all: the command runs, and its records are on stderr, in order.
        let out = try daemon.ctl(["exec", "--", "sh", "-c", "exit 3"])
        #expect(out.status == 3, "\(out.stderrText)")
        let id = try #require(ExecTests.executionID(out.stderrText))
        var events: [String] = []
        #expect(
            Harness.waitUntil {
                events = Self.fallbackRecords(daemon.log, executionID: id).compactMap { $0["RUNVOY_EVENT"] }
                return events.count >= 3
            })
        #expect(events == ["decision", "execution_started", "execution_finished"])

        let standard = try DaemonFixture()
        defer { standard.stop() }
        #expect(!standard.log.contains("not fail-closed") && !standard.log.contains("NOT FAIL-CLOSED"))
        #expect(!standard.log.contains("no roles are bound"))
    }

    /// docs/AUDIT.md, "Fail-closed": an `execution_finished` record the journal refuses (it went away while the
    /// command ran) goes to stderr as a `runvoyd-audit:` line, and the command's outcome stands.
    @Test func anEndRecordTheJournalRefusesGoesToStderr() throws {
        let fake = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: fake) }
        let journal = try JournalStandIn(path: fake + "/socket")
        let jailed = try DaemonFixture(
            wrapper: [
                "/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                #"mount --bind "$0" /run/systemd/journal && exec "$@""#, fake,
            ], waitForSocket: false)
        defer { jailed.stop() }
        var records: [Data] = []
        #expect(
            Harness.waitUntil {
                records += journal.drain()
                return (try? jailed.waitForSocket(seconds: 0.05)) != nil
            }, "\(jailed.log)")
        let gate = jailed.directory + "/gate"
        let ctl = try jailed.startCtl([
            "exec", "--", "sh", "-c", "while [ ! -e \(gate) ]; do sleep 0.02; done; echo ended",
        ])
        let id = try ctl.executionID()
        let started = Data("RUNVOY_EVENT=execution_started\n".utf8)
        #expect(
            Harness.waitUntil {
                records += journal.drain()
                return records.contains { $0.range(of: started) != nil && $0.range(of: Data(id.utf8)) != nil }
            })
        journal.shutDownReading()
        try Data().write(to: URL(fileURLWithPath: gate))
        #expect(ctl.process.wait(seconds: 60) == 0, "\(ctl.stderr)")
        #expect(ctl.stdout == "ended\n")
        var finished: [String: String]?
        #expect(
            Harness.waitUntil {
                finished = Self.fallbackRecords(jailed.log, executionID: id).first {
                    $0["RUNVOY_EVENT"] == "execution_finished"
                }
                return finished != nil
            }, "\(jailed.log)")
        #expect(finished?["RUNVOY_EXIT_STATUS"] == "0")
        #expect(finished?["MESSAGE_ID"] == "e8390f8c07ed424c9272b23a12e6357f")
        #expect(!records.contains { $0.range(of: Data("RUNVOY_EVENT=execution_finished\n".utf8)) != nil })
        #expect(jailed.process.isRunning)
    }

    /// The `runvoyd-audit:` lines of `log` about execution `id`, as JSON objects.
    static func fallbackRecords(_ log: String, executionID id: String) -> [[String: String]] {
        log.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("runvoyd-audit: "),
                let object = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(15).utf8))
                    as? [String: String],
                object["RUNVOY_EXECUTION_ID"] == id
            else { return nil }
            return object
        }
    }
}
