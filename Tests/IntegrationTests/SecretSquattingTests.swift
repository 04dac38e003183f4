import Foundation
import Glibc
import RunvoyKit
import Testing

/// Issue 10, item 4: a developer who set a secret's name before an administrator's executor referenced it could
/// rotate and remove it afterwards, and so chose (or broke) what that executor receives. Runs as a real
/// developer-role user made for the test (useradd; removed after) against a real runvoyd.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class SecretSquattingTests {
    let daemon: DaemonFixture
    let dev: String

    static let executor = """
          prod:
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/bin:/bin
              TOKEN: {secret: prod-token}
            allow: {roles: [admin]}
            commands: any
        """

    static func config(_ directory: String, dev: String, withExecutor: Bool) -> String {
        DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n", with: "roles:\n  developer: {users: [\(dev)]}\n")
            + (withExecutor ? executor : "")
    }

    init() throws {
        let dev = "rvs\(String(UInt32.random(in: 0..<0xFFFF), radix: 16))-dev"
        self.dev = dev
        try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(dev)")
        daemon = try DaemonFixture(config: { Self.config($0, dev: dev, withExecutor: false) })
    }

    deinit {
        daemon.stop()
        try? AuthorizationTests.sh("userdel \(dev)")
    }

    func set(_ name: String, _ value: String, as user: String?) throws -> Harness.Output {
        let path = daemon.directory + "/value-\(UInt32.random(in: 0...UInt32.max))"
        try (value + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        defer { unlink(path) }
        return try daemon.ctl(["secrets", "set", name], asUser: user, stdinPath: path)
    }

    @Test func aNameClaimedBeforeAnExecutorUsesItIsNeitherInjectedNorTheClaimantsToChange() throws {
        // The developer claims the name while no executor uses it: allowed, it is theirs.
        let claimed = try set("prod-token", "chosen-by-the-developer", as: dev)
        #expect(claimed.status == 0, "\(claimed.stderrText)")

        // An administrator's executor starts referencing it.
        let text = Self.config(daemon.directory, dev: dev, withExecutor: true)
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        #expect(try daemon.ctl(["reload"]).status == 0)

        // The claimant can no longer rotate or remove it.
        let rotate = try set("prod-token", "rotated-by-the-developer", as: dev)
        #expect(rotate.status == 125 && rotate.stderrText.contains("permission_denied"), "\(rotate.stderrText)")
        let remove = try daemon.ctl(["secrets", "rm", "prod-token"], asUser: dev)
        #expect(remove.status == 125 && remove.stderrText.contains("permission_denied"), "\(remove.stderrText)")

        // The developer's value is not injected: the executor refuses until an admin sets the value.
        let refused = try daemon.ctl(["exec", "-e", "prod", "--", "sh", "-c", "echo \"[$TOKEN]\""])
        #expect(refused.status == 125 && refused.stderrText.contains("secret_missing"), "\(refused.stderrText)")
        #expect(!refused.stdoutText.contains("chosen-by-the-developer"))
        let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", daemon.configPath])
        #expect(check.stdoutText.contains("secret 'prod-token' was set by \(dev), who is not an admin"))

        // An administrator sets it: now it is injected, and the developer still cannot touch it.
        #expect(try set("prod-token", "chosen-by-the-admin", as: nil).status == 0)
        let run = try daemon.ctl(["exec", "-e", "prod", "--", "sh", "-c", "printf %s \"$TOKEN\" | wc -c"])
        #expect(run.status == 0 && run.stdoutText == "\("chosen-by-the-admin".utf8.count)\n", "\(run.stderrText)")
        #expect(try set("prod-token", "rotated-by-the-developer", as: dev).status == 125)
        #expect(try daemon.ctl(["secrets", "rm", "prod-token"], asUser: dev).status == 125)
        let after = try daemon.ctl(["exec", "-e", "prod", "--", "sh", "-c", "printf %s \"$TOKEN\" | wc -c"])
        #expect(after.stdoutText == "\("chosen-by-the-admin".utf8.count)\n")
    }
}
