import Foundation
import Glibc
import RunvoyKit
import Testing

/// Review 16b, F3 (StoredOutputRedaction, 076ac7e/4a64aca): the stored copy of a terminal session's output is
/// redacted without the timer, so a secret echoed one key at a time is caught, but only while the echo is the
/// value's bytes one after the other. A line editor (readline: an interactive bash, `read -e`, psql, mysql, the
/// Python REPL) that echoes a key landing on the terminal's last column writes " \r" after it, to put the cursor on
/// the next line itself: the echo of a secret typed across the right margin is "…Secret \r-4711…". The stored
/// output then holds the value split in two, which no redactor of contiguous bytes matches, and which a terminal
/// (`logs ID`, `--replay`, asciicast, `attach`) shows whole. The recorded input, one stream of keys, is redacted.
/// Not fixed: listed in docs/SECURITY.md with the other forms redaction does not catch (a redactor that skipped
/// cursor movements would never be complete), and held here as a known issue.
extension InputRecordingTests {
    @Test func aSecretTypedAcrossTheRightMarginOfALineEditorIsNotStoredInTheOutput() throws {
        // 20 columns: "prompt> " is 8, so the 12th key of the secret lands on the last column.
        let argv = [
            "/usr/bin/env", "TERM=xterm-256color", Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-t",
            "-q", "-e", "recorded", "--", "/usr/bin/env", "TERM=xterm-256color", "bash", "--norc", "--noprofile",
            "-c", "echo ready; read -e -p 'prompt> ' line; echo got ${#line}",
        ]
        // Each key waits for its echo (the margin's " \r" may sit between two keys' echoes).
        var steps: [PtyDriver.Step] = [.expect("ready")]
        var typed: [String] = []
        for key in Self.secret {
            typed.append(NSRegularExpression.escapedPattern(for: String(key)))
            steps.append(.send(String(key)))
            steps.append(.expect("prompt> " + typed.joined(separator: "(?: \\r)?")))
        }
        steps += [.send("\r"), .expect("got \(Self.secret.count)")]
        let result = try PtyDriver.run(argv, rows: 24, cols: 20, steps: steps)
        #expect(result.status == 0, "\(result.output)")
        let id = try latestID()
        let input = try daemon.ctl(["logs", "--input", id])
        #expect(!input.stdoutText.contains(Self.secret), "the recorded input has it: \(input.stdoutText)")
        let output = try daemon.ctl(["logs", id])
        #expect(output.status == 0, "\(output.stderrText)")
        // What a terminal shows: the margin's " \r" moves the cursor to where it already was.
        let shown = output.stdoutText.replacingOccurrences(of: " \r", with: "")
        // A documented limit (docs/SECURITY.md, "Not caught"): held as a known issue so that a fix shows.
        withKnownIssue("a line editor's wrap at the right margin splits the echo of a typed secret") {
            #expect(
                !shown.contains(Self.secret),
                "the typed secret is in the stored output, split by the line editor's wrap: \(output.stdoutText.debugDescription)"
            )
        }
    }
}
