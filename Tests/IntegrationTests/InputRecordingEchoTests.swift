import Foundation
import Glibc
import RunvoyKit
import Testing

/// Security review of edit2 (revedit2 PoC): SECURITY.md and CONFIGURATION.md say a secret typed into a session of
/// an executor with `record_input` "is stored as `[secret:NAME]`, however slowly it is typed". That holds for the
/// stream `stdin`, but a terminal echoes what is typed (the default: a shell's command line, a REPL, any prompt
/// that does not turn echo off), and the echo is output, whose redactor releases what it holds after 20 ms of
/// quiet. Typed one key at a time, each echoed key goes out and into the stored output on its own, so the value is
/// stored whole in the output (`logs ID`, `--replay`, `--format asciicast`, `attach`) for anyone who may view the
/// execution. `aSecretTypedKeyByKeyIntoATerminalIsNotStored` turns echo off (`stty -echo`), which hides this.
extension InputRecordingTests {
    @Test func aSecretTypedKeyByKeyWithEchoOnIsNotStoredInTheOutput() throws {
        let argv = [
            "/usr/bin/env", "TERM=xterm-256color", Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-t",
            "-q", "-e", "recorded", "--", "sh", "-c", "stty icrnl; echo ready; read line; echo got ${#line}",
        ]
        // Each key waits for the echo of the one before (no sleeps): the echo has then left the redactor.
        var steps: [PtyDriver.Step] = [.expect("ready")]
        var typed = ""
        for key in Self.secret {
            typed.append(key)
            steps.append(.send(String(key)))
            steps.append(.expect(NSRegularExpression.escapedPattern(for: typed)))
        }
        steps += [.send("\r"), .expect("got \(Self.secret.count)")]
        let result = try PtyDriver.run(argv, steps: steps)
        #expect(result.status == 0, "\(result.output)")
        let id = try latestID()
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(input.stdoutText == "[secret:typed-token]\r", "\(input.stdoutText)")
        let output = try daemon.ctl(["logs", id])
        #expect(
            !output.stdoutText.contains(Self.secret),
            "the typed secret is in the stored output (the terminal's echo): \(output.stdoutText)")
        let events = try asciicast(id)
        #expect(!events.filter { $0.1 == "o" }.map(\.2).joined().contains(Self.secret), "asciicast has it too")
    }

    /// The stored copy holds its tail without the timer on pipes too, each stream on its own: a value written in
    /// two halves with a pause between (which the live stream releases in two parts, as docs/SECURITY.md says) is
    /// stored as `[secret:NAME]` on stdout and on stderr, and the rest of the output is stored whole and in order.
    @Test func aValueWrittenWithAPauseInItsMiddleIsNotStoredOnAnExecutorThatRecordsInput() throws {
        let script = """
            half=$((${#TOKEN} / 2)); a=$(printf %s "$TOKEN" | cut -c1-$half); b=$(printf %s "$TOKEN" | cut -c$((half + 1))-)
            printf 'out:%s' "$a"; printf 'err:%s' "$a" >&2; sleep 0.2; printf '%s:end\n' "$b"; printf '%s:end\n' "$b" >&2
            """
        let id = try run("recorded", "", ["sh", "-c", script])
        let logs = try daemon.ctl(["logs", id])
        #expect(logs.stdoutText == "out:[secret:typed-token]:end\n", "\(logs.stdoutText)")
        #expect(logs.stderrText == "err:[secret:typed-token]:end\n", "\(logs.stderrText)")
        let status = try record(id)
        #expect(status["exit_code"] as? Int == 0, "\(status)")
    }
}
