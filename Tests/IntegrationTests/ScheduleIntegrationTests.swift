import Foundation
import Glibc
import RunvoyKit
import Testing

/// A playbook's schedule where no systemd runs the system (this test's runvoyd is not under systemd): runvoyd
/// starts and serves, and `runvoyctl schedules` lists the schedule as `inactive` with the reason; a reload that
/// removes the schedule removes it from the list. (Timers under a booted systemd: scripts/e2e-systemd.) Root: the
/// playbook files must belong to the daemon's user.
@Suite(.enabled(if: Harness.isRoot, "needs root: playbook files must belong to the daemon's user (scripts/test)"))
struct ScheduleIntegrationTests {
    static let playbook = """
        description: runs on a calendar
        access: {users: ["*"]}
        steps:
          - name: hello
            argv: [/bin/echo, scheduled]
        schedule: {calendar: "Mon..Fri 03:00", run_as_caller: nobody}

        """

    @Test func withoutSystemdASchedulesIsInactiveAndAReloadRemovesIt() throws {
        let daemon = try DaemonFixture(config: { directory in
            mkdir(directory + "/playbooks", 0o755)
            try? Self.playbook.write(toFile: directory + "/playbooks/nightly.yaml", atomically: true, encoding: .utf8)
            return DaemonFixture.standardConfig(directory: directory)
        })
        defer { daemon.stop() }
        let listed = try daemon.ctl(["schedules", "--json"])
        #expect(listed.status == 0, "\(listed.stderrText)")
        let result = try JSONDecoder().decode(SchedulesResult.self, from: Data(listed.stdoutText.utf8))
        let schedule = try #require(result.schedules.first, "\(listed.stdoutText)")
        #expect(result.schedules.count == 1)
        #expect(schedule.playbook == "nightly" && schedule.calendar == "Mon..Fri 03:00")
        #expect(schedule.runAsCaller == "nobody" && schedule.unit == "runvoy-schedule-nightly.timer")
        #expect(schedule.state == "inactive" && schedule.nextRunMs == nil && schedule.lastResult == nil)
        #expect(schedule.reason?.contains("no systemd timers here") == true, "\(schedule)")
        // Anyone may run it, so anyone with a role sees it; the table says the same.
        let table = try daemon.ctl(["schedules"], asUser: "nobody")
        #expect(table.status == 0, "\(table.stderrText)")
        #expect(table.stdoutText.contains("PLAYBOOK") && table.stdoutText.contains("inactive"), "\(table.stdoutText)")
        #expect(table.stdoutText.contains("nightly: inactive: no systemd timers here"), "\(table.stdoutText)")

        try Self.playbook.replacingOccurrences(
            of: "schedule: {calendar: \"Mon..Fri 03:00\", run_as_caller: nobody}\n", with: ""
        )
        .write(toFile: daemon.directory + "/playbooks/nightly.yaml", atomically: true, encoding: .utf8)
        daemon.process.signal(SIGHUP)
        var after = ""
        for _ in 0..<3000 {
            after = (try? daemon.ctl(["schedules"]))?.stdoutText ?? ""
            if after.contains("no schedules") { break }
            usleep(100_000)
        }
        #expect(after.contains("no schedules"), "\(after)")
    }
}
