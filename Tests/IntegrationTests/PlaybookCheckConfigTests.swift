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

    /// A reload that meets a bad playbook is rejected naming its file and line; the old configuration stays.
    @Test(.enabled(if: Harness.hasJournal, "needs a journal (scripts/test)"))
    func aReloadWithABadPlaybookIsRejected() throws {
        let daemon = try DaemonFixture()
        defer { daemon.stop() }
        mkdir(daemon.directory + "/playbooks", 0o755)
        let playbook = daemon.directory + "/playbooks/broken.yaml"
        try "steps:\n  - name: one\n    argv: [/bin/true, \"{{nope}}\"]\n"
            .write(toFile: playbook, atomically: true, encoding: .utf8)
        daemon.process.signal(SIGHUP)
        let rejected = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=config_rejected", "RUNVOY_CONFIG_PATH=\(daemon.configPath)",
        ])
        let errors = rejected.last?["RUNVOY_ERRORS"] ?? ""
        #expect(errors.contains("\(playbook):3:"), "\(errors)")
        #expect(errors.contains("unknown parameter 'nope'"), "\(errors)")
        let out = try daemon.ctl(["exec", "-q", "--", "echo", "old config"])
        #expect(out.stdoutText == "old config\n")
    }
}
