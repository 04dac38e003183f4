import Foundation
import Glibc
import RunvoyKit
import Testing

/// `path_under` against a real runvoyd, as a real developer (useradd; removed after): `..` after a link, a link
/// the caller made, and directories the caller can change between the check and the open (issue 10, item 2).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class PathRuleTests {
    let daemon: DaemonFixture
    let dev: String
    let team: String
    var data: String { daemon.directory + "/data" }
    var outside: String { daemon.directory + "/outside" }
    var home: String { daemon.directory + "/home-dev" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        dev = "rvt\(suffix)-pdev"
        team = "rvt\(suffix)-team"
        try Self.sh("groupadd \(team)")
        try Self.sh("useradd -M -N -g nogroup -G \(team) -s /usr/sbin/nologin \(dev)")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      paths:
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        allow: {users: ["*"]}
                        commands:
                          - {deny: [head, {path_under: \(directory)/data/private}]}
                          - [head, "*"]
                          - [cat, {path_under: \(directory)/data}]
                    """)
        })
        try makeTree()
    }

    deinit {
        daemon.stop()
        try? Self.sh("userdel \(dev)")
        try? Self.sh("groupdel \(team)")
    }

    static func sh(_ command: String) throws {
        let out = try Harness.run(["/bin/sh", "-c", command])
        if out.status != 0 { throw HarnessError("\(command): \(out.stderrText)") }
    }

    /// DATA with a link `current` to a directory outside it, a private part, a directory the developer owns, one
    /// its group may write and a sticky one everyone may write; the developer's own home with a link into
    /// DATA/private that the developer made.
    func makeTree() throws {
        try Self.sh(
            """
            set -e
            umask 022
            mkdir -p \(data)/private/sub \(outside)/rel/v1 \(data)/drop \(data)/team \(data)/shared \(home)
            echo ok > \(data)/ok.txt
            echo outside-secret > \(outside)/rel/secret.txt
            echo protected-key > \(data)/private/key.txt
            ln -s \(outside)/rel/v1 \(data)/current
            chown \(dev) \(data)/drop \(home)
            echo drop > \(data)/drop/f.txt
            chgrp \(team) \(data)/team && chmod 0775 \(data)/team
            echo team > \(data)/team/f.txt
            chmod 1777 \(data)/shared
            echo roots > \(data)/shared/roots.txt
            echo mine > \(data)/shared/mine.txt && chown \(dev) \(data)/shared/mine.txt
            """)
        // The developer makes its own link, as in the issue: ~/lnk -> DATA/private/sub.
        let made = try Harness.run([
            "/usr/sbin/runuser", "-u", dev, "--", "ln", "-s", data + "/private/sub", home + "/lnk",
        ])
        guard made.status == 0 else { throw HarnessError("ln as \(dev): \(made.stderrText)") }
    }

    func exec(_ argv: [String], as user: String? = nil) throws -> Harness.Output {
        try daemon.ctl(["exec", "-q", "-e", "paths", "--"] + argv, asUser: user ?? dev)
    }

    func explain(_ argv: [String], as user: String? = nil) throws -> ExplainResult {
        let out = try daemon.ctl(["explain", "--json", "-e", "paths", "--"] + argv, asUser: user ?? dev)
        return try JSONDecoder().decode(ExplainResult.self, from: out.stdout)
    }

    func expectRefused(_ out: Harness.Output, leaking secret: String, _ comment: Comment) {
        #expect(out.status == 125, comment)
        #expect(out.stderrText.contains("command_not_allowed"), comment)
        #expect(!out.stdoutText.contains(secret), comment)
    }

    @Test func dotDotAfterALinkOutOfTheAllowedDirectoryIsRefused() throws {
        #expect(try exec(["cat", data + "/ok.txt"]).stdoutText == "ok\n")
        // DATA/current -> OUTSIDE/rel/v1, so DATA/current/.. is OUTSIDE/rel, whatever the text says.
        let escape = data + "/current/../secret.txt"
        expectRefused(try exec(["cat", escape]), leaking: "outside-secret", "cat \(escape)")
        #expect(try explain(["cat", escape]).decision == "deny")
    }

    @Test func aLinkTheCallerMadeCannotLeadAroundADenyRule() throws {
        #expect(try exec(["head", data + "/ok.txt"]).stdoutText == "ok\n")
        // ~/lnk -> DATA/private/sub, so ~/lnk/../key.txt is DATA/private/key.txt.
        let around = home + "/lnk/../key.txt"
        let out = try exec(["head", around])
        expectRefused(out, leaking: "protected-key", "head \(around)")
        #expect(out.stderrText.contains("deny head"))
        let explained = try explain(["head", around])
        #expect(
            explained.decision == "deny" && explained.rule?.hasSuffix(":\(daemon.ruleLine("{deny: [head"))") == true)
    }

    @Test func pathsThroughDirectoriesTheCallerCanChangeAreNotAllowed() throws {
        // Owned by the developer, writable by its group: it could swap f.txt for a link after the check.
        for path in [data + "/drop/f.txt", data + "/team/f.txt", data + "/shared/mine.txt", home + "/lnk/x"] {
            let out = try exec(["cat", path])
            #expect(out.status == 125, "\(path)")
            #expect(out.stderrText.contains("argument 1 passes through a directory you can change"), "\(path)")
            #expect(try explain(["cat", path]).decision == "deny", "\(path)")
        }
        // Another owner's entry in a sticky directory cannot be replaced by the developer.
        #expect(try exec(["cat", data + "/shared/roots.txt"]).stdoutText == "roots\n")
        // Root, who could change anything anyway, is not held to it.
        #expect(try exec(["cat", data + "/drop/f.txt"], as: "root").stdoutText == "drop\n")
    }
}
