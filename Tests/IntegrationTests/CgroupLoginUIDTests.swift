import Foundation
import Glibc
import RunvoyKit
import Testing

/// From the containment review (issue 13): failed on 3278b33 (the command read 4294967295, set 4242 and kept it).
@Suite(
    .serialized,
    .enabled(
        if: Harness.isRoot && Harness.hasJournal && Escapees.hierarchy != nil,
        "needs root, a journal and a writable cgroup v2 hierarchy"))
final class CgroupLoginUIDTests {
    let root: String
    var daemon: DaemonFixture?

    init() throws {
        Escapees.removeStaleTestCgroups()
        root = Escapees.hierarchy! + "/\(Escapees.testCgroupPrefix)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(root, 0o755) == 0)
        daemon = try DaemonFixture(
            config: { DaemonFixture.standardConfig(directory: $0, extra: "containment: cgroup") },
            environment: ["RUNVOYD_CGROUP_ROOT": root])
    }

    deinit {
        daemon?.stop()
        Escapees.removeCgroup(root)
    }

    /// In cgroup containment the child leaves its login uid as the daemon's: unset under systemd. The kernel lets a
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
