import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl backup`, `runvoyd --restore` and `runvoyctl export` against real daemons (root: the daemons run
/// commands as nobody and the tests add a user).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class BackupIntegrationTests {
    static func config(_ directory: String, state: String? = nil) -> String {
        DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(
                of: "  runtime_directory: \(directory)/secrets-run",
                with: "  runtime_directory: \(directory)/secrets-run\n  admin_read: true"
            )
            .replacingOccurrences(
                of: "state_directory: \(directory)/state", with: "state_directory: \(state ?? directory + "/state")")
    }

    static func setSecret(_ daemon: DaemonFixture, _ name: String, _ value: String) throws {
        let path = daemon.directory + "/value-\(name)"
        try (value + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let out = try daemon.ctl(["secrets", "set", name], stdinPath: path)
        guard out.status == 0 else { throw HarnessError("secrets set \(name): \(out.stderrText)") }
    }

    static func export(
        _ daemon: DaemonFixture, _ arguments: [String] = [], as user: String? = nil
    ) throws
        -> [ExecutionInfo]
    {
        let out = try daemon.ctl(["export"] + arguments, asUser: user)
        guard out.status == 0 else { throw HarnessError("export: \(out.stderrText)") }
        return try out.stdoutText.split(separator: "\n").map {
            try JSONDecoder().decode(ExecutionInfo.self, from: Data($0.utf8))
        }
    }

    static func logs(_ daemon: DaemonFixture, _ id: String) throws -> (stdout: Data, stderr: Data) {
        let out = try daemon.ctl(["logs", id])
        guard out.status == 0 else { throw HarnessError("logs \(id): \(out.stderrText)") }
        return (out.stdout, out.stderr)
    }

    static func restore(_ archive: String, into directory: String, keyFile: String? = nil) throws -> Harness.Output {
        var argv = [Harness.runvoyd, "--restore", archive, "--state-directory", directory]
        if let keyFile { argv += ["--key-file", keyFile] }
        return try Harness.run(argv)
    }

    @Test func aBackupTakenWhileSixteenClientsStreamRestoresEveryExecutionOutputAndSecret() throws {
        let daemon = try DaemonFixture(config: { Self.config($0) })
        defer { daemon.stop() }
        let secrets = ["db-pass": "correct horse battery", "api-token": "tok-\(UInt64.random(in: 0...UInt64.max))"]
        for (name, value) in secrets { try Self.setSecret(daemon, name, value) }
        for n in 0..<20 {
            #expect(try daemon.ctl(["exec", "-q", "--", "sh", "-c", "echo out \(n); echo err \(n) >&2"]).status == 0)
        }
        // Still running when the backup is taken: it is restored as lost, with its output so far.
        let sleeper = try daemon.ctl(["exec", "--detach", "--", "sh", "-c", "echo before; exec sleep 300"])
        let sleeperID = sleeper.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try Self.waitForOutput(daemon, sleeperID) { $0 == "before\n" })

        // Sixteen clients stream output from before the backup until after it (they stop once `done` exists).
        let done = daemon.directory + "/done"
        var clients: [DaemonFixture.BackgroundCtl] = []
        for n in 0..<16 {
            clients.append(
                try daemon.startCtl([
                    "exec", "--", "sh", "-c",
                    "i=0; while [ ! -e \(done) ] || [ $i -lt 20 ]; do seq -f 'client \(n) line %g' 1 100; i=$((i+1)); sleep 0.05; done; echo after",
                ]))
        }
        let clientIDs = try clients.map { try $0.executionID() }
        for id in clientIDs { #expect(try Self.waitForOutput(daemon, id) { !$0.isEmpty }) }
        let archive = daemon.directory + "/backup.tar"
        let backup = try daemon.ctl(["backup", "--output", archive, "--json"])
        FileManager.default.createFile(atPath: done, contents: nil)
        #expect(backup.status == 0, "\(backup.stderrText)")
        let result = try JSONDecoder().decode(BackupResult.self, from: backup.stdout)
        #expect(!result.includesKey && result.runningExecutions == 17 && result.executions == 20 + 1 + 16)
        var info = stat()
        #expect(stat(archive, &info) == 0 && info.st_mode & 0o777 == 0o600 && Int64(info.st_size) == result.bytes)
        #expect(try Harness.run(["/usr/bin/sha256sum", archive]).stdoutText.hasPrefix(result.sha256))
        // The clients' streams went on whole: what each printed is what the daemon stored.
        for (client, id) in zip(clients, clientIDs) {
            #expect(client.process.wait(seconds: 120) == 0, "\(client.stderr)")
            #expect(Data(client.stdout.utf8) == (try Self.logs(daemon, id).stdout))
            #expect(client.stdout.split(separator: "\n").count >= 20 * 100)
        }

        // Restore, checking the secrets with the daemon's key, into a fresh directory.
        let restored = daemon.directory + "/restored"
        let out = try Self.restore(archive, into: restored, keyFile: daemon.directory + "/state/secrets.key")
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(out.stdoutText.contains("every one opens with the master key"))
        #expect(stat(restored, &info) == 0 && info.st_mode & 0o777 == 0o700)
        // The key was not in the archive: the restored daemon gets a copy of it, as an operator would do.
        _ = try Harness.run(["/bin/cp", "-p", daemon.directory + "/state/secrets.key", restored + "/secrets.key"])

        // A daemon on the restored directory serves every execution, its output and every secret.
        let second = try DaemonFixture(config: { Self.config($0, state: restored) })
        defer { second.stop() }
        let original = Dictionary(uniqueKeysWithValues: try Self.export(daemon).map { ($0.executionId, $0) })
        let copy = try Self.export(second)
        #expect(copy.count == result.executions)
        let copied = Set(copy.map(\.executionId))
        #expect(copied.isSuperset(of: clientIDs) && copied.contains(sleeperID))
        for execution in copy {
            let before = try #require(original[execution.executionId])
            let (stdout, stderr) = try Self.logs(second, execution.executionId)
            let (originalStdout, originalStderr) = try Self.logs(daemon, execution.executionId)
            if execution.status == .lost {
                // Running at the backup: the output stored up to then, a prefix of the whole.
                #expect(execution.reason?.contains("backup") == true)
                if execution.executionId != sleeperID {
                    #expect(!stdout.isEmpty && stdout.count < originalStdout.count)
                }
                #expect(originalStdout.starts(with: stdout) && originalStderr.starts(with: stderr))
                #expect(execution.stdoutBytes == Int64(stdout.count))
            } else {
                #expect(execution == before)
                #expect(stdout == originalStdout && stderr == originalStderr, "\(execution.executionId)")
            }
        }
        #expect(copy.first { $0.executionId == sleeperID }?.status == .lost)
        #expect(try Self.logs(second, sleeperID).stdout == Data("before\n".utf8))
        for (name, value) in secrets {
            let got = try second.ctl(["secrets", "get", name])
            #expect(got.status == 0 && got.stdoutText == value, "\(name): \(got.stderrText)")
        }
        // The restored daemon runs commands with the restored secrets too.
        #expect(try second.ctl(["exec", "-q", "--", "true"]).status == 0)
        _ = try daemon.ctl(["kill", sleeperID])
    }

    @Test func aTruncatedOrAlteredArchiveOrABusyDirectoryIsRefusedAndNothingIsWritten() throws {
        let daemon = try DaemonFixture(config: { Self.config($0) })
        defer { daemon.stop() }
        try Self.setSecret(daemon, "db-pass", "correct horse battery")
        for n in 0..<5 { _ = try daemon.ctl(["exec", "-q", "--", "seq", "1", "\(1000 * (n + 1))"]) }
        let archive = daemon.directory + "/backup.tar"
        #expect(try daemon.ctl(["backup", "--output", archive]).status == 0)
        let good = try Data(contentsOf: URL(fileURLWithPath: archive))
        let bad = daemon.directory + "/bad.tar"
        let target = daemon.directory + "/restored"
        func refused(_ bytes: Data, _ expected: String) throws {
            try bytes.write(to: URL(fileURLWithPath: bad))
            let out = try Self.restore(bad, into: target)
            #expect(out.status == 1 && out.stderrText.contains("restore refused"), "\(out.stdoutText)")
            #expect(out.stderrText.contains(expected), "\(out.stderrText)")
            #expect(access(target, F_OK) != 0)
            #expect(!FileSystem.entries(daemon.directory).contains { $0.contains(".restore-") })
        }
        try refused(good.prefix(good.count / 2), "truncated")
        try refused(good.prefix(700), "truncated")
        var flipped = good
        flipped[512 + 40] ^= 0x20
        try refused(flipped, "does not match the manifest")
        var edited = good
        let at = try #require(good.range(of: Data("\"software_version\":\"".utf8))).upperBound
        edited[at] = edited[at] == UInt8(ascii: "9") ? UInt8(ascii: "8") : UInt8(ascii: "9")
        try refused(edited, "manifest was altered")
        try refused(Data(repeating: 0x41, count: 4096), "checksum")
        // A non-empty directory, and the live state directory, are never restored into.
        let live = try Self.restore(archive, into: daemon.directory + "/state")
        #expect(live.status == 1 && live.stderrText.contains("is not empty"))
        // A wrong key is refused: the secrets must open.
        let wrongKey = daemon.directory + "/wrong.key"
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: wrongKey))
        let wrong = try Self.restore(archive, into: target, keyFile: wrongKey)
        #expect(wrong.status == 1 && wrong.stderrText.contains("do not open with the master key"))
        #expect(access(target, F_OK) != 0)
        // And the good archive restores.
        #expect(try Self.restore(archive, into: target).status == 0)
    }

    @Test func onlyAdministratorsBackUpTheKeyExportIsAuditedLoudlyAndExportFollowsTheRoles() throws {
        let user = "rvt\(String(UInt32.random(in: 0..<0xFFFF), radix: 16))-dev"
        _ = try Harness.run(["/usr/sbin/useradd", "-M", "-N", "-g", "nogroup", "-s", "/usr/sbin/nologin", user])
        defer { _ = try? Harness.run(["/usr/sbin/userdel", user]) }
        let daemon = try DaemonFixture(config: { directory in
            Self.config(directory).replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n", with: "roles:\n  developer: {users: [\(user)]}\n")
        })
        defer { daemon.stop() }
        let pid = String(daemon.process.pid)
        // The developer may run and export its own executions, never back up.
        #expect(try daemon.ctl(["exec", "-q", "--", "echo", "mine"], asUser: user).status == 0)
        #expect(try daemon.ctl(["exec", "-q", "--", "echo", "root's"]).status == 0)
        let folder = daemon.directory + "/dev-out"
        mkdir(folder, 0o777)
        chmod(folder, 0o777)
        let refused = try daemon.ctl(["backup", "--output", folder + "/b.tar"], asUser: user)
        #expect(refused.status == 125 && refused.stderrText.contains("lacks the backup permission"))
        #expect(FileSystem.entries(folder).isEmpty)
        let denial = try Harness.journal(["_PID=\(pid)", "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=backup"])
        #expect(denial.first?["RUNVOY_CALLER_USER"] == user)
        let own = try Self.export(daemon, as: user)
        #expect(own.count == 1 && own.first?.callerUser == user)

        // An administrator's backup with the key: two records before it, one after.
        let archive = daemon.directory + "/keyed.tar"
        let backup = try daemon.ctl(["backup", "--output", archive, "--include-key"])
        #expect(backup.status == 0 && backup.stderrText.contains("WITH the master key"), "\(backup.stderrText)")
        let exported = try Harness.journal(["_PID=\(pid)", "MESSAGE_ID=850cfdcb7ac3432f9ad2d52c56bd15b4"])
        #expect(exported.first?["PRIORITY"] == "2" && exported.first?["RUNVOY_CALLER_UID"] == "0")
        let records = try Harness.journal(["_PID=\(pid)", "RUNVOY_EVENT=backup"]) { $0.count >= 2 }
        #expect(Set(records.compactMap { $0["RUNVOY_ACTION"] }) == ["started", "completed"])
        #expect(records.allSatisfy { $0["RUNVOY_INCLUDES_KEY"] == "1" })
        // The key in the archive opens the secrets at restore, and is installed.
        let out = try Self.restore(archive, into: daemon.directory + "/restored")
        #expect(out.status == 0 && out.stdoutText.contains("from the archive, installed"), "\(out.stderrText)")
        // An existing file is never overwritten.
        let again = try daemon.ctl(["backup", "--output", archive])
        #expect(again.status == 125 && again.stderrText.contains("exists"))
    }

    @Test func exportReturnsExactlyTheHistoryAsJSONLinesAndSinceFilters() throws {
        let daemon = try DaemonFixture(config: { Self.config($0) })
        defer { daemon.stop() }
        for n in 0..<15 {
            _ = try daemon.ctl(["exec", "-q", "--", "echo", "\(n)"])
        }
        // More than one page of the daemon's (500): many detached short executions.
        for _ in 0..<520 { _ = try daemon.ctl(["exec", "--detach", "--", "true"]) }
        let exported = try Self.export(daemon)
        let listed = try JSONDecoder().decode(
            ListResult.self, from: try daemon.ctl(["list", "--json", "--limit", "1000"]).stdout
        ).executions
        #expect(exported.count == 535 && listed.count == 535)
        // The same objects as `list --json`, oldest first; each line exactly as list prints it.
        let byID = Dictionary(uniqueKeysWithValues: listed.map { ($0.executionId, $0) })
        #expect(exported.map(\.executionId) == listed.map(\.executionId).reversed())
        for execution in exported where execution.status != .running {
            #expect(byID[execution.executionId] == execution)
        }
        let raw = try daemon.ctl(["export", "--format", "jsonl"]).stdoutText
        #expect(raw.split(separator: "\n").count == 535 && raw.hasSuffix("}\n") && !raw.contains("\n\n"))

        // since_ms: exactly the executions created at or after it.
        let pivot = exported[300]
        let client = try RunvoyClient(socketPath: daemon.socketPath)
        var since: [ExecutionInfo] = []
        let result = try client.stream(
            .export, params: ExportParams(sinceMs: pivot.createdAtMs), result: ExportResult.self
        ) {
            since.append(try Frame.decode(ExportEvent.self, from: $0).execution)
        }
        let expected = exported.filter { $0.createdAtMs >= pivot.createdAtMs }
        #expect(result.count == expected.count && since.map(\.executionId) == expected.map(\.executionId))
        #expect(try Self.export(daemon, ["--since", "1h"]).count == 535)
        let bad = try daemon.ctl(["export", "--format", "csv"])
        #expect(bad.status != 0 && bad.stderrText.contains("jsonl"))
    }

    /// The one-line JSON examples of a method's section of docs/PROTOCOL.md (`EXECUTION` standing for `{}`).
    static func documentedFrames(_ method: String) throws -> [[String: Any]] {
        let doc = try String(contentsOfFile: Harness.packageRoot + "/docs/PROTOCOL.md", encoding: .utf8)
        let start = try #require(doc.range(of: "### `\(method)`\n"))
        let rest = doc[start.upperBound...]
        let section = rest[..<(rest.range(of: "\n#")?.lowerBound ?? rest.endIndex)]
        return section.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{\"id\"") else { return nil }
            let text = line.replacingOccurrences(of: "EXECUTION", with: "{}")
            return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        }
    }

    @Test func backupAndExportFramesHaveTheDocumentedShape() throws {
        let daemon = try DaemonFixture(config: { Self.config($0) })
        defer { daemon.stop() }
        #expect(try daemon.ctl(["exec", "-q", "--", "echo", "hi"]).status == 0)
        let client = try RunvoyClient(socketPath: daemon.socketPath)
        for method in [Method.backup, .export] {
            let documented = try Self.documentedFrames(method.rawValue)
            #expect(documented.count == 2, "\(method)")
            var events: [[String: Any]] = []
            let result = try client.stream(method, params: NoParams(), result: [String: JSONAny].self) { payload in
                events.append(try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]))
            }
            let event = try #require(documented.first { $0["event"] != nil })
            let sent = try #require(events.first { $0["event"] as? String == event["event"] as? String })
            #expect(Set(sent.keys) == Set(event.keys), "\(method)")
            let reply = try #require(documented.first { $0["result"] != nil }?["result"] as? [String: Any])
            #expect(Set(result.keys) == Set(reply.keys), "\(method)")
        }
    }

    /// Any JSON value, to read replies whose members are checked by name only.
    struct JSONAny: Codable, Sendable {
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    /// Waits until the stored output of `id` satisfies `condition` (the daemon stores it as it streams).
    static func waitForOutput(_ daemon: DaemonFixture, _ id: String, _ condition: (String) -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if condition(try daemon.ctl(["logs", id]).stdoutText) { return true }
            usleep(20_000)
        }
        return false
    }
}
