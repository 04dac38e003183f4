import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl playbook list` and `playbook show` against a real runvoyd, for a playbook that has every kind of
/// parameter, a step timeout, locks, an approval and a schedule; and `playbook run --schedule` refusing values.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct PlaybookShowTests {
    static let deploy = """
        description: Plan and apply an environment
        access: {users: ["*"]}
        parameters:
          env: {type: enum, values: [dev, prod], default: dev, description: The environment}
          target: {type: string, pattern: "[a-z][a-z0-9-]{0,30}", required: true}
          workers: {type: integer, min: 1, max: 16}
          dir: {type: path, under: [/srv/deploy, /tmp]}
        steps:
          - name: plan
            argv: [/bin/echo, plan, "{{target}}"]
            timeout: 10m
          - name: notify
            argv: [/bin/echo, notify]
            when: always
            continue_on_error: true
        locks: [infra]
        approval: {count: 1, approvers: {roles: [admin]}}
        schedule: {calendar: "Mon..Fri 03:00", run_as_caller: nobody, params: {target: web}}
        """

    func daemon() throws -> DaemonFixture {
        try DaemonFixture(config: { directory in
            mkdir(directory + "/playbooks", 0o755)
            try? Self.deploy.write(toFile: directory + "/playbooks/deploy.yaml", atomically: true, encoding: .utf8)
            return DaemonFixture.standardConfig(directory: directory)
        })
    }

    static let parameterLines = [
        "dir (path, under /srv/deploy, /tmp)",
        "env (enum, default \"dev\", one of dev|prod): The environment",
        "target (string, required, matching [a-z][a-z0-9-]{0,30})",
        "workers (integer, 1..16)",
    ]

    @Test func showAndListDescribeEveryTerm() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let shown = try daemon.ctl(["playbook", "show", "deploy"])
        #expect(shown.status == 0, "\(shown.stderrText)")
        let lines = shown.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == "playbook deploy: Plan and apply an environment", "\(lines)")
        for line in Self.parameterLines {
            #expect(lines.contains("  " + line), "\(line) in \(shown.stdoutText)")
        }
        #expect(lines.contains { $0.hasPrefix("  1. plan on default: ") && $0.hasSuffix(", timeout 600s") })
        #expect(
            lines.contains {
                $0.hasPrefix("  2. notify on default: ") && $0.hasSuffix(" when always, continue on error")
            })
        #expect(lines.contains("locks: infra"), "\(shown.stdoutText)")
        #expect(lines.contains { $0.hasPrefix("approval: ") }, "\(shown.stdoutText)")
        #expect(lines.contains("schedule: Mon..Fri 03:00 as nobody"), "\(shown.stdoutText)")

        let listed = try daemon.ctl(["playbook", "list"])
        #expect(listed.status == 0, "\(listed.stderrText)")
        let listLines = listed.stdoutText.split(separator: "\n").map(String.init)
        #expect(listLines.first == "deploy  Plan and apply an environment", "\(listLines)")
        for line in Self.parameterLines {
            #expect(listLines.contains("    " + line), "\(line) in \(listed.stdoutText)")
        }
        let json = try daemon.ctl(["playbook", "list", "--json"])
        let decoded = try JSONDecoder().decode(PlaybookListResult.self, from: json.stdout)
        #expect(decoded.playbooks.map(\.name) == ["deploy"])
        #expect(decoded.playbooks.first?.parameters.first { $0.name == "workers" }?.max == 16)
    }

    @Test func aScheduledRunTakesNoValues() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let out = try daemon.ctl(["playbook", "run", "deploy", "--schedule", "--param", "target=x"])
        #expect(out.status == 64, "a usage error: \(out.stderrText)")
        #expect(out.stderrText.contains("--schedule takes its parameters from the configuration: give no --param"))
    }
}
