import Foundation
import Testing

@testable import runvoyctl

/// docs/PROTOCOL.md is the contract: the Python client printed there, written from the page alone, must work.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct ProtocolDocTests {
    /// The `index`th Python block of docs/PROTOCOL.md.
    static func pythonClient(_ index: Int = 0) throws -> String {
        let doc = try String(contentsOfFile: Harness.packageRoot + "/docs/PROTOCOL.md", encoding: .utf8)
        var from = doc.startIndex
        for block in 0...index {
            guard let start = doc.range(of: "```python\n", range: from..<doc.endIndex),
                let end = doc.range(of: "\n```", range: start.upperBound..<doc.endIndex)
            else { throw HarnessError("docs/PROTOCOL.md has no python block \(index)") }
            if block == index { return String(doc[start.upperBound..<end.lowerBound]) }
            from = end.upperBound
        }
        throw HarnessError("unreachable")
    }

    @Test func theHistoryClientFromTheDocsFollowsTheNewestExecution() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        let script = try Self.pythonClient(1)
            .replacingOccurrences(of: "/run/runvoy/runvoyd.sock", with: daemon.socketPath)
        let path = daemon.directory + "/history.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let started = try daemon.ctl(
            ["exec", "--detach", "--", "sh", "-c", "echo first; sleep 0.5; echo second; echo err >&2"])
        #expect(started.status == 0)
        let out = try Harness.run(["/usr/bin/env", "python3", path])
        #expect(out.status == 0, "stderr: \(out.stderrText)")
        #expect(out.stdoutText == "first\nsecond\n")
        #expect(out.stderrText.hasSuffix("err\n"))
        #expect(out.stderrText.contains("running sh -c") || out.stderrText.contains("succeeded sh -c"))
    }

    @Test func thePythonClientFromTheDocsRunsACommand() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        let script = try Self.pythonClient()
            .replacingOccurrences(of: "/run/runvoy/runvoyd.sock", with: daemon.socketPath)
        let path = daemon.directory + "/client.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let out = try Harness.run(["/usr/bin/env", "python3", path])
        #expect(out.status == 0, "stderr: \(out.stderrText)")
        #expect(out.stdoutText.hasPrefix("uid=65534(nobody)"))

        let failing = script.replacingOccurrences(of: #"["id"]"#, with: #"["sh", "-c", "exit 9"]"#)
        try failing.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Harness.run(["/usr/bin/env", "python3", path]).status == 9)
    }
}

/// runvoyctl's fast `exec` parser must agree with ArgumentParser wherever it answers.
struct ExecParsingTests {
    static let cases: [[String]] = [
        ["exec", "--", "id"],
        ["exec", "-q", "-n", "--", "/bin/true"],
        ["exec", "-e", "deploy", "--env", "A=1", "--env=B=2", "--timeout", "5m", "--", "terraform", "plan", "-x"],
        [
            "exec", "--executor=web", "--detach", "--kill-on-disconnect", "--quiet", "--no-stdin", "--", "ls", "--",
            "-l",
        ],
        ["exec", "--socket", "/tmp/s", "ls", "-la"],
        ["exec", "--socket=/tmp/s", "--timeout=1h30m", "--", "sh", "-c", "exit 3"],
        ["exec", "--no-wait", "-e", "serial", "--", "true"],
        ["exec", "--wait-timeout", "10m", "--", "true"],
        ["exec", "--wait-timeout=90s", "--detach", "--", "true"],
    ]

    @Test(arguments: cases)
    func fastParserAgreesWithArgumentParser(arguments: [String]) throws {
        let fast = try #require(ExecOptions.parseFast(["runvoyctl"] + arguments))
        let command = try #require(try RunvoyCtl.parseAsRoot(arguments) as? ExecCommand)
        #expect(fast == command.options)
    }

    @Test(arguments: [
        ["exec", "--help"], ["exec", "-qn", "--", "id"], ["exec", "--timeout", "soon", "--", "id"],
        ["exec", "--env", "NOEQUALS", "--", "id"], ["exec", "--wait-timeout", "soon", "--", "id"], ["exec", "--"],
        ["exec", "--frobnicate", "--", "id"], ["whoami"],
    ])
    func fastParserLeavesEverythingElseToArgumentParser(arguments: [String]) {
        #expect(ExecOptions.parseFast(["runvoyctl"] + arguments) == nil)
    }

    @Test func execHelpPrintsHelpInsteadOfRunningIt() throws {
        for arguments in [["exec", "--help"], ["exec", "-q", "-h"]] {
            let out = try Harness.run([Harness.runvoyctl] + arguments)
            #expect(out.status == 0, "\(arguments)")
            #expect(out.stdoutText.contains("USAGE: runvoyctl exec"), "\(arguments)")
        }
        #expect(!ExecOptions.asksForHelp(["runvoyctl", "exec", "--", "grep", "--help"]))
        #expect(!ExecOptions.asksForHelp(["runvoyctl", "exec", "ls", "-h"]))
        let bare = try Harness.run([Harness.runvoyctl, "exec"])
        #expect(bare.status != 0)
        #expect(bare.stderrText.contains("name a command to run"))
    }
}
