import Foundation
import Glibc
import RunvoyKit
import Testing

/// What an execution starts ends with it (issue 13). Without a delegated cgroup (the test daemon runs in the root
/// cgroup) runvoyd is a child subreaper; with `RUNVOYD_CGROUP_ROOT` naming a cgroup v2 directory it uses a cgroup
/// per execution there.
enum Escapees {
    /// The pids of live (not zombie) processes whose command line is exactly `argv`.
    static func find(_ argv: [String]) -> [pid_t] {
        let wanted = argv.joined(separator: "\0") + "\0"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name),
                let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"),
                String(decoding: data, as: UTF8.self) == wanted,
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"),
                stat[stat.index(close, offsetBy: 2)] != "Z"
            else { return nil }
            return pid
        }
    }

    static func gone(_ argv: [String]) -> Bool { Harness.waitUntil(seconds: 20) { find(argv).isEmpty } }

    /// The cgroup v2 mount, if there is one this test can make a cgroup in.
    static let hierarchy: String? = {
        for path in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        where FileManager.default.fileExists(atPath: path + "/cgroup.subtree_control") && access(path, W_OK) == 0 {
            return path
        }
        return nil
    }()

    /// The name of every cgroup the tests make, followed by the test process's pid.
    static let testCgroupPrefix = "runvoy-test-"

    /// Kills what is in the cgroup at `path` and below, and removes it (its child cgroups first). Only
    /// directories are cgroups: the files in them (cgroup.procs, ...) are not removed.
    static func removeCgroup(_ path: String) {
        let fileManager = FileManager.default
        for name in (try? fileManager.contentsOfDirectory(atPath: path)) ?? [] {
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory), isDirectory.boolValue {
                removeCgroup(path + "/" + name)
            }
        }
        try? "1".write(toFile: path + "/cgroup.kill", atomically: false, encoding: .utf8)
        _ = Harness.waitUntil(seconds: 10) { rmdir(path) == 0 || errno == ENOENT }
    }

    /// Removes the test cgroups that test runs no longer running left (an interrupted run cannot clean up).
    static func removeStaleTestCgroups() {
        guard let hierarchy else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: hierarchy)) ?? []
        where name.hasPrefix(testCgroupPrefix) {
            let owner = name.dropFirst(testCgroupPrefix.count).prefix { $0.isNumber }
            guard let pid = pid_t(owner), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            removeCgroup(hierarchy + "/" + name)
        }
    }

    /// The id of the newest execution in the daemon's history.
    static func lastID(_ daemon: DaemonFixture) throws -> String? {
        let list = try daemon.ctl(["list", "--json", "--limit", "1"])
        return try JSONDecoder().decode(ListResult.self, from: Data(list.stdoutText.utf8)).executions.first?.executionId
    }

    /// Kills what a failed test left behind.
    static func clean(_ argv: [String]) { for pid in find(argv) { kill(pid, SIGKILL) } }
}

