import Foundation
import Glibc
import RunvoyKit
import Testing

/// A cgroup per execution, in a test cgroup v2 subtree the daemon is pointed at (`RUNVOYD_CGROUP_ROOT`): on this
/// kind of host /sys/fs/cgroup/unified is the v2 hierarchy, writable by root, with no controllers.
@Suite(
    .serialized,
    .enabled(
        if: Harness.isRoot && Harness.hasJournal && Escapees.hierarchy != nil,
        "needs root, a journal and a writable cgroup v2 hierarchy"))
final class CgroupContainmentTests {
    let root: String
    var daemon: DaemonFixture?

    init() throws {
        Escapees.removeStaleTestCgroups()
        root = Escapees.hierarchy! + "/\(Escapees.testCgroupPrefix)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(root, 0o755) == 0)
        daemon = try start()
    }

    deinit {
        daemon?.stop()
        // What the daemon made (its own leaf and the executions' cgroups; an execution's is gone once it ended).
        Escapees.removeCgroup(root)
    }

    private func start() throws -> DaemonFixture {
        try DaemonFixture(
            config: {
                DaemonFixture.standardConfig(
                    directory: $0,
                    extra: [
                        "  capped:", "    run_as: {user: nobody}", "    environment: {PATH: /usr/bin:/bin}",
                        "    limits: {memory_max: 256MiB, tasks_max: 64, cpu_quota: 50, io_weight: 50}",
                        "    allow: {users: [\"*\"]}", "    commands: any", "containment: cgroup",
                    ].joined(separator: "\n"))
            }, environment: ["RUNVOYD_CGROUP_ROOT": root])
    }

    private static func cgroup(of pid: pid_t) -> String {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? ""
    }

    @Test func theDaemonRunsInALeafAndSaysCgroup() throws {
        let daemon = try #require(daemon)
        let relative = String(root.dropFirst(Escapees.hierarchy!.count))
        #expect(Self.cgroup(of: daemon.process.pid) == relative + "/daemon")
        let who = try daemon.ctl(["whoami", "--json"])
        #expect(who.stdoutText.contains("\"containment\":\"cgroup\""), "\(who.stdoutText)")
        let health = try daemon.ctl(["health"])
        #expect(health.stdoutText.contains("containment: cgroup"), "\(health.stdoutText)")
    }

    @Test func anEscapeeIsInTheExecutionsCgroupAndEndsWithKill() throws {
        let daemon = try #require(daemon)
        let sleeper = ["sleep", "7781"]
        defer { Escapees.clean(sleeper) }
        let ctl = try daemon.startCtl(["exec", "--", "sh", "-c", "(setsid sleep 7781 &); sleep 600"])
        let id = try ctl.executionID()
        #expect(Harness.waitUntil { !Escapees.find(sleeper).isEmpty })
        let relative = String(root.dropFirst(Escapees.hierarchy!.count))
        for pid in Escapees.find(sleeper) {
            #expect(Self.cgroup(of: pid) == relative + "/executions/" + id)
        }
        #expect(try daemon.ctl(["kill", id]).status == 0)
        #expect(Escapees.gone(sleeper), "sleep 7781 survived kill")
        ctl.process.wait()
        #expect(Harness.waitUntil { !FileManager.default.fileExists(atPath: self.root + "/executions/" + id) })
    }

    @Test func leftoversAreKilledAndCountedWhenTheCommandExits() throws {
        let daemon = try #require(daemon)
        let sleeper = ["sleep", "7782"]
        defer { Escapees.clean(sleeper) }
        let out = try daemon.ctl(["exec", "--", "sh", "-c", "(setsid sleep 7782 &); (sleep 7782 &); echo started"])
        #expect(out.stdoutText == "started\n")
        #expect(Escapees.gone(sleeper))
        let id = try #require(ExecTests.executionID(out.stderrText))
        let finished = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished"],
            seconds: 10)
        #expect(finished.first?["RUNVOY_LEFTOVERS_KILLED"] == "2")
        #expect(finished.first?["RUNVOY_USAGE_SOURCE"] == "cgroup")
        #expect(finished.first?["RUNVOY_CPU_USER_USEC"] != nil)
        // The history has the cgroup's figures too (no controllers on this host: cpu.stat only).
        let status = try daemon.ctl(["status", "--json", id])
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: Data(status.stdoutText.utf8))
        #expect(info.usage?.source == "cgroup", "\(status.stdoutText)")
        #expect(info.usage?.cpuUserUsec.map(String.init) == finished.first?["RUNVOY_CPU_USER_USEC"])
    }

    @Test func aCrashedDaemonsEscapeesAreEndedAtTheNextStart() throws {
        let first = try #require(daemon)
        let sleeper = ["sleep", "7783"]
        defer { Escapees.clean(sleeper) }
        let ctl = try first.startCtl(["exec", "--", "sh", "-c", "(setsid sleep 7783 &); sleep 600"])
        let id = try ctl.executionID()
        #expect(Harness.waitUntil { !Escapees.find(sleeper).isEmpty })
        first.process.signal(SIGKILL)
        first.process.wait()
        ctl.process.wait()
        #expect(!Escapees.find(sleeper).isEmpty, "the escapee outlived the daemon, as it does after a crash")
        let second = try DaemonFixture(
            config: { _ in (try? String(contentsOfFile: first.configPath, encoding: .utf8)) ?? "" },
            environment: ["RUNVOYD_CGROUP_ROOT": root], socketPath: first.socketPath)
        daemon = second
        #expect(Escapees.gone(sleeper), "sleep 7783 survived the restart")
        let ended = try Harness.journal(
            ["_PID=\(second.process.pid)", "RUNVOY_EVENT=execution_processes_ended", "RUNVOY_EXECUTION_ID=\(id)"],
            seconds: 10)
        #expect(Int(ended.first?["RUNVOY_PROCESSES"] ?? "") ?? 0 >= 1)
    }

    /// From the containment review (failed on 3278b33: the command read 4294967295, set 4242 and kept it). In
    /// cgroup containment the child left its login uid as the daemon's: unset under systemd. The kernel lets a
    /// process whose login uid is unset set it once without any privilege, so a command running as `nobody` can
    /// make the audit subsystem and journald (`auid`, `_AUDIT_LOGINUID`) attribute everything it does to root or
    /// to any other user. The login uid must be set (to the caller's, as subreaper containment does) before exec.
    @Test func aCommandCannotClaimAnotherUsersLoginUID() throws {
        let daemon = try #require(daemon)
        let out = try daemon.ctl([
            "exec", "-q", "--", "sh", "-c",
            "cat /proc/self/loginuid; echo; if echo 4242 2>/dev/null > /proc/self/loginuid; then echo forged; fi; "
                + "cat /proc/self/loginuid; echo",
        ])
        let lines = out.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == String(getuid()), "the command's login uid is not the caller's: \(lines)")
        #expect(!lines.contains("forged"), "a command set its own login uid: \(lines)")
        #expect(lines.last != "4242", "\(lines)")
    }
}
