import Foundation
import Glibc
import RunvoyKit
import Testing

/// How runvoyd finds its delegated cgroup v2 subtree without `RUNVOYD_CGROUP_ROOT`: from its own cgroup, started
/// in a test cgroup. Delegated (the `trusted.delegate` attribute, or a `.service` cgroup under systemd's
/// `INVOCATION_ID`): a cgroup per execution; not delegated: the child subreaper, unless `containment: cgroup`
/// insists; started again inside its own leaf: the same subtree.
@Suite(
    .serialized,
    .enabled(
        if: Harness.isRoot && Harness.hasJournal && Escapees.hierarchy != nil,
        "needs root, a journal and a writable cgroup v2 hierarchy"))
final class DelegatedCgroupTests {
    var cgroups: [String] = []

    init() {
        Escapees.removeStaleTestCgroups()
    }

    deinit {
        for path in cgroups.reversed() { Escapees.removeCgroup(path) }
    }

    /// A new test cgroup (its name ending in `suffix`), removed after the test.
    func makeCgroup(suffix: String = "") -> String {
        let path =
            Escapees.hierarchy! + "/\(Escapees.testCgroupPrefix)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            + suffix
        #expect(mkdir(path, 0o755) == 0, "mkdir \(path): \(SystemError.text())")
        cgroups.append(path)
        return path
    }

    /// A daemon started inside the cgroup at `path` (the shell moves itself there, then execs runvoyd).
    func daemon(in path: String, extra: String = "", environment: [String: String] = [:]) throws -> DaemonFixture {
        try DaemonFixture(
            config: { DaemonFixture.standardConfig(directory: $0, extra: extra) }, environment: environment,
            wrapper: ["/bin/sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", path])
    }

    static func cgroup(of pid: pid_t) -> String {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? ""
    }

    static func relative(_ path: String) -> String { String(path.dropFirst(Escapees.hierarchy!.count)) }

    static func containment(_ daemon: DaemonFixture) throws -> String {
        let health = try daemon.ctl(["health"])
        // "  containment: cgroup (a note)"
        let line = health.stdoutText.split(separator: "\n").first { $0.hasPrefix("  containment: ") }
        return line.map { String($0.dropFirst("  containment: ".count).prefix { $0 != " " }) } ?? ""
    }

    /// Marks the cgroup at `path` delegated, as systemd does for `Delegate=yes` (setxattr(2): the Glibc module
    /// does not export <sys/xattr.h>).
    static func delegate(_ path: String) {
        typealias SetXattr =
            @convention(c) (
                UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer, Int, Int32
            ) -> Int32
        let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setxattr")
        let setxattr = unsafeBitCast(symbol, to: SetXattr.self)
        #expect(setxattr(path, "trusted.delegate", "1", 1, 0) == 0, "setxattr \(path): \(SystemError.text())")
    }

    @Test func aCgroupNotDelegatedGivesTheSubreaperAndNoLeaf() throws {
        let path = makeCgroup()
        let daemon = try daemon(in: path)
        defer { daemon.stop() }
        #expect(try Self.containment(daemon) == "subreaper")
        #expect(Self.cgroup(of: daemon.process.pid) == Self.relative(path), "it stayed where it was started")
        #expect(access(path + "/executions", F_OK) != 0)
        let out = try daemon.ctl(["exec", "-q", "--", "echo", "ran"])
        #expect(out.stdoutText == "ran\n", "\(out.stderrText)")
    }

    @Test func containmentCgroupUsesItsOwnCgroupEvenUndelegated() throws {
        let path = makeCgroup()
        let daemon = try daemon(in: path, extra: "containment: cgroup")
        defer { daemon.stop() }
        #expect(try Self.containment(daemon) == "cgroup")
        #expect(Self.cgroup(of: daemon.process.pid) == Self.relative(path) + "/daemon")
    }

    @Test func aDelegatedCgroupGivesACgroupPerExecutionAndARestartInItsLeafKeepsIt() throws {
        let path = makeCgroup()
        Self.delegate(path)
        let first = try daemon(in: path)
        #expect(try Self.containment(first) == "cgroup")
        #expect(Self.cgroup(of: first.process.pid) == Self.relative(path) + "/daemon")
        let out = try first.ctl(["exec", "-q", "--", "sh", "-c", "cat /proc/self/cgroup"])
        let id = try #require(try Escapees.lastID(first))
        #expect(out.stdoutText.contains("0::" + Self.relative(path) + "/executions/" + id), "\(out.stdoutText)")
        #expect(first.stop() == 0)
        // Started again inside the leaf it made (as `runvoyd` re-executed in place is): the subtree is its parent.
        let second = try daemon(in: path + "/daemon")
        defer { second.stop() }
        #expect(try Self.containment(second) == "cgroup")
        #expect(Self.cgroup(of: second.process.pid) == Self.relative(path) + "/daemon")
        #expect(access(path + "/daemon/daemon", F_OK) != 0, "no leaf inside the leaf")
    }

    @Test func aServiceCgroupUnderSystemdCountsAsDelegated() throws {
        let path = makeCgroup(suffix: ".service")
        let daemon = try daemon(in: path, environment: ["INVOCATION_ID": "0123456789abcdef0123456789abcdef"])
        defer { daemon.stop() }
        #expect(try Self.containment(daemon) == "cgroup")
        #expect(Self.cgroup(of: daemon.process.pid) == Self.relative(path) + "/daemon")
    }
}
