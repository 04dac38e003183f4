import Foundation
import Glibc
import RunvoyKit
import RunvoyStore
import Testing

/// The execution history against a real runvoyd: list, status, logs (stored, followed, replayed), kill,
/// ownership, the stored-output cap, retention, and crash recovery.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class HistoryTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0, extra: "history:\n  max_output_bytes: 256KiB\n")
        })
    }

    deinit {
        daemon.stop()
    }

    /// Runs a command and returns its execution id.
    func run(_ argv: [String], user: String? = nil) throws -> (id: String, output: Harness.Output) {
        let out = try daemon.ctl(["exec", "--"] + argv, asUser: user)
        let id = try #require(ExecTests.executionID(out.stderrText), "no execution id in \(out.stderrText)")
        return (id, out)
    }

    func status(_ id: String, user: String? = nil) throws -> ExecutionInfo {
        let out = try daemon.ctl(["status", "--json", id], asUser: user)
        guard out.status == 0 else { throw HarnessError("status \(id) failed: \(out.stderrText)") }
        return try JSONDecoder().decode(ExecutionInfo.self, from: out.stdout)
    }

    func list(_ arguments: [String] = [], user: String? = nil) throws -> [ExecutionInfo] {
        let out = try daemon.ctl(["list", "--json"] + arguments, asUser: user)
        guard out.status == 0 else { throw HarnessError("list failed: \(out.stderrText)") }
        return try JSONDecoder().decode(ListResult.self, from: out.stdout).executions
    }

    /// Polls `status` until the execution has ended.
    func waitFinished(_ id: String, seconds: Double = 30) throws -> ExecutionInfo {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let info = try status(id)
            if info.status.isFinal { return info }
            usleep(20_000)
        }
        throw HarnessError("execution \(id) did not finish within \(seconds) s")
    }

    @Test func statusRecordsWhoRanWhatAndHowItEnded() throws {
        let (id, out) = try run(["sh", "-c", "printf abc; printf 12345 >&2; exit 3"])
        #expect(out.status == 3)
        let info = try status(id)
        #expect(info.executionId == id)
        #expect(info.status == .failed)
        #expect(info.exitCode == 3 && info.signal == nil)
        #expect(info.argv == ["sh", "-c", "printf abc; printf 12345 >&2; exit 3"])
        #expect(info.callerUid == 0 && info.callerUser == "root")
        #expect(info.executor == "default" && info.runAs == "nobody:nogroup" && info.workingDirectory == "/")
        #expect(info.stdoutBytes == 3 && info.stderrBytes == 5 && info.storedBytes == 8 && info.droppedBytes == 0)
        #expect(info.pid != nil && info.startedAtMs != nil && info.finishedAtMs != nil && info.durationUsec != nil)
        #expect(info.configDigest.count == 16)
        #expect(info.createdAtMs <= info.startedAtMs! && info.startedAtMs! <= info.finishedAtMs!)

        let human = try daemon.ctl(["status", id])
        #expect(human.status == 0)
        #expect(human.stdoutText.contains("status:      failed"))
        #expect(human.stdoutText.contains("exit status: 3"))
    }

    @Test func envKeysAreRecordedButNeverTheirValues() throws {
        let out = try daemon.ctl(["exec", "--env", "LANG=secret-value-1234", "--", "true"])
        let id = try #require(ExecTests.executionID(out.stderrText))
        let json = try daemon.ctl(["status", "--json", id]).stdoutText
        #expect(json.contains("\"env_keys\":[\"LANG\"]"))
        #expect(!json.contains("secret-value-1234"))
        // The row is usually still in the write-ahead log, not yet in the main file: read both. The execution id
        // must be in one of them, or this would check files that do not hold the row at all.
        var database = Data()
        for file in ["history.sqlite", "history.sqlite-wal"] {
            database += (try? Data(contentsOf: URL(fileURLWithPath: daemon.directory + "/state/" + file))) ?? Data()
        }
        #expect(database.range(of: Data(id.utf8)) != nil)
        #expect(database.range(of: Data("LANG".utf8)) != nil)
        #expect(database.range(of: Data("secret-value-1234".utf8)) == nil)
    }

    @Test func logsReplaysStoredOutputExactlyOnBothStreams() throws {
        let script =
            "head -c 150000 /dev/urandom > /tmp/runvoy-history-bytes; cat /tmp/runvoy-history-bytes; "
            + "echo to-stderr >&2; rm /tmp/runvoy-history-bytes"
        let (id, out) = try run(["sh", "-c", script], user: nil)
        #expect(out.status == 0)
        let logs = try daemon.ctl(["logs", id])
        #expect(logs.status == 0)
        #expect(logs.stdout == out.stdout)
        #expect(logs.stdout.count == 150_000)
        #expect(logs.stderrText == "to-stderr\n")
    }

    @Test func timestampsPrefixEveryLine() throws {
        let (id, _) = try run(["sh", "-c", "echo one; echo two; printf three"])
        let logs = try daemon.ctl(["logs", "--timestamps", id])
        let lines = logs.stdoutText.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3)
        for (line, word) in zip(lines, ["one", "two", "three"]) {
            // 2026-11-25T06:41:36.491068Z one
            #expect(line.count == 27 + 1 + word.count)
            #expect(line.hasSuffix(" " + word))
            #expect(line.dropFirst(26).first == "Z")
        }
    }

    @Test func replayKeepsTheOriginalTiming() throws {
        let (id, _) = try run(["sh", "-c", "echo a; sleep 0.6; echo b"])
        let started = Date()
        let replay = try daemon.ctl(["logs", "--replay", id])
        let elapsed = Date().timeIntervalSince(started)
        #expect(replay.stdoutText == "a\nb\n")
        // No upper bound: the machine may be slow. A replay cannot be faster than the recording.
        #expect(elapsed >= 0.5)
        let fast = try daemon.ctl(["logs", "--replay", "--speed", "1000", id])
        #expect(fast.stdoutText == "a\nb\n")
    }

    @Test func followersJoiningAtDifferentTimesAllGetTheWholeStream() throws {
        // Thirty lines, a pause until the test releases it, thirty more: the late follower joins in the pause,
        // after the early one has seen the first half, and so while the execution certainly still runs.
        let gate = daemon.directory + "/release-followers"
        let script =
            #"for i in $(seq 1 30); do echo line-$i; echo err-$i >&2; done; while [ ! -e "$1" ]; do sleep 0.05; done; "#
            + #"for i in $(seq 31 60); do echo line-$i; echo err-$i >&2; done"#
        let detached = try daemon.ctl(["exec", "--detach", "--", "sh", "-c", script, "sh", gate])
        let id = detached.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 26)
        let early = try daemon.startCtl(["logs", "--follow", id])
        #expect(Harness.waitUntil { early.stdout.contains("line-30\n") && early.stderr.contains("err-30\n") })
        let late = try daemon.startCtl(["logs", "-f", id])
        #expect(Harness.waitUntil { late.stdout.contains("line-30\n") && late.stderr.contains("err-30\n") })
        #expect(try status(id).status == .running)
        FileManager.default.createFile(atPath: gate, contents: nil)
        let stdoutLines = (1...60).map { "line-\($0)\n" }.joined()
        let stderrLines = (1...60).map { "err-\($0)\n" }.joined()
        for follower in [early, late] {
            let status = follower.process.wait(seconds: 60)
            #expect(status == 0)
            #expect(follower.stdout == stdoutLines)
            #expect(follower.stderr == stderrLines)
        }
        #expect(try waitFinished(id).status == .succeeded)
        // A follower of a finished execution gets the stored output and returns.
        let after = try daemon.ctl(["logs", "--follow", id])
        #expect(after.stdoutText == stdoutLines)
    }

    @Test func theStoredOutputCapKeepsHeadAndTailButTheLiveStreamIsComplete() throws {
        // 1 MiB of numbered lines, four times the configured cap of 256 KiB.
        let (id, out) = try run(["sh", "-c", "seq 1 140000"])
        #expect(out.stdoutText.hasPrefix("1\n2\n3\n") && out.stdoutText.hasSuffix("139999\n140000\n"))
        let info = try status(id)
        #expect(info.stdoutBytes == Int64(out.stdout.count))
        #expect(info.droppedBytes > 0)
        #expect(info.storedBytes + info.droppedBytes == info.stdoutBytes)
        #expect(info.storedBytes <= 256 * 1024 + 2 * 262_144)
        let logs = try daemon.ctl(["logs", id])
        #expect(logs.stderrText == "[runvoy: \(info.droppedBytes) bytes of output were not stored here]\n")
        #expect(out.stdoutText.hasPrefix(String(logs.stdoutText.prefix(100_000))))
        #expect(logs.stdoutText.hasSuffix("139999\n140000\n"))
        #expect(Int64(logs.stdout.count) == info.storedBytes)
    }

    @Test func usersSeeAndKillOnlyTheirOwnExecutionsAndRootSeesAll() throws {
        let (rootID, _) = try run(["true"])
        let (nobodyID, _) = try run(["true"], user: "nobody")
        let mine = try list(["--limit", "1000"], user: "nobody")
        #expect(mine.contains { $0.executionId == nobodyID })
        #expect(mine.allSatisfy { $0.callerUser == "nobody" })
        let all = try list(["--limit", "1000"])
        #expect(all.contains { $0.executionId == nobodyID } && all.contains { $0.executionId == rootID })

        // Another user's execution is answered as one that does not exist.
        let denied = try daemon.ctl(["status", rootID], asUser: "nobody")
        #expect(denied.status == 125)
        #expect(denied.stderrText.contains("no_such_execution"))
        let deniedLogs = try daemon.ctl(["logs", rootID], asUser: "nobody")
        #expect(deniedLogs.status == 125 && deniedLogs.stderrText.contains("no_such_execution"))
        #expect(try status(nobodyID).callerUser == "nobody")

        let sleeper = try daemon.ctl(["exec", "--detach", "--", "sleep", "30"])
        let sleeperID = sleeper.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let refused = try daemon.ctl(["kill", sleeperID], asUser: "nobody")
        #expect(refused.status == 125 && refused.stderrText.contains("no_such_execution"))
        #expect(try status(sleeperID).status == .running)
        let killed = try daemon.ctl(["kill", "--signal", "KILL", sleeperID])
        #expect(killed.status == 0)
        let ended = try waitFinished(sleeperID)
        #expect(ended.status == .killed && ended.signal == SIGKILL)
        let denial = try Harness.journal(["RUNVOY_EXECUTION_ID=\(sleeperID)", "RUNVOY_EVENT=execution_kill"]) {
            $0.count >= 2
        }
        #expect(denial.contains { $0["RUNVOY_DECISION"] == "deny" && $0["RUNVOY_CALLER_USER"] == "nobody" })
        #expect(denial.contains { $0["RUNVOY_DECISION"] == "allow" && $0["RUNVOY_CALLER_USER"] == "root" })
    }

    @Test func listFiltersByStatusUserExecutorAndAge() throws {
        let (failedID, _) = try run(["sh", "-c", "exit 9"])
        let (limitedID, _) = try daemon.ctl(["exec", "-e", "limited", "--", "echo", "hi"]).stderrText
            .withExecutionID()
        let failed = try list(["--status", "failed", "--limit", "1000"])
        #expect(failed.contains { $0.executionId == failedID } && failed.allSatisfy { $0.status == .failed })
        let limited = try list(["--executor", "limited"])
        #expect(limited.map(\.executionId).contains(limitedID) && limited.allSatisfy { $0.executor == "limited" })
        #expect(try list(["--user", "nobody"]).allSatisfy { $0.callerUser == "nobody" })
        #expect(try list(["--since", "1h", "--limit", "1"]).count == 1)
        let newest = try list(["--limit", "2"])
        #expect(newest.count == 2 && newest[0].createdAtMs >= newest[1].createdAtMs)

        _ = try run(["true"])
        let table = try daemon.ctl(["list", "--limit", "3"])
        #expect(table.stdoutText.hasPrefix("ID "))
        #expect(table.stdoutText.split(separator: "\n").count == 4)
        let bad = try daemon.ctl(["list", "--status", "exploded"])
        #expect(bad.status != 0 && bad.stderrText.contains("--status"))
    }

    /// `list` pages (issue 18): past `limit` (or its byte budget) the reply says `more`, `runvoyctl list` says to
    /// add `--before` with the last id shown, and `--before` continues from there, nothing repeated or missed.
    @Test func listSaysWhenThereIsMoreAndBeforeContinuesFromTheLastOneShown() throws {
        let ids = try (0..<3).map { try run(["true", "page-\($0)"]).id }
        let table = try daemon.ctl(["list", "--limit", "2"])
        #expect(table.status == 0, "\(table.stderrText)")
        #expect(table.stdoutText.split(separator: "\n").count == 3)
        #expect(table.stderrText.contains("--before \(ids[1])"), "\(table.stderrText)")

        func page(_ arguments: [String]) throws -> (ids: [String], more: Bool?) {
            let out = try daemon.ctl(["list", "--json"] + arguments)
            let object = try JSONSerialization.jsonObject(with: out.stdout) as? [String: Any]
            let executions = object?["executions"] as? [[String: Any]] ?? []
            return (executions.compactMap { $0["execution_id"] as? String }, object?["more"] as? Bool)
        }
        let first = try page(["--limit", "2"])
        #expect(first.ids == [ids[2], ids[1]] && first.more == true)
        let rest = try page(["--limit", "2", "--before", ids[1]])
        #expect(rest.ids == [ids[0]] && rest.more == false)
        let last = try daemon.ctl(["list", "--limit", "2", "--before", ids[1]])
        #expect(last.status == 0 && !last.stderrText.contains("--before"), "\(last.stderrText)")
        let bad = try daemon.ctl(["list", "--before", "nope"])
        #expect(bad.status != 0 && bad.stderrText.contains("invalid_argument"), "\(bad.stderrText)")
    }

    @Test func killOfAFinishedOrUnknownExecutionIsAClearError() throws {
        let (id, _) = try run(["true"])
        let finished = try daemon.ctl(["kill", id])
        #expect(finished.status == 125)
        #expect(finished.stderrText.contains("invalid_state") && finished.stderrText.contains("not running"))
        let unknown = try daemon.ctl(["kill", "0000000000000000000000000z"])
        #expect(unknown.stderrText.contains("no_such_execution"))
        let malformed = try daemon.ctl(["status", "../../etc/passwd"])
        #expect(malformed.status == 125 && malformed.stderrText.contains("invalid_argument"))
    }

    @Test func malformedHistoryRequestsGetSpecificErrorsAndTheConnectionStaysUsable() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":1,"method":"list","params":{"limit":0}}"#)
        #expect((try connection.readReply(id: 1)?["error"] as? [String: Any])?["code"] as? String == "invalid_argument")
        try connection.sendFrame(#"{"v":1,"id":2,"method":"status"}"#)
        #expect((try connection.readReply(id: 2)?["error"] as? [String: Any])?["code"] as? String == "bad_request")
        try connection.sendFrame(#"{"v":1,"id":3,"method":"logs","params":{"execution_id":7}}"#)
        #expect((try connection.readReply(id: 3)?["error"] as? [String: Any])?["code"] as? String == "bad_request")
        // A well-typed value that is not allowed is invalid_argument, as PROTOCOL.md says (issue 11).
        try connection.sendFrame(#"{"v":1,"id":4,"method":"list","params":{"status":["nope"]}}"#)
        #expect(
            (try connection.readReply(id: 4)?["error"] as? [String: Any])?["code"] as? String == "invalid_argument")
        // The policy and secrets methods answer garbage the same way.
        let cases: [(String, String)] = [
            (#"{"v":1,"id":6,"method":"explain","params":{"argv":[]}}"#, "bad_request"),
            (#"{"v":1,"id":7,"method":"explain","params":{"argv":"ls"}}"#, "bad_request"),
            (
                #"{"v":1,"id":8,"method":"explain","params":{"argv":["ls"],"user":"no-such-user-x"}}"#,
                "invalid_argument"
            ),
            (#"{"v":1,"id":9,"method":"secrets_set","params":{"name":"ok-name","value":"%%%"}}"#, "bad_request"),
            (
                #"{"v":1,"id":10,"method":"secrets_set","params":{"name":"../etc","value":"YWJjZGVmZw=="}}"#,
                "invalid_argument"
            ),
            (#"{"v":1,"id":11,"method":"secrets_rm"}"#, "bad_request"),
            (#"{"v":1,"id":12,"method":"secrets_get","params":{"name":7}}"#, "bad_request"),
            (
                #"{"v":1,"id":13,"method":"kill","params":{"execution_id":"0000000000000000000000000z","signal":"NOPE"}}"#,
                "invalid_argument"
            ),
        ]
        for (index, (frame, code)) in cases.enumerated() {
            try connection.sendFrame(frame)
            let answer = try connection.readReply(id: 6 + index)
            #expect((answer?["error"] as? [String: Any])?["code"] as? String == code, "\(frame)")
        }
        try connection.sendFrame(#"{"v":1,"id":5,"method":"list","params":{"limit":1}}"#)
        let reply = try connection.readReply(id: 5)
        #expect((reply?["result"] as? [String: Any])?["executions"] is [Any])
    }
}

extension String {
    /// The execution id runvoyctl printed in this stderr text, with the text.
    fileprivate func withExecutionID() throws -> (String, String) {
        (try #require(ExecTests.executionID(self)), self)
    }
}

/// Crash recovery: SIGKILL of the daemon, repeatedly, in the middle of heavy output.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct CrashRecoveryTests {
    @Test func executionsRunningWhenTheDaemonIsKilledAreMarkedLostAndTheirOutputStaysReadable() throws {
        let stateParent = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateParent) }
        let config = { (directory: String) in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "state_directory: \(directory)/state", with: "state_directory: \(stateParent)/state")
                + "history:\n  max_output_bytes: 1MiB\n"
        }
        var lostIDs: [String] = []
        for round in 0..<5 {
            let daemon = try DaemonFixture(config: config)
            // One detached command writing as fast as it can, and one streaming to an attached client.
            let detached = try daemon.ctl(
                ["exec", "--detach", "--", "sh", "-c", "echo start-\(round); exec cat /dev/zero"])
            let detachedID = detached.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(detachedID.count == 26)
            let attached = try daemon.startCtl(["exec", "--", "sh", "-c", "echo begin; exec seq 1 100000000"])
            let attachedID = try attached.executionID()
            usleep(UInt32(150_000 + round * 60_000))
            daemon.process.signal(SIGKILL)
            daemon.process.wait()
            _ = attached.process.wait(seconds: 30)
            lostIDs += [detachedID, attachedID]
        }

        let daemon = try DaemonFixture(config: config)
        defer { daemon.stop() }
        let store = try ExecutionStore(stateDirectory: stateParent + "/state")
        #expect(try store.integrityCheck() == ["ok"])
        #expect(try store.unfinished().isEmpty)
        for id in lostIDs {
            let out = try daemon.ctl(["status", "--json", id])
            let info = try JSONDecoder().decode(ExecutionInfo.self, from: out.stdout)
            #expect(info.status == .lost)
            #expect(info.reason?.contains("runvoyd stopped") == true)
            #expect(info.finishedAtMs != nil)
            let logs = try daemon.ctl(["logs", id])
            #expect(logs.status == 0)
            #expect(Int64(logs.stdout.count) == info.storedBytes)
            #expect(logs.stdout.count > 0)
            let entries = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_lost"])
            #expect(entries.count == 1)
        }
        let first = try daemon.ctl(["logs", lostIDs[1]])
        #expect(first.stdoutText.hasPrefix("begin\n1\n2\n3\n"))
        // The daemon serves new executions as usual.
        let fresh = try daemon.ctl(["exec", "--", "echo", "still-works"])
        #expect(fresh.status == 0 && fresh.stdoutText == "still-works\n")
        let id = try #require(ExecTests.executionID(fresh.stderrText))
        #expect(try daemon.ctl(["logs", id]).stdoutText == "still-works\n")
    }

    /// Issue 11, item 3: a detached command that writes nothing outlived a SIGKILLed daemon unsupervised, and its
    /// execution was `lost` with no pid or start time.
    @Test func aLostExecutionsProcessIsFoundByItsIdentityAndEndedAtTheNextStart() throws {
        let stateParent = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateParent) }
        let config = { (directory: String) in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "state_directory: \(directory)/state", with: "state_directory: \(stateParent)/state")
        }
        let first = try DaemonFixture(config: config)
        // A sleep long enough, and of a length no other process here has, to be recognised in /proc.
        let marker = String(300_000 + Int.random(in: 0..<100_000))
        let detached = try first.ctl(["exec", "--detach", "--", "sleep", marker])
        let id = detached.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        // The pid is in the history while the command runs, before the daemon dies.
        var pid: Int32?
        let deadline = Date().addingTimeInterval(20)
        while pid == nil && Date() < deadline {
            pid = try JSONDecoder().decode(ExecutionInfo.self, from: try first.ctl(["status", "--json", id]).stdout).pid
            if pid == nil { usleep(20_000) }
        }
        let leader = try #require(pid)
        first.process.signal(SIGKILL)
        first.process.wait()
        let alive = (try? String(contentsOfFile: "/proc/\(leader)/cmdline", encoding: .utf8)) ?? ""
        #expect(alive.contains(marker), "the command outlives the daemon until the next start")

        let second = try DaemonFixture(config: config)
        defer { second.stop() }
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: try second.ctl(["status", "--json", id]).stdout)
        #expect(info.status == .lost && info.pid == leader && info.startedAtMs != nil)
        #expect(info.reason?.contains("was killed at the next start") == true)
        let entries = try Harness.journal(["RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_lost"])
        #expect(entries.first?["RUNVOY_ORPHAN"] == "killed" && entries.first?["RUNVOY_PID"] == String(leader))
        // Gone (reaped by whoever adopted it): poll, the kill is asynchronous to its reaping.
        let gone = Date().addingTimeInterval(20)
        while Date() < gone, let text = try? String(contentsOfFile: "/proc/\(leader)/cmdline", encoding: .utf8),
            text.contains(marker)
        {
            usleep(20_000)
        }
        let cmdline = (try? String(contentsOfFile: "/proc/\(leader)/cmdline", encoding: .utf8)) ?? ""
        #expect(!cmdline.contains(marker))
    }

    /// A history whose counts do not add up (a restored or damaged database, Int64.max bytes of stdout) must not
    /// crash `logs` with an arithmetic overflow: the daemon keeps serving.
    @Test func logsOfAnExecutionWithImpossibleCountsDoesNotCrashTheDaemon() throws {
        let stateParent = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateParent) }
        let id = "01m8zzzzzzzzzzzzzzzzzzzzzz"
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            let store = try ExecutionStore(stateDirectory: stateParent + "/state")
            try store.insert(
                ExecutionInfo(
                    executionId: id, status: .succeeded, callerUid: 0, callerUser: "root", callerPid: 1,
                    executor: "default", runAs: "nobody", argv: ["true"], workingDirectory: "/", envKeys: [],
                    pid: nil, exitCode: 0, signal: nil, createdAtMs: now, startedAtMs: now, finishedAtMs: now,
                    durationUsec: 1, stdoutBytes: .max, stderrBytes: 1, storedBytes: 0, droppedBytes: 0,
                    outputPruned: false, configDigest: "x", reason: nil))
        }
        let daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "state_directory: \(directory)/state", with: "state_directory: \(stateParent)/state")
        })
        defer { daemon.stop() }
        let logs = try daemon.ctl(["logs", id])
        #expect(logs.status == 0, "logs: \(logs.stderrText)")
        #expect(daemon.process.status == nil, "runvoyd is still running")
        #expect(try daemon.ctl(["list"]).status == 0)
    }

    @Test func retentionRemovesOldExecutionsInTheBackground() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0, extra: "history:\n  max_age: 1s\n  prune_interval: 1s\n")
        })
        defer { daemon.stop() }
        let out = try daemon.ctl(["exec", "--", "echo", "old"])
        let id = try #require(ExecTests.executionID(out.stderrText))
        // Runs until the test ends it, so it is certainly running (and old) while retention passes over it.
        let running = try daemon.ctl(["exec", "--detach", "--", "sleep", "600"])
        let runningID = running.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = Date().addingTimeInterval(20)
        var gone = false
        while Date() < deadline && !gone {
            gone = try daemon.ctl(["status", id]).stderrText.contains("no_such_execution")
            usleep(200_000)
        }
        #expect(gone)
        #expect(access(daemon.directory + "/state/output/\(id)", F_OK) != 0)
        // A running execution is never pruned, however old.
        #expect(try daemon.ctl(["status", runningID]).status == 0)
        #expect(try daemon.ctl(["kill", runningID]).status == 0)
    }
}
