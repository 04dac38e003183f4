import Foundation
import Glibc
import RunvoyKit
import Testing

/// What `runvoyctl playbook run` shows of a run and the status it exits with, against a real runvoyd: a step ended
/// by a signal (128+N), a step that could not start (its error, 125), `--quiet` (failures only), and a step that
/// waits in the queue (the queue's events pass through the run's progress to the queue display).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class PlaybookProgressTests {
    /// A folder every user may read, for a program a step runs.
    let folder: String

    init() throws {
        folder = try Harness.makeTemporaryDirectory()
        chmod(folder, 0o755)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A daemon with `playbooks` (name: YAML) and an executor `serial` that runs one execution at a time.
    func daemon(_ playbooks: [String: String]) throws -> DaemonFixture {
        try DaemonFixture(config: { directory in
            mkdir(directory + "/playbooks", 0o755)
            for (name, text) in playbooks {
                try? text.write(toFile: "\(directory)/playbooks/\(name).yaml", atomically: true, encoding: .utf8)
            }
            return DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      serial:
                        run_as: {user: nobody, group: nogroup}
                        environment: {PATH: /usr/bin:/bin}
                        concurrency: 1
                        allow: {users: ["*"]}
                        commands: any
                    """)
        })
    }

    static let signalled = """
        access: {users: ["*"]}
        steps:
          - name: stop
            argv: [/bin/sh, -c, "kill -TERM $$"]
          - name: after
            argv: [/bin/echo, after]
        """

    @Test func aStepEndedByASignalEndsTheRunWith128PlusItsNumber() throws {
        let daemon = try daemon(["signalled": Self.signalled])
        defer { daemon.stop() }
        let run = try daemon.ctl(["playbook", "run", "signalled"])
        #expect(run.status == 128 + SIGTERM, "stderr: \(run.stderrText)")
        #expect(run.stdoutText.isEmpty, "the step after a failure does not run: \(run.stdoutText)")
        for line in [
            "of playbook 'signalled'", "[1/2] stop: started (id ", "[1/2] stop: failed (signal 15)",
            "[2/2] after: skipped",
        ] {
            #expect(run.stderrText.contains(line), "\(line) in \(run.stderrText)")
        }
        let runID = try #require(PlaybookTests.runID(run.stderrText), "\(run.stderrText)")
        #expect(run.stderrText.contains("run \(runID) failed"), "\(run.stderrText)")
    }

    @Test func quietShowsOnlyTheFailedStep() throws {
        let daemon = try daemon(["signalled": Self.signalled])
        defer { daemon.stop() }
        let run = try daemon.ctl(["playbook", "run", "--quiet", "signalled"])
        #expect(run.status == 128 + SIGTERM, "stderr: \(run.stderrText)")
        let lines = run.stderrText.split(separator: "\n").map(String.init)
        #expect(lines == ["runvoyctl: [1/2] stop: failed (signal 15)"], "\(lines)")
    }

    @Test func aStepThatCannotStartSaysWhyAndTheRunEndsWith125() throws {
        // The program exists when the run is checked; the first step (as root) removes it before the second runs.
        let program = folder + "/vanishing"
        try "#!/bin/sh\necho ran\n".write(toFile: program, atomically: true, encoding: .utf8)
        chmod(program, 0o755)
        let vanishing = """
            access: {users: ["*"]}
            steps:
              - name: remove
                executor: root
                argv: [/bin/rm, \(program)]
              - name: gone
                argv: [\(program)]
              - name: cleanup
                argv: [/bin/echo, cleanup]
                when: always
            """
        let daemon = try daemon(["vanishing": vanishing])
        defer { daemon.stop() }
        let run = try daemon.ctl(["playbook", "run", "vanishing"])
        #expect(run.status == 125, "stderr: \(run.stderrText)")
        #expect(!run.stdoutText.contains("ran"), "\(run.stdoutText)")
        #expect(run.stderrText.contains("[1/3] remove: succeeded"), "\(run.stderrText)")
        // Not an exit status or a signal: the step's error, in words. The run ends there (cancelled), so even a
        // step that would run after a failure does not.
        #expect(
            run.stderrText.contains(
                "[2/3] gone: failed: step 'gone' (2 of 3) of playbook 'vanishing' is refused, so it did not run: "
                    + "command not found on executor 'default': \(program)\n"), "\(run.stderrText)")
        #expect(run.stderrText.contains("[3/3] cleanup: skipped"), "\(run.stderrText)")
        let runID = try #require(PlaybookTests.runID(run.stderrText), "\(run.stderrText)")
        #expect(run.stderrText.contains("run \(runID) cancelled"), "\(run.stderrText)")
    }

    @Test func aStepThatWaitsInTheQueueShowsItAndRunsOnceTheExecutorIsFree() throws {
        let queued = """
            access: {users: ["*"]}
            steps:
              - name: wait
                executor: serial
                argv: [/bin/echo, through]
            """
        let daemon = try daemon(["queued": queued])
        defer { daemon.stop() }
        let holder = try daemon.startCtl(["exec", "-e", "serial", "--", "sleep", "600"])
        let holderID = try holder.executionID()
        let run = try daemon.startCtl(["playbook", "run", "queued"])
        #expect(
            Harness.waitUntil(seconds: 120) { run.stderr.contains("waits in the queue") }, "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("[1/1] wait: started"), "it runs only once the executor is free: \(run.stderr)")
        #expect(try daemon.ctl(["kill", holderID]).status == 0)
        holder.process.wait()
        let status = run.process.wait(seconds: 120)
        #expect(status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout == "through\n")
        #expect(run.stderr.contains("[1/1] wait: succeeded"), "\(run.stderr)")
    }
}
