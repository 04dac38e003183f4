import Foundation
import Glibc
import RunvoyKit
import Testing

/// What runvoyctl shows when the daemon's frames leave fields out, break the protocol or the connection ends
/// early: a `ScriptedDaemon` plays runvoyd, the client is the real runvoyctl. Whatever arrives, runvoyctl says
/// plainly what happened and exits with a status that tells it (125 for a failure of its own, the command's
/// status when one came).
struct CtlBrokenDaemonTests {
    static let id = "01scriptedexecution0000000"

    /// Plays `frames` to a client after reading its request, then closes the connection.
    static func reply(_ frames: [String]) -> ScriptedDaemon.Script {
        { daemon, _ in
            let peer = try daemon.accept()
            guard try peer.readFrame() != nil else { throw HarnessError("no request") }
            try peer.sendFrames(frames)
            _ = peer.readToEnd()
        }
    }

    @Test func execShowsOutputEventsInAnyLayoutAndFillsInWhatIsMissing() async throws {
        let daemon = try ScriptedDaemon()
        let run = try await daemon.play(
            ["exec", "-n", "--", "true"],
            script: Self.reply([
                #"{"event":"queued"}"#,
                #"{"event":"approval","state":"approved"}"#,
                #"{"id":1,"event":"started","execution_id":"\#(Self.id)"}"#,
                #"{"event":"output","stream":"stdout","id":1,"data":"aGVsbG8K"}"#,
                #"{"event":"output","stream":"stderr","id":1,"data":"@@@@"}"#,
                #"{"id":1,"data":"d29ybGQK","event":"output","stream":"stdout"}"#,
                #"{"id":5,"error":{"message":"no such signal"}}"#,
                #"{"id":6,"error":{"code":"busy"}}"#,
                #"{"id":1,"event":"something new"}"#,
                #"{"id":1,"event":"exit","execution_id":"\#(Self.id)"}"#,
            ]))
        #expect(run.scriptError == nil)
        let err = run.output.stderrText
        #expect(run.output.stdoutText == "hello\nworld\n")
        #expect(err.contains("runvoyctl: queued: 1st for ? (its turn)\n"), "\(err)")
        #expect(err.contains("runvoyctl: waiting for approval 0/0 from "), "\(err)")
        #expect(err.contains("expires in 0s; digest …: runvoyctl approve ?\n"), "\(err)")
        #expect(err.contains("runvoyctl: execution \(Self.id) on executor '?' as ?\n"), "\(err)")
        #expect(err.contains("runvoyctl: runvoyd sent output that is not valid base64; dropped\n"), "\(err)")
        #expect(err.contains("runvoyctl: internal: no such signal\n"), "\(err)")
        #expect(err.contains("runvoyctl: busy: \n"), "\(err)")
        // An exit without a status or signal reads as signal 0.
        #expect(run.output.status == 128, "\(err)")
    }

