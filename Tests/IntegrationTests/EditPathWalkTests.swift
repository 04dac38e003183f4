import Foundation
import Glibc
import RunvoyKit
import Testing

/// Review note on issue 16, item 4 (edit2): the path checks before an edit are by path (the `editable` match, and
/// an owner check on each directory that admits root and `run_as` only), and the file was then opened by path, so
/// `run_as` itself (anyone who can run code as it, e.g. through another executor of the same user) could swap a
/// directory under `editable` for a link between the check and the open, and hand the caller a file outside
/// `editable` that `run_as` can read. runvoyd now opens the file's directory from the `editable` entry with
/// openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH. Fails on 105e4a6 (the racer gets the outside file through).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class EditPathWalkTests {
    let daemon: DaemonFixture
    let suffix: String
    let base: String
    var dev: String { "rvw\(suffix)-dev" }
    var service: String { "rvw\(suffix)-svc" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try TestUsers.add(["dev", "svc"].map { "rvw\(suffix)-\($0)" })
        base = try Harness.makeTemporaryDirectory()
        chmod(base, 0o755)
        let base = base
        for name in ["www", "www/site", "private"] { mkdir("\(base)/\(name)", 0o755) }
        try AuthorizationTests.sh("chown -R rvw\(suffix)-svc:nogroup \(base)/www \(base)/private")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      site:
                        run_as: {user: rvw\(suffix)-svc}
                        allow:
                          users: ["*"]
                        editable: [\(base)/www]
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: "roles:\n  developer: {users: [rvw\(suffix)-dev]}\n")
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove([dev, service])
        try? FileManager.default.removeItem(atPath: base)
    }

    @Test func theExecutorsOwnUserCannotRedirectAnEditOutsideEditableWithALink() throws {
        try "decoy\n".write(toFile: "\(base)/www/site/index.conf", atomically: false, encoding: .utf8)
        let outside = "\(base)/private/index.conf"
        try "OUTSIDE-EDITABLE\n".write(toFile: outside, atomically: false, encoding: .utf8)
        try AuthorizationTests.sh("chown -R \(service):nogroup \(base)/www \(base)/private")
        chmod(outside, 0o600)
        // The service user owns BASE/www (and is run_as, so the owner check passes): it swaps `site` for a link.
        // It leaves `site` in place a little each round: without that, on a loaded CI host no edit ever got
        // through (stop 24), and the proof that edits ran during the race failed.
        let racer = try ChildProcess([
            "/usr/sbin/runuser", "-u", service, "--", "/usr/bin/python3", "-c",
            """
            import os, time
            os.chdir("\(base)/www")
            while True:
                os.rename("site", "hold")
                os.symlink("\(base)/private", "site")
                os.unlink("site")
                os.rename("hold", "site")
                time.sleep(0.0002)
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
        var opened = 0
        var attempts = 0
        for _ in 0..<400 {
            attempts += 1
            let out = try Harness.run([
                "/usr/sbin/runuser", "-u", dev, "--", "/usr/bin/env", "VISUAL=", "EDITOR=\(show)", "TMPDIR=/tmp",
                Harness.runvoyctl, "edit", "--socket", daemon.socketPath, "-e", "site", "\(base)/www/site/index.conf",
            ])
            if out.stdoutText.contains("decoy") { opened += 1 }
            if out.stdoutText.contains("OUTSIDE-EDITABLE") { leaked += 1 }
            if leaked > 0 && opened > 0 { break }
        }
        #expect(opened > 0, "the edit never got through; the proof shows nothing")
        #expect(leaked == 0, "the developer read a file outside `editable` (attempt \(attempts))")
    }
}
