import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyd --check-config` reads the playbooks beside the configuration file: a bad one fails the check with its
/// file, line and key; a good one passes. Root: the playbook files must belong to the daemon's user.
@Suite(.enabled(if: Harness.isRoot, "needs root: playbook files must belong to the daemon's user (scripts/test)"))
struct PlaybookCheckConfigTests {
    @Test func checkConfigReportsABadPlaybookWithFileAndLine() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/runvoyd.yaml"
        try DaemonFixture.standardConfig(directory: dir).write(toFile: config, atomically: true, encoding: .utf8)
        mkdir(dir + "/playbooks", 0o755)
        let playbook = dir + "/playbooks/deploy.yaml"
        try """
        description: a playbook with a placeholder for an undeclared parameter
        parameters:
          env: {type: enum, values: [dev, prod]}
        steps:
          - name: plan
            argv: [/bin/echo, "{{target}}"]
        """.write(toFile: playbook, atomically: true, encoding: .utf8)
        let bad = try Harness.run([Harness.runvoyd, "--check-config", "--config", config])
        #expect(bad.status == 1)
        let text = bad.stdoutText + bad.stderrText
        #expect(text.contains("\(playbook):6:"), "\(text)")
        #expect(text.contains("steps[0].argv[1]: unknown parameter 'target'"), "\(text)")

        try """
        parameters:
          target: {type: string, pattern: "[a-z]+", required: true}
        steps:
          - name: plan
            argv: [/bin/echo, "{{target}}"]
        """.write(toFile: playbook, atomically: true, encoding: .utf8)
        let good = try Harness.run([Harness.runvoyd, "--check-config", "--config", config])
        #expect(good.status == 0, "\(good.stdoutText)\(good.stderrText)")
        #expect(good.stdoutText.contains("executors, 1 playbooks, default"), "\(good.stdoutText)")
    }
}
