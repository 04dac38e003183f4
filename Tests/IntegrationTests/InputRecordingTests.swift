import Foundation
import Glibc
import RunvoyKit
import Testing

/// Recorded input (issue 16, item 2: a session's input is "not recorded unless the executor says so, and then
/// redacted like output"): an executor with `record_input` stores what its commands are given, typed into a
/// terminal or piped through `stdin`, as stream `stdin`, redacted with the executor's secrets and within
/// `history.max_output_bytes`; `logs` shows it only with `--input`, `--format asciicast` as "i" events, and
/// `--replay` never. Needs root and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class InputRecordingTests {
    let daemon: DaemonFixture
    static let secret = "typed-Secret-4711-value"

    static let executors = """
          recorded:
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/bin:/bin
              TOKEN: {secret: typed-token}
            allow:
              users: ["*"]
            record_input: true
            commands: any
          unrecorded:
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/bin:/bin
              TOKEN: {secret: typed-token}
            allow:
              users: ["*"]
            commands: any
        history:
          max_output_bytes: 64KiB
        """

    init() throws {
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0, extra: InputRecordingTests.executors)
        })
        let path = daemon.directory + "/secret-value"
        try (Self.secret + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let set = try daemon.ctl(["secrets", "set", "typed-token"], stdinPath: path)
        try #require(set.status == 0, "\(set.stderrText)")
    }

    deinit { daemon.stop() }

    /// Runs `argv` on `executor` with `input` on its stdin; returns the execution id.
    func run(
        _ executor: String, _ input: String, _ argv: [String] = ["sh", "-c", "cat >/dev/null; echo done"]
    )
        throws -> String
    {
        let path = daemon.directory + "/input-\(UInt32.random(in: 0...UInt32.max))"
        try input.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        defer { unlink(path) }
        let out = try daemon.ctl(["exec", "-q", "-e", executor, "--"] + argv, stdinPath: path)
        #expect(out.status == 0, "\(out.stderrText)")
        return try latestID()
    }

    func latestID() throws -> String {
        let listed = try daemon.ctl(["list", "--json", "--limit", "1"])
        let executions =
            (try JSONSerialization.jsonObject(with: listed.stdout) as? [String: Any])?["executions"] as? [[String: Any]]
        return try #require(executions?.first?["execution_id"] as? String, "\(listed.stdoutText)")
    }

    func record(_ id: String) throws -> [String: Any] {
        let status = try daemon.ctl(["status", "--json", id])
        return try #require(try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any])
    }

    /// The events of an asciicast file (after checking its header), as (time, code, data).
    func asciicast(_ id: String) throws -> [(Double, String, String)] {
        let out = try daemon.ctl(["logs", "--format", "asciicast", "--size", "80x24", id])
        #expect(out.status == 0, "\(out.stderrText)")
        let lines = out.stdoutText.split(separator: "\n").map { Data($0.utf8) }
        let first = try #require(lines.first)
        let header = try #require(try JSONSerialization.jsonObject(with: first) as? [String: Any])
        #expect(header["version"] as? Int == 2 && header["width"] as? Int == 80 && header["height"] as? Int == 24)
        var events: [(Double, String, String)] = []
        for line in lines.dropFirst() {
            let event = try #require(try JSONSerialization.jsonObject(with: line) as? [Any], "\(line)")
            let time = try #require(event.count == 3 ? event[0] as? Double : nil, "\(event)")
            let code = try #require(event[1] as? String)
            #expect(code == "o" || code == "i")
            let data = try #require(event[2] as? String)
            events.append((time, code, data))
        }
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.0 <= $1.0 }, "times go forward")
        return events
    }

    @Test func pipedInputIsRecordedRedactedAndShownOnlyWhenAskedFor() throws {
        let id = try run("recorded", "first line\nthe token is \(Self.secret) ok\n")
        let plain = try daemon.ctl(["logs", id])
        #expect(
            plain.status == 0 && plain.stdoutText == "done\n", "plain logs show the output only: \(plain.stdoutText)")
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(input.status == 0, "\(input.stderrText)")
        #expect(input.stdoutText == "first line\nthe token is [secret:typed-token] ok\n", "\(input.stdoutText)")
        #expect(!input.stdoutText.contains(Self.secret))
        let record = try record(id)
        #expect(record["stdin_bytes"] as? Int == "first line\nthe token is [secret:typed-token] ok\n".utf8.count)
        let events = try asciicast(id)
        #expect(events.filter { $0.1 == "i" }.map(\.2).joined() == input.stdoutText)
        #expect(events.filter { $0.1 == "o" }.map(\.2).joined() == "done\n")
        #expect(try daemon.ctl(["status", id]).stdoutText.contains("recorded (runvoyctl logs --input \(id))"))
        let replayed = try daemon.ctl(["logs", "--input", "--replay", id])
        #expect(replayed.status != 0 && replayed.stderrText.contains("not with --replay"), "\(replayed.stderrText)")
        // The stored files hold no trace of the value either.
        let stored = try Harness.run(["/usr/bin/grep", "-r", "-c", Self.secret, daemon.directory + "/state"])
        #expect(!stored.stdoutText.contains(":1"), "\(stored.stdoutText)")
    }

    @Test func withoutRecordInputNothingOfTheInputIsStored() throws {
        let id = try run("unrecorded", "not kept\n")
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(input.status == 0 && input.stdoutText.isEmpty, "\(input.stdoutText)")
        #expect(try record(id)["stdin_bytes"] is NSNull)
        #expect(!(try daemon.ctl(["status", id]).stdoutText.contains("logs --input")))
        #expect(try asciicast(id).allSatisfy { $0.1 == "o" })
    }

    @Test func recordedInputCountsAgainstTheStoredOutputCap() throws {
        // 256 KiB of input into a 64 KiB budget: the head and the tail are kept, the middle is dropped.
        let line = String(repeating: "x", count: 1023) + "\n"
        let id = try run("recorded", String(repeating: line, count: 256), ["sh", "-c", "cat >/dev/null"])
        let record = try record(id)
        #expect(record["stdin_bytes"] as? Int == 256 * 1024)
        let stored = try #require(record["stored_bytes"] as? Int)
        let dropped = try #require(record["dropped_bytes"] as? Int)
        #expect(stored <= 64 * 1024 + 1024 && dropped > 0 && stored + dropped == 256 * 1024, "\(record)")
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(input.stdoutText.utf8.count == stored)
    }

    @Test func aSecretTypedKeyByKeyIntoATerminalIsNotStored() throws {
        let argv = [
            "/usr/bin/env", "TERM=xterm-256color", Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-t",
            "-q", "-e", "recorded", "--", "sh", "-c", "stty -echo icrnl; echo ready; read line; echo got ${#line}",
        ]
        // Each key is its own `stdin` request; the shell reads the line with echo off, so only the input shows it.
        let keys = Array("pw \(Self.secret) end").map { PtyDriver.Step.send(String($0)) }
        let result = try PtyDriver.run(
            argv, steps: [.expect("ready")] + keys + [.send("\r"), .expect("got \(Self.secret.count + 7)")])
        #expect(result.status == 0, "\(result.output)")
        let id = try latestID()
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(input.stdoutText == "pw [secret:typed-token] end\r", "\(input.stdoutText)")
        let events = try asciicast(id)
        #expect(events.contains { $0.1 == "i" } && !events.contains { $0.2.contains(Self.secret) })
        #expect(!(try daemon.ctl(["logs", id]).stdoutText.contains("pw ")), "the input is not replayed as output")
    }
}

