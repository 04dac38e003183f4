import Foundation
import Testing

/// What runvoyctl refuses before it connects: bad options, conflicting flags, unreadable files. No daemon is
/// needed (the socket named does not exist); each refusal names what is wrong, and exits 64 (a usage error) or
/// 125 (a failure of runvoyctl's own).
struct CtlUsageErrorTests {
    static let nowhere = "/nonexistent/runvoyd.sock"

    @Test(arguments: [
        (
            ["logs", "x", "--max-pause", "soon"],
            "Error: --max-pause takes a duration such as 500ms or 2s, not 'soon'\n"
        ),
        (["logs", "x", "--format", "html"], "Error: --format is raw or asciicast, not 'html'\n"),
        (
            ["logs", "x", "--format", "asciicast", "--follow"],
            "Error: --format asciicast writes a file: not with --replay, --timestamps or --follow\n"
        ),
        (["logs", "x", "--size", "80"], "Error: --size takes COLSxROWS, such as 80x24\n"),
        (["logs", "x", "--size", "0x24"], "Error: --size takes COLSxROWS, such as 80x24\n"),
        (["logs", "x", "--speed", "inf"], "Error: --speed must be a positive number\n"),
        (["explain"], "Error: name a command after --, e.g. runvoyctl explain -- terraform plan\n"),
        (["approvals", "--limit", "0"], "Error: --limit must be between 1 and 500\n"),
        (["approvals", "--state", "pending,bogus"], "Error: unknown state 'bogus'\n"),
        (
            ["grant", "--user", "bob", "--role", "r", "--executor", "e", "--for", "1h", "--reason", "x"],
            "Error: give exactly one of --role and --executor\n"
        ),
        (
            ["grant", "--user", "bob", "--role", "r", "--for", "500ms", "--reason", "x"],
            "Error: --for must be a duration such as 30m, 2h or 1d\n"
        ),
        (
            ["secrets", "set", "bad/name"],
            "Error: secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit\n"
        ),
    ])
    func optionsAreRefusedBeforeConnecting(arguments: [String], message: String) async throws {
        let out = try await Harness.runDetached([Harness.runvoyctl] + arguments + ["--socket", Self.nowhere])
        #expect(out.stderrText.hasPrefix(message), "\(out.stderrText)")
        #expect(out.status == 64)
    }

    @Test func unreadableValuesAndAnEmptySecretAreRefusedBeforeConnecting() async throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let notObject = directory + "/list.json"
        try #"["prod"]"#.write(toFile: notObject, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (
                ["playbook", "run", "deploy", "--params-file", directory + "/none.json"],
                "cannot read \(directory)/none.json"
            ),
            (
                ["playbook", "explain", "deploy", "plan", "--params-file", notObject],
                "\(notObject) is not a JSON object of strings: {\"name\": \"value\", ...}"
            ),
            (["secrets", "set", "db"], "no value on standard input"),
        ]
        for (arguments, message) in cases {
            let out = try await Harness.runDetached([Harness.runvoyctl] + arguments + ["--socket", Self.nowhere])
            #expect(out.stderrText == "runvoyctl: \(message)\n", "\(arguments)")
            #expect(out.status == 125, "\(arguments)")
        }
    }
}