    @Test func execEndsOnATimeOutWithoutAnIdAndOnWhatItCannotRead() async throws {
        let daemon = try ScriptedDaemon()
        // (The socket from $RUNVOY_SOCKET.)
        let timedOut = try await daemon.play(
            ["exec", "-n", "-q", "--", "true"], environment: ["RUNVOY_SOCKET": daemon.path], socketOption: false,
            script: Self.reply([#"{"id":1,"event":"exit","timed_out":true}"#]))
        #expect(timedOut.output.stderrText == "runvoyctl: execution ? timed out and was stopped\n")
        #expect(timedOut.output.status == 124)

        let cases: [(frame: [UInt8], message: String)] = [
            (Self.frame("[1, 2]"), "runvoyctl: unreadable frame from runvoyd\n"),
            (Self.frame(#"{"id":1,"event":"output"}"#), "runvoyctl: output event without stream or data\n"),
            (
                [0x7F, 0xFF, 0xFF, 0xFF],
                "runvoyctl: runvoyd sent an oversized frame: frame of 2147483647 bytes exceeds the maximum of "
                    + "67108864 bytes\n"
            ),
        ]
        for (frame, message) in cases {
            let run = try await daemon.play(["exec", "-n", "--", "true"]) { daemon, _ in
                let peer = try daemon.accept()
                _ = try peer.readFrame()
                try peer.send(frame)
                _ = peer.readToEnd()
            }
            #expect(run.output.stderrText == message)
            #expect(run.output.status == 125)
        }

        let cut = try await daemon.play(["exec", "-n", "--", "true"]) { daemon, _ in
            let peer = try daemon.accept()
            _ = try peer.readFrame()
            try peer.sendFrame(#"{"id":1,"event":"started","execution_id":"\#(Self.id)","executor":"default"}"#)
            peer.closeNow()
        }
        #expect(
            cut.output.stderrText.hasSuffix(
                "runvoyctl: runvoyd closed the connection; execution \(Self.id) may still be running\n"))
        #expect(cut.output.status == 125)
    }

    /// A signal goes on a side connection of its own; when runvoyd refuses it there runvoyctl says so, and when
    /// no side connection can be made it goes in band, on the exec's connection.
    @Test func execForwardsSignalsOnASideConnectionOrElseInBand() async throws {
        let daemon = try ScriptedDaemon()
        let run = try await daemon.play(["exec", "--kill-on-disconnect", "--", "sleep", "60"]) { daemon, client in
            let peer = try daemon.accept()
            guard let exec = try peer.readFrame(),
                (exec["params"] as? [String: Any])?["kill_on_disconnect"] as? Bool == true
            else { throw HarnessError("no kill_on_disconnect in the exec request") }
            try peer.sendFrame(#"{"id":1,"event":"started","execution_id":"\#(Self.id)"}"#)
            // Its input (/dev/null) ends once it knows the command started.
            guard let eof = try peer.readFrame(), eof["method"] as? String == "stdin" else {
                throw HarnessError("no end of input")
            }
            kill(client.pid, SIGQUIT)
            let side = try daemon.accept()
            guard let signal = try side.readFrame(), let params = signal["params"] as? [String: Any],
                params["signal"] as? String == "QUIT", params["execution_id"] as? String == Self.id
            else { throw HarnessError("no QUIT on the side connection") }
            try side.sendFrame(#"{"id":1,"error":{"code":"not_running"}}"#)
            daemon.stopListening()
            kill(client.pid, SIGHUP)
            guard let inBand = try peer.readFrame(), inBand["method"] as? String == "signal",
                (inBand["params"] as? [String: Any])?["signal"] as? String == "HUP"
            else { throw HarnessError("no HUP in band") }
            try peer.sendFrame(#"{"id":1,"event":"exit","exit_code":3}"#)
            _ = peer.readToEnd()
        }
        #expect(run.scriptError == nil)
        #expect(run.output.stderrText.contains("runvoyctl: signal QUIT: refused\n"), "\(run.output.stderrText)")
        #expect(run.output.status == 3)
    }

    /// Ctrl-C while the request waits for approval withdraws it; when that fails, runvoyctl says how to cancel it.
    @Test func leavingAnApprovalThatCannotBeWithdrawnSaysHowToCancelIt() async throws {
        let daemon = try ScriptedDaemon()
        let run = try await daemon.play(["exec", "-n", "--", "true"]) { daemon, client in
            let peer = try daemon.accept()
            _ = try peer.readFrame()
            try peer.sendFrame(
                #"{"id":1,"event":"approval","execution_id":"\#(Self.id)","state":"pending","approvals":0,"required":2}"#
            )
            try ScriptedDaemon.waitForText("waiting for approval 0/2", in: client.stderrPath)
            kill(client.pid, SIGINT)
            // The withdrawal's connection is cut before any answer.
            try daemon.accept().closeNow()
            _ = peer.readToEnd()
        }
        #expect(run.scriptError == nil)
        let err = run.output.stderrText
        #expect(err.contains("runvoyctl: could not withdraw request \(Self.id) ("), "\(err)")
        #expect(err.contains("it runs once approved unless you run: runvoyctl cancel \(Self.id)\n"), "\(err)")
        #expect(run.output.status == 128 + SIGINT)
    }

    @Test func attachShowsEveryFrameItUnderstandsAndEndsWithTheCommandsStatus() async throws {
        let daemon = try ScriptedDaemon()
        let stderrOutput = BinaryOutputFrame.header(stream: .stderr, count: 5) + Array("oops\n".utf8)
        let run = try await daemon.play(["attach", Self.id]) { daemon, _ in
            let peer = try daemon.accept()
            _ = try peer.readFrame()
            try peer.sendFrame(#"{"event":"attached"}"#)
            try peer.send(stderrOutput)
            try peer.sendFrames([
                #"{"id":1,"event":"output","stream":"stdout","data":"aGkK"}"#,
                #"{"id":1,"event":"dropped","bytes":10}"#,
                #"{"id":1,"event":"dropped"}"#,
                #"{"id":3,"error":{}}"#,
                #"{"id":2,"result":{}}"#,
                #"{"id":1,"result":{"execution":{"signal":9}}}"#,
            ])
            _ = peer.readToEnd()
        }
        #expect(run.scriptError == nil)
        #expect(run.output.stdoutText == "hi\n")
        #expect(
            run.output.stderrText
                == "oops\nrunvoyctl: [runvoy: 10 bytes of output were not stored here]\n"
                + "runvoyctl: [runvoy: 0 bytes of output were not stored here]\nrunvoyctl: internal: \n")
        #expect(run.output.status == 128 + 9)
    }

    @Test func attachSaysWhatWentWrongWithTheDaemon() async throws {
        let daemon = try ScriptedDaemon()
        let cases: [(frames: [UInt8], message: String, status: Int32)] = [
            (Self.frame(#"{"id":1,"result":{"execution":{}}}"#), "", 125),
            (
                Self.frame(#"{"id":1,"event":"output","stream":"stdout"}"#),
                "runvoyctl: output event without stream or data\n", 125
            ),
            (Self.frame(#""nope""#), "runvoyctl: unreadable frame from runvoyd\n", 125),
            (
                Self.frame(#"{"id":1,"event":"attached"}"#),
                "runvoyctl: runvoyd closed the connection; execution \(Self.id) may still be running\n", 125
            ),
            ([0x80, 0, 0, 0], "runvoyctl: frame_too_large: frame of 0 bytes exceeds the maximum of", 125),
        ]
        for (frames, message, status) in cases {
            let run = try await daemon.play(["attach", Self.id]) { daemon, _ in
                let peer = try daemon.accept()
                _ = try peer.readFrame()
                try peer.send(frames)
                peer.closeNow()
            }
            #expect(run.output.stderrText.hasPrefix(message), "\(run.output.stderrText)")
            #expect(run.output.status == status)
        }
    }

    /// A run's frames with their fields left out still show as progress lines, and the run's status is the last
    /// failed step's (125 when none said more).
    @Test func playbookRunShowsProgressWithWhatIsMissingFilledIn() async throws {
        let daemon = try ScriptedDaemon()
        let file = daemon.directory + "/values.json"
        try #"{"env": "prod", "count": "2"}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let run = try await daemon.play(["playbook", "run", "deploy", "--params-file", file, "--param", "count=3"]) {
            daemon, _ in
            let peer = try daemon.accept()
            guard let request = try peer.readFrame(), let params = request["params"] as? [String: Any],
                params["params"] as? [String: String] == ["env": "prod", "count": "3"]
            else { throw HarnessError("the run was not asked with the file's values under --param's") }
            try peer.sendFrames([
                #"{"id":1,"event":"run_started"}"#,
                #"{"id":1,"event":"step","step":{}}"#,
                #"{"id":1,"event":"step","step":{"index":1,"name":"plan","state":"started"}}"#,
                #"{"id":1,"event":"step","step":{"index":1,"name":"plan","state":"failed","error":{}}}"#,
                #"{"id":1,"event":"something new"}"#,
                #"{"id":1,"result":{"state":"failed"}}"#,
            ])
            _ = peer.readToEnd()
        }
        #expect(run.scriptError == nil)
        #expect(
            run.output.stderrText
                == "runvoyctl: run ? of playbook '?'\nrunvoyctl: [1/0] ?: ?\nrunvoyctl: [2/0] plan: started (id ?)\n"
                + "runvoyctl: [2/0] plan: failed: it did not start\nrunvoyctl: run ? failed\n")
        #expect(run.output.status == 125)

        let cancelled = try await daemon.play(
            ["playbook", "run", "deploy", "-q"], script: Self.reply([#"{"id":1,"result":{"state":"cancelled"}}"#]))
        #expect(cancelled.output.stderrText == "")
        #expect(cancelled.output.status == 125)
    }

    /// Defect found here: completing a playbook's name or `--param NAME=` read the socket from `GlobalOptions()`,
    /// which ArgumentParser never filled in; every completion stopped with "Can't read a value from a parsable
    /// argument definition" and exit 1. It now asks the daemon at the `--socket` on the line (else
    /// $RUNVOY_SOCKET, else the default).
    @Test func shellCompletionOffersThePlaybooksAndTheirParameters() async throws {
        let daemon = try ScriptedDaemon()
        let list = PlaybookListResult(playbooks: [
            PlaybookSummary(
                name: "deploy", description: nil, parameters: [PlaybookParameterInfo(name: "env", type: "string")]),
            PlaybookSummary(name: "backup", description: nil, parameters: []),
        ])
        let serve = ScriptedDaemon.serve([
            ScriptedDaemon.Answer(method: "playbook_list", result: try ScriptedDaemon.json(list))
        ])
        let line = ["runvoyctl", "playbook", "run", "--socket", daemon.path]
        let names = try await daemon.play(
            ["---completion", "playbook", "run", "--", "positional@0", "5", "0"] + line + [""], socketOption: false,
            script: serve)
        #expect(names.scriptError == nil)
        #expect(names.output.stdoutText.split(separator: "\n") == ["deploy", "backup"], "\(names.output.stderrText)")
        #expect(names.output.status == 0)
        let parameters = try await daemon.play(
            ["---completion", "playbook", "run", "--", "--param", "7", "0"] + line + ["deploy", "--param", ""],
            socketOption: false, script: serve)
        #expect(parameters.output.stdoutText.split(separator: "\n") == ["env="], "\(parameters.output.stderrText)")
        // Without a daemon there is nothing to offer, and nothing to complain about.
        let none = try await daemon.play(
            [
                "---completion", "playbook", "show", "--", "positional@0", "5", "0", "runvoyctl", "playbook", "show",
                "--socket", daemon.directory + "/none", "",
            ],
            socketOption: false
        ) { _, _ in }
        #expect(none.output.stdoutText == "" && none.output.status == 0, "\(none.output.stderrText)")
    }

    static func frame(_ json: String) -> [UInt8] {
        Frame.header(length: json.utf8.count) + Array(json.utf8)
    }
}
