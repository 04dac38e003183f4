import Foundation
import Glibc
import RunvoyKit
import Testing

/// Issue 10, item 5: a user with no role was journaled with the whole argv of every refused `exec`, so 60
/// requests of 900 KB pushed older records (even `daemon_started`) out of a 32 MiB journal. Runs as a real
/// user made for the test (useradd; removed after) who is in no role binding, against a real runvoyd.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AuditFloodTests {
    let daemon: DaemonFixture
    let outsider: String

    init() throws {
        let outsider = "rvf\(String(UInt32.random(in: 0..<0xFFFF), radix: 16))-none"
        self.outsider = outsider
        try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(outsider)")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(of: "developer: {users: [\"*\"]}", with: "developer: {users: [daemon]}")
        })
    }

    deinit {
        daemon.stop()
        try? AuthorizationTests.sh("userdel \(outsider)")
    }

    @Test func refusalsOfAUserWithNoRoleAreBoundedInSizeAndCoalescedInNumber() throws {
        let uid = try #require(getpwnam(outsider)).pointee.pw_uid
        let big = (0..<6).map { _ in String(repeating: "x", count: 100_000) }
        for _ in 0..<10 {
            let refused = try daemon.ctl(["exec", "--", "true"] + big, asUser: outsider)
            #expect(refused.status == 125 && refused.stderrText.contains("no runvoy role"), "\(refused.stderrText)")
        }
        // Three refusals are recorded, each with a bounded argv that still identifies the request.
        // Tied to this daemon's pid: a uid is reused after userdel, and other suites' records stay in the journal.
        let daemonPID = "_PID=\(daemon.process.pid)"
        let records = try Harness.journal(
            ["RUNVOY_EVENT=decision", "RUNVOY_CALLER_UID=\(uid)", daemonPID], until: { $0.count >= 3 })
        #expect(records.count == 3)
        let text = JSONText.array(["true"] + big)
        for record in records {
            #expect((record["RUNVOY_ARGV"]?.utf8.count ?? .max) <= 1100)
            #expect(record["RUNVOY_ARGV_BYTES"] == String(text.utf8.count))
            #expect(record["RUNVOY_ARGV_COUNT"] == "7" && record["RUNVOY_ARGV_SHA256"]?.count == 64)
            #expect(record["RUNVOY_DECISION"] == "deny")
        }
        // The other seven are counted; the count is written when the window ends (here: at shutdown).
        #expect(daemon.stop() == 0)
        let summary = try Harness.journal(["RUNVOY_EVENT=refusals_suppressed", "RUNVOY_CALLER_UID=\(uid)", daemonPID])
        #expect(summary.count == 1 && summary.first?["RUNVOY_SUPPRESSED"] == "7", "\(summary)")
        #expect(summary.first?["MESSAGE_ID"] == "74908db65f524c76b01fee0972835f78")
    }

    /// Review of issue 10 (finding: `secrets_get` refusals are not throttled and carry the caller's name whole).
    /// A user with no role asks for a secret with a 100 KB name ten times: every refusal is journaled, each with
    /// the whole name in MESSAGE. Expected: at most three records in full, each bounded like a refused argv.
    @Test func secretsGetRefusalsOfAUserWithNoRoleAreThrottledAndBounded() throws {
        let uid = try #require(getpwnam(outsider)).pointee.pw_uid
        let name = String(repeating: "n", count: 100_000)
        for _ in 0..<10 {
            let refused = try daemon.ctl(["secrets", "get", name], asUser: outsider)
            #expect(refused.status != 0)
        }
        #expect(daemon.stop() == 0)
        let records = try Harness.journal(
            ["RUNVOY_EVENT=secret_read", "RUNVOY_CALLER_UID=\(uid)", "_PID=\(daemon.process.pid)"])
        #expect(records.count <= 3, "\(records.count) refusals journaled one by one")
        for record in records {
            #expect(
                (record["MESSAGE"]?.utf8.count ?? 0) <= 4096, "MESSAGE of \(record["MESSAGE"]?.utf8.count ?? 0) bytes")
        }
    }

    /// Review of issue 10 (finding: a refused `exec` bounds argv but not the executor name, which a user with no
    /// role chooses and which is journaled three times per record: EXECUTOR, REASON and MESSAGE).
    @Test func aRefusedExecsExecutorNameIsBoundedToo() throws {
        let uid = try #require(getpwnam(outsider)).pointee.pw_uid
        let name = String(repeating: "e", count: 100_000)
        let refused = try daemon.ctl(["exec", "-e", name, "--", "true"], asUser: outsider)
        #expect(refused.status != 0)
        let records = try Harness.journal(
            ["RUNVOY_EVENT=decision", "RUNVOY_CALLER_UID=\(uid)", "_PID=\(daemon.process.pid)"])
        #expect(records.count == 1)
        for record in records {
            let size = record.values.reduce(0) { $0 + $1.utf8.count }
            #expect(size <= 8192, "a refusal record of \(size) bytes")
        }
    }
}
