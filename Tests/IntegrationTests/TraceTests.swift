import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl trace` against a real runvoyd, as real users: a developer gets exactly the records of their own
/// execution (the same ones `journalctl` has), another developer is refused it, request ids only reach one's own
/// records, and records forged under runvoyd's name by another user never come back.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class TraceTests {
    let daemon: DaemonFixture
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var alice: String { "rvr\(suffix)-a" }
    var bob: String { "rvr\(suffix)-b" }

    init() throws {
        let suffix = suffix
        try TestUsers.add(["rvr\(suffix)-a", "rvr\(suffix)-b"])
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "developer: {users: [\"*\"]}", with: "developer: {users: [rvr\(suffix)-a, rvr\(suffix)-b]}")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([alice, bob])
    }

    /// Runs `true` as `user` and returns its execution id once its three records are in the journal.
    func run(as user: String) throws -> String {
        let out = try daemon.ctl(["exec", "--", "true"], asUser: user)
        guard out.status == 0, let id = ExecTests.executionID(out.stderrText) else {
            throw HarnessError("exec as \(user): \(out.stderrText)")
        }
        _ = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 3 })
        return id
    }

    func trace(_ arguments: [String], as user: String) throws -> (Harness.Output, TraceResult?) {
        let out = try daemon.ctl(["trace", "--json"] + arguments, asUser: user)
        return (out, try? JSONDecoder().decode(TraceResult.self, from: out.stdout))
    }

    @Test func aCallerGetsExactlyTheRecordsOfTheirExecution() throws {
        let id = try run(as: alice)
        let other = try run(as: alice)
        let (out, result) = try trace([id], as: alice)
        #expect(out.status == 0, "\(out.stderrText)")
        let records = try #require(result).records
        let journal = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)"])
        #expect(records.count == journal.count)
        #expect(records.compactMap(\.event) == ["decision", "execution_started", "execution_finished"])
        #expect(records.allSatisfy { $0.fields["RUNVOY_EXECUTION_ID"] == id })
        #expect(!out.stdoutText.contains(other))
        let human = try daemon.ctl(["trace", id], asUser: alice)
        #expect(human.status == 0 && human.stdoutText.contains("execution_finished"))
    }

    @Test func anotherUsersExecutionIsRefused() throws {
        let id = try run(as: alice)
        let (out, _) = try trace([id], as: bob)
        #expect(out.status == 125)
        #expect(out.stderrText.contains("no_such_execution"), "\(out.stderrText)")
        #expect(try trace([id], as: "root").0.status == 0)
    }

    @Test func requestIDsReachOnlyOnesOwnRecords() throws {
        let mine = try run(as: alice)
        let theirs = try run(as: bob)
        // runvoyctl numbers its requests from 1: both executions have request id 1.
        let (out, result) = try trace(["--request", "1"], as: alice)
        #expect(out.status == 0, "\(out.stderrText)")
        let ids = Set(try #require(result).records.compactMap { $0.fields["RUNVOY_EXECUTION_ID"] })
        #expect(ids.contains(mine) && !ids.contains(theirs))
        // (By uid: an earlier test's user may have had alice's uid, and those records are hers too now.)
        let uid = String(try #require(getpwnam(alice)).pointee.pw_uid)
        #expect(result?.records.allSatisfy { $0.fields["RUNVOY_CALLER_UID"] == uid } == true)
        // A pattern is only text, and a control character cannot start a second match.
        #expect(try trace(["--request", "*"], as: alice).1?.records.isEmpty == true)
        #expect(try trace(["--request", "1\nRUNVOY_CALLER_UID=0"], as: alice).0.status == 125)
    }

    @Test func recordsForgedUnderRunvoydsNameNeverComeBack() throws {
        let id = try run(as: alice)
        let forge = """
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(b"MESSAGE=forged\\nSYSLOG_IDENTIFIER=runvoyd\\nRUNVOY_EXECUTION_ID=\(id)\\n", "/run/systemd/journal/socket")
            """
        let sent = try Harness.run(["/usr/sbin/runuser", "-u", bob, "--", "/usr/bin/python3", "-c", forge])
        #expect(sent.status == 0, "\(sent.stderrText)")
        // Root too (a command on a root executor could do this): the sender is not runvoyd's executable.
        let byRoot = try Harness.run(["/usr/bin/python3", "-c", forge])
        #expect(byRoot.status == 0, "\(byRoot.stderrText)")
        _ = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)", "MESSAGE=forged"], until: { $0.count >= 2 })
        let (_, result) = try trace([id], as: alice)
        #expect(result?.records.count == 3)
        #expect(result?.records.contains { $0.message == "forged" } == false)
    }

    /// Another user's refused requests that name an execution are not part of its trace: anyone could write
    /// them (and push its end past the limit). They were returned before.
    @Test func othersRefusedRequestsDoNotLandInMyTrace() throws {
        let id = try run(as: alice)
        for _ in 0..<3 { #expect(try daemon.ctl(["status", id], asUser: bob).status != 0) }
        _ = try Harness.journal(
            ["RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=request_denied"], until: { $0.count >= 3 })
        let (_, result) = try trace([id], as: alice)
        #expect(result?.records.compactMap(\.event) == ["decision", "execution_started", "execution_finished"])
    }

    /// Review 17 (PoC, fails): another user's refused `kill` of an execution is recorded as `execution_kill` with
    /// `DECISION=deny`, not `request_denied`, so `TraceHandler`'s skip does not drop it: anyone who knows the id (a
    /// viewer lists every id) writes records into the owner's trace, as many as they like, and a trace of a
    /// running execution loses its end past the limit.
    @Test func othersRefusedKillsDoNotLandInMyTrace() throws {
        let id = try run(as: alice)
        for _ in 0..<3 { #expect(try daemon.ctl(["kill", id], asUser: bob).status != 0) }
        _ = try Harness.journal(
            ["RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_kill"], until: { $0.count >= 3 })
        let (_, result) = try trace([id], as: alice)
        #expect(result?.records.compactMap(\.event) == ["decision", "execution_started", "execution_finished"])
    }

    @Test func theLimitBoundsTheRecords() throws {
        let id = try run(as: alice)
        let (out, result) = try trace(["--limit", "2", id], as: alice)
        #expect(out.status == 0)
        #expect(result?.records.count == 2 && result?.truncated == true)
        #expect(try trace(["--limit", "0", id], as: alice).0.status == 125)
    }
}