/// A terminal session's last output on an executor that injects secrets (found while writing the tests above; fails
/// on f8e5ea2): the redactor holds the last bytes of output back (as long as a secret could be), and releases
/// them at the end of the stream; a terminal's master ends with a read error (EIO), which ended the async
/// channel's stream before the held bytes went out, so the session's last line was neither shown nor stored.
extension InputRecordingTests {
    @Test func aTerminalSessionsLastLineIsNotLostWhereSecretsAreInjected() throws {
        let argv = [
            "/usr/bin/env", "TERM=xterm-256color", Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-t",
            "-q", "-e", "unrecorded", "--", "sh", "-c", "echo ready; read line; echo last-line-$line",
        ]
        let result = try PtyDriver.run(argv, steps: [.expect("ready"), .send("x\r"), .expect("last-line-x")])
        #expect(result.status == 0, "\(result.output)")
        let logs = try daemon.ctl(["logs", try latestID()])
        #expect(logs.stdoutText.hasSuffix("last-line-x\r\n"), "\(logs.stdoutText)")
    }
}

extension InputRecordingTests {
    /// Whoever may use an executor is told that it records their input, before typing anything into it.
    @Test func capabilitiesSayWhichExecutorsRecordInput() throws {
        let text = try daemon.ctl(["capabilities"]).stdoutText
        let blocks = text.components(separatedBy: "\nexecutor ")
        let recorded = try #require(blocks.first { $0.hasPrefix("recorded ") })
        let unrecorded = try #require(blocks.first { $0.hasPrefix("unrecorded ") })
        #expect(recorded.contains("what you type or pipe in is recorded"), "\(text)")
        #expect(!unrecorded.contains("is recorded"), "\(text)")
    }
}