@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class SubreaperContainmentTests {
    let daemon: DaemonFixture

    init() throws {
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(
                directory: $0,
                extra: [
                    "  lingering:", "    run_as: {user: root}", "    environment: {PATH: /usr/bin:/bin}",
                    "    leftovers: wait", "    commands: any", "  limited_files:", "    run_as: {user: nobody}",
                    "    environment: {PATH: /usr/bin:/bin}", "    rlimits: {nofile: 99, nproc: 1000}",
                    "    limits: {tasks_max: 500}", "    allow: {users: [\"*\"]}", "    commands: any",
                ].joined(separator: "\n"))
        })
    }

    deinit { daemon.stop() }

    private func finished(_ id: String) throws -> [String: String]? {
        try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished"],
            seconds: 10
        ).first
    }

    @Test func saysItIsASubreaper() throws {
        let who = try daemon.ctl(["whoami", "--json"])
        #expect(who.stdoutText.contains("\"containment\":\"subreaper\""), "\(who.stdoutText)")
        let health = try daemon.ctl(["health"])
        #expect(health.stdoutText.contains("containment: subreaper"), "\(health.stdoutText)")
    }

    /// Review of issue 13: an executor's cgroup limits cannot be enforced by the subreaper, and start-up said
    /// nothing about it. Now the `daemon_started` record (and the log) names the executor.
    @Test func startUpSaysWhichLimitsAreNotEnforced() throws {
        let query = [
            "/usr/bin/journalctl", "--no-pager", "--all", "-o", "json", "_PID=\(daemon.process.pid)",
            "RUNVOY_EVENT=daemon_started",
        ]
        var record = ""
        _ = Harness.waitUntil(seconds: 10) {
            record = (try? Harness.run(query).stdoutText) ?? ""
            return !record.isEmpty
        }
        #expect(record.contains("executor 'limited_files': its limits"), "\(record)")
        #expect(!record.contains("executor 'lingering'"))
    }

    @Test func aSetsidEscapeeEndsWhenTheCommandExits() throws {
        let sleeper = ["sleep", "7771"]
        defer { Escapees.clean(sleeper) }
        let out = try daemon.ctl(["exec", "--", "sh", "-c", "(setsid sleep 7771 &); echo started"])
        #expect(out.stdoutText == "started\n")
        #expect(Escapees.gone(sleeper), "sleep 7771 survived its execution")
        let id = try #require(ExecTests.executionID(out.stderrText))
        #expect(try finished(id)?["RUNVOY_LEFTOVERS_KILLED"] == "1")
    }

    /// CI failure (stop 24): an escapee whose parent forked it and died while the daemon scanned /proc survived.
    /// A scan lists /proc first and reads each process after, so a process forked after the listing by one that
    /// was dead by the time it was read is in neither; one empty scan ended the kill. Now it ends only after two
    /// scans in a row find nothing, which catches one such fork (a chain that keeps forking faster than the scans
    /// can still outrun them: SECURITY.md). A race: before the fix about one in 20 of these executions left its
    /// escapee here (one in four on a quieter daemon outside the tests).
    @Test func anEscapeeForkedWhileTheDaemonScansDoesNotSurvive() throws {
        let sleeper = ["sleep", "7779"]
        defer { Escapees.clean(sleeper) }
        var survived = 0
        for _ in 0..<40 {
            let out = try daemon.ctl([
                "exec", "-q", "--", "sh", "-c", "(setsid sh -c 'sleep 7779 & exit 0' &); echo started",
            ])
            #expect(out.stdoutText == "started\n", "\(out.stderrText)")
            if !Escapees.gone(sleeper) {
                survived += 1
                Escapees.clean(sleeper)
            }
        }
        #expect(survived == 0, "\(survived) of 40 escapees survived their execution")
    }

    /// Accounting without a cgroup: the main process's rusage (and its waited-for children's), taken from the
    /// zombie before it is reaped, in the history (`status`, `list`) and the `execution_finished` record.
    @Test func statusAndListCarryTheMainProcesssUsage() throws {
        let out = try daemon.ctl(["exec", "-q", "--", "sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done"])
        #expect(out.status == 0, "\(out.stderrText)")
        let id = try #require(try Escapees.lastID(daemon))
        let status = try daemon.ctl(["status", "--json", id])
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: Data(status.stdoutText.utf8))
        let usage = try #require(info.usage, "\(status.stdoutText)")
        #expect(usage.source == "rusage")
        #expect((usage.cpuUserUsec ?? 0) + (usage.cpuSystemUsec ?? 0) > 0)
        // ru_maxrss of a vfork'd command is the daemon's memory it shared until exec: not given.
        #expect(usage.memoryPeakBytes == nil && usage.tasksPeak == nil, "rusage has no memory or tasks peak")
        #expect(usage.ioReadBytes != nil && usage.ioWriteBytes != nil)
        let list = try daemon.ctl(["list", "--json", "--limit", "1"])
        let listed = try JSONDecoder().decode(ListResult.self, from: Data(list.stdoutText.utf8))
        #expect(listed.executions.first?.usage == usage)
        let human = try daemon.ctl(["status", info.executionId])
        #expect(human.stdoutText.contains("usage:") && human.stdoutText.contains("(rusage)"), "\(human.stdoutText)")
        let record = try finished(info.executionId)
        #expect(record?["RUNVOY_USAGE_SOURCE"] == "rusage")
        #expect(record?["RUNVOY_CPU_USER_USEC"] == usage.cpuUserUsec.map(String.init))
    }

    @Test func aDoubleForkedEscapeeEndsWhenTheCommandExits() throws {
        let sleeper = ["sleep", "7772"]
        defer { Escapees.clean(sleeper) }
        let out = try daemon.ctl([
            "exec", "-q", "--", "sh", "-c", "(setsid sh -c 'sleep 7772 & exit 0' &); echo started",
        ])
        #expect(out.stdoutText == "started\n")
        #expect(Escapees.gone(sleeper), "sleep 7772 survived its execution")
    }

    @Test func killEndsTheEscapee() throws {
        let sleeper = ["sleep", "7773"]
        defer { Escapees.clean(sleeper) }
        let ctl = try daemon.startCtl(["exec", "--", "sh", "-c", "(setsid sleep 7773 &); sleep 600"])
        let id = try ctl.executionID()
        #expect(Harness.waitUntil { !Escapees.find(sleeper).isEmpty })
        #expect(try daemon.ctl(["kill", id]).status == 0)
        #expect(Escapees.gone(sleeper), "sleep 7773 survived kill")
        ctl.process.wait()
    }

    @Test func theTimeoutEndsTheEscapee() throws {
        let sleeper = ["sleep", "7774"]
        defer { Escapees.clean(sleeper) }
        let out = try daemon.ctl([
            "exec", "-q", "--timeout", "2s", "--", "sh", "-c", "(setsid sleep 7774 &); sleep 600",
        ])
        #expect(out.status != 0)
        #expect(Escapees.gone(sleeper), "sleep 7774 survived the timeout")
    }

    @Test func killOnDisconnectEndsTheEscapee() throws {
        let sleeper = ["sleep", "7775"]
        defer { Escapees.clean(sleeper) }
        let ctl = try daemon.startCtl([
            "exec", "--kill-on-disconnect", "--", "sh", "-c", "(setsid sleep 7775 &); sleep 600",
        ])
        _ = try ctl.executionID()
        #expect(Harness.waitUntil { !Escapees.find(sleeper).isEmpty })
        ctl.process.signal(SIGKILL)
        ctl.process.wait()
        #expect(Escapees.gone(sleeper), "sleep 7775 survived the disconnect")
    }

    @Test func leftoversWaitKeepsTheExecutionUntilTheRestHasEnded() throws {
        let marker = daemon.directory + "/late"
        let out = try daemon.ctl([
            "exec", "-q", "-e", "lingering", "--", "sh", "-c",
            "(setsid sh -c 'sleep 1; echo late > \(marker)' &); echo started",
        ])
        #expect(out.stdoutText == "started\n")
        // The execution ended only once its escapee had.
        #expect(FileManager.default.fileExists(atPath: marker))
    }

    @Test func resourceLimitsApplyInTheChild() throws {
        let out = try daemon.ctl([
            "exec", "-q", "-e", "limited_files", "--", "sh", "-c",
            "ulimit -n; ulimit -c; grep -o 'Max processes *[0-9]*' /proc/self/limits",
        ])
        #expect(out.stdoutText == "99\n0\nMax processes             1000\n", "\(out.stdoutText) \(out.stderrText)")
        let defaults = try daemon.ctl(["exec", "-q", "--", "sh", "-c", "ulimit -c"])
        #expect(defaults.stdoutText == "0\n")
    }

    @Test func shutdownEndsTheEscapee() throws {
        let sleeper = ["sleep", "7776"]
        defer { Escapees.clean(sleeper) }
        let ctl = try daemon.startCtl(["exec", "--", "sh", "-c", "(setsid sleep 7776 &); sleep 600"])
        _ = try ctl.executionID()
        #expect(Harness.waitUntil { !Escapees.find(sleeper).isEmpty })
        daemon.process.signal(SIGTERM)
        #expect(Escapees.gone(sleeper), "sleep 7776 survived the daemon's shutdown")
        ctl.process.wait()
    }
}
