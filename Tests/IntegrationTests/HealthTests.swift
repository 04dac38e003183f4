import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl health` against a real runvoyd: its exit status and checks, who may ask (real users: one with a
/// role, one in the socket's reach with none), and the master key check failing when the key file goes. (The
/// stalled journal is forced in `JournalStallTests`, the full disk in `FullDiskTests`.)
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class HealthTests {
    let daemon: DaemonFixture
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var developer: String { "rvh\(suffix)-dev" }
    var roleless: String { "rvh\(suffix)-none" }

    init() throws {
        let suffix = suffix
        try TestUsers.add(["rvh\(suffix)-dev", "rvh\(suffix)-none"])
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "developer: {users: [\"*\"]}", with: "developer: {users: [rvh\(suffix)-dev]}")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([developer, roleless])
    }

    /// `runvoyctl version` prints the client's version and protocols, then the daemon's as `hello` tells them (to a
    /// role-less user too: `hello` needs no role); with no daemon it prints its own and fails, saying why.
    @Test func versionNamesTheClientAndTheDaemon() throws {
        let out = try daemon.ctl(["version"], asUser: roleless)
        #expect(out.status == 0, "\(out.stderrText)")
        let lines = out.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(out.stdoutText)")
        #expect(lines.first == "runvoyctl \(RunvoyProtocol.softwareVersion) (protocol 1)", "\(out.stdoutText)")
        #expect(
            lines.last?.hasPrefix("runvoyd \(RunvoyProtocol.softwareVersion) (protocol 1, max frame ") == true,
            "\(out.stdoutText)")
        let gone = try Harness.run([Harness.runvoyctl, "version", "--socket", daemon.directory + "/no-such.sock"])
        #expect(gone.status != 0)
        #expect(gone.stdoutText.hasPrefix("runvoyctl \(RunvoyProtocol.softwareVersion)"), "\(gone.stdoutText)")
        #expect(gone.stderrText.contains("no-such.sock"), "\(gone.stderrText)")
    }

    static func decode(_ out: Harness.Output) throws -> HealthResult {
        try JSONDecoder().decode(HealthResult.self, from: out.stdout)
    }

    static func check(_ result: HealthResult, _ name: String) -> HealthCheck? {
        result.checks.first { $0.name == name }
    }

    /// Asking often costs the journal and the database nothing more: the journal probe and the database check run
    /// once per 5 s whoever asks (before, every call wrote a probe record: a loop of calls could push older audit
    /// records out of a size-limited journal).
    @Test func healthCalledInALoopWritesOneProbeRecord() throws {
        for _ in 0..<6 { #expect(try daemon.ctl(["health"], asUser: developer).status == 0) }
        let probes = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "MESSAGE=runvoyd health check: journal write probe"],
            until: { $0.count >= 6 }, seconds: 3)
        #expect(probes.count == 1, "\(probes.count) probe records for 6 calls")
    }

    @Test func aHealthyDaemonSaysSoWithExitStatusZero() throws {
        let out = try daemon.ctl(["health", "--json"], asUser: developer)
        #expect(out.status == 0, "\(out.stderrText)")
        let health = try Self.decode(out)
        #expect(health.status == .healthy)
        #expect(health.checks.map(\.name) == ["journal", "database", "disk", "master_key", "watchdog"])
        #expect(health.checks.allSatisfy { $0.status == .healthy })
        #expect(Self.check(health, "journal")?.value != nil)
        // The fixture's daemon runs in the root cgroup: no delegated subtree, so a child subreaper (issue 13).
        #expect(health.containment == "subreaper")
        #expect(health.configDigest.count == 16 && health.configLoadedAtMs > 0 && health.uptimeSeconds > 0)
        let human = try daemon.ctl(["health"])
        #expect(human.status == 0)
        #expect(human.stdoutText.contains("journal:") && human.stdoutText.contains("containment: subreaper"))
    }

    @Test func aCallerWithNoRoleIsRefused() throws {
        let out = try daemon.ctl(["health"], asUser: roleless)
        #expect(out.status == 3)
        #expect(out.stderrText.contains("permission_denied"), "\(out.stderrText)")
    }

    @Test func aMissingOrReplacedKeyFileFails() throws {
        let keyPath = daemon.directory + "/state/secrets.key"
        let key = try Data(contentsOf: URL(fileURLWithPath: keyPath))
        #expect(unlink(keyPath) == 0)
        let missing = try daemon.ctl(["health", "--json"])
        #expect(missing.status == 2)
        let check = Self.check(try Self.decode(missing), "master_key")
        #expect(check?.status == .failing && check?.message.contains("is gone") == true, "\(String(describing: check))")

        try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: keyPath))
        let replaced = try daemon.ctl(["health", "--json"])
        #expect(replaced.status == 2)
        #expect(Self.check(try Self.decode(replaced), "master_key")?.status == .failing)

        try key.write(to: URL(fileURLWithPath: keyPath))
        chmod(keyPath, 0o600)
        #expect(try daemon.ctl(["health"]).status == 0)
    }

    /// Paths and error text are for administrators: a developer is told the status words (before, every role was
    /// told the master key's path, and a failing check's error text).
    @Test func onlyAdministratorsSeePathsAndErrorText() throws {
        let keyPath = daemon.directory + "/state/secrets.key"
        let asDeveloper = try daemon.ctl(["health"], asUser: developer)
        #expect(asDeveloper.status == 0, "\(asDeveloper.stderrText)")
        #expect(asDeveloper.stdoutText.contains("master_key:"))
        #expect(!asDeveloper.stdoutText.contains(daemon.directory), "\(asDeveloper.stdoutText)")
        #expect(try daemon.ctl(["health"]).stdoutText.contains(keyPath))

        let key = try Data(contentsOf: URL(fileURLWithPath: keyPath))
        #expect(unlink(keyPath) == 0)
        defer {
            try? key.write(to: URL(fileURLWithPath: keyPath))
            chmod(keyPath, 0o600)
        }
        let failing = try daemon.ctl(["health"], asUser: developer)
        #expect(failing.status == 2)
        #expect(failing.stdoutText.contains("is gone") && !failing.stdoutText.contains(daemon.directory))
        let json = try daemon.ctl(["health", "--json"], asUser: developer)
        #expect(!json.stdoutText.contains("secrets.key") && !json.stdoutText.contains("\"detail\""))
        let asAdmin = try daemon.ctl(["health"])
        #expect(asAdmin.status == 2 && asAdmin.stdoutText.contains(keyPath), "\(asAdmin.stdoutText)")
    }

    @Test func aDaemonThatDoesNotAnswerIsFailing() throws {
        let out = try Harness.run([Harness.runvoyctl, "health", "--socket", daemon.directory + "/nothing.sock"])
        #expect(out.status == 2)
    }
}
