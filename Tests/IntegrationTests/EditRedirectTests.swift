import Foundation
import Glibc
import RunvoyKit
import Testing

/// Security review of `runvoyctl edit` (issue 16, item 4): a proof of concept that failed on 3278b33 (the
/// developer read the root-only file within a few seconds); runvoyd now refuses to edit through a directory that an
/// account other than root or the executor's user could change.
///
/// The executor `webroot` runs as root and may edit under `BASE/www`; `BASE/www` belongs to the service user
/// (as /var/www belongs to www-data), and the developer cannot change it, so the path check admits
/// `BASE/www/site/index.conf`. The check guards only against the *caller* redirecting a directory
/// (`Caller.pathWriter`), and the file is then opened again by path (`runvoy_edit_read`, later
/// `runvoy_edit_prepare`/`runvoy_edit_commit`), as root: the service user (anyone who can run code as it, e.g.
/// through another executor, or a compromised web application) swaps `site` for a link to a root-only directory
/// between the check and the open, and the developer receives (and on `edit_save`, writes) a root-only file
/// outside `editable`. A missing `site` also passes the check (the rest of the path is then judged as text).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class EditRedirectTests {
    let daemon: DaemonFixture
    let suffix: String
    let base: String
    var dev: String { "rvr\(suffix)-dev" }
    var service: String { "rvr\(suffix)-svc" }
    var viewer: String { "rvr\(suffix)-view" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try TestUsers.add(["dev", "svc", "view"].map { "rvr\(suffix)-\($0)" })
        base = try Harness.makeTemporaryDirectory()
        chmod(base, 0o755)
        let base = base
        for name in ["www", "www/site", "secret"] { mkdir("\(base)/\(name)", 0o755) }
        try AuthorizationTests.sh("chown -R rvr\(suffix)-svc:nogroup \(base)/www")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      webroot:
                        run_as: {user: root}
                        allow:
                          users: ["*"]
                        editable: [\(base)/www]
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: "roles:\n  developer: {users: [rvr\(suffix)-dev]}\n  viewer: {users: [rvr\(suffix)-view]}\n")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([dev, service, viewer])
        try? FileManager.default.removeItem(atPath: base)
    }

    @Test func aDirectoryTheExecutorsSideCanChangeCannotRedirectAnEditOutsideEditable() throws {
        try "decoy\n".write(toFile: "\(base)/www/site/index.conf", atomically: false, encoding: .utf8)
        try AuthorizationTests.sh("chown \(service):nogroup \(base)/www/site/index.conf")
        let secret = "\(base)/secret/index.conf"
        try "TOPSECRET root only\n".write(toFile: secret, atomically: false, encoding: .utf8)
        chmod(secret, 0o600)
        // Run as the service user: it owns BASE/www, so it may rename `site` and put a link in its place.
        let racer = try ChildProcess([
            "/usr/sbin/runuser", "-u", service, "--", "/usr/bin/python3", "-c",
            """
            import os
            os.chdir("\(base)/www")
            while True:
                os.rename("site", "hold")
                os.symlink("\(base)/secret", "site")
                os.unlink("site")
                os.rename("hold", "site")
            """,
        ])
        defer {
            racer.signal(SIGKILL)
            racer.wait()
        }
        let show = "\(base)/show.sh"
        try "#!/bin/sh\ncat \"$1\"\nexit 1\n".write(toFile: show, atomically: false, encoding: .utf8)
        chmod(show, 0o755)
        var leaked = 0
        var refused = 0
        for _ in 0..<30 {
            let out = try Harness.run([
                "/usr/sbin/runuser", "-u", dev, "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(show)", "TMPDIR=/tmp",
                Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "webroot",
                "\(base)/www/site/index.conf",
            ])
            if out.stdoutText.contains("TOPSECRET") { leaked += 1 }
            // Refused as passing through a directory others can change, or (while `site` is a link or missing) as
            // outside `editable`; the editor never runs. (Before, the developer could not reach the daemon at all,
            // and that refusal counted too: the check the test is about never ran.)
            let why = out.stderrText
            let asRedirectable = why.contains("\(base)/www could be changed by an account other than root")
            let asOutside = why.contains("executor 'webroot' does not let you edit")
            if out.status != 0 && !out.stdoutText.contains("decoy") && (asRedirectable || asOutside) { refused += 1 }
            #expect(asRedirectable || asOutside, "refused for another reason: \(why)")
        }
        // (The race crashed runvoyd: a lazy `compactMap(...).first` ran the path check twice, and a path admitted
        // the first time and refused the second was force-unwrapped.)
        #expect(daemon.process.isRunning, "runvoyd ended: \(daemon.log.prefix(4000))")
        #expect(leaked == 0, "the developer read a root-only file outside `editable`")
        // Every attempt is refused, whichever way the race stood: BASE/www belongs to the service user.
        #expect(refused == 30, "\(refused) of 30 refused")
    }
}
