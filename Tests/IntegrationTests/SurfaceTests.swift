import Foundation
import Glibc
import RunvoyKit
import Testing

/// What a plain local user can see or learn beyond their rights (issue 10, items 6-9), as real Unix users
/// (useradd; removed after) against a real runvoyd.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class SurfaceTests {
    let daemon: DaemonFixture
    let suffix: String
    var dev: String { "rvs\(suffix)-dev" }
    var other: String { "rvs\(suffix)-oth" }
    var none: String { "rvs\(suffix)-none" }
    var users: [String] { [dev, other, none] }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        for user in ["dev", "oth", "none"].map({ "rvs\(suffix)-\($0)" }) {
            try Self.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: "roles:\n  developer: {users: [rvs\(suffix)-dev, rvs\(suffix)-oth]}\n")
                    + """
                      vaulted:
                        run_as: {user: nobody}
                        environment: {TOKEN: {secret: reserved-token}}
                        allow: {users: [rvs\(suffix)-oth]}
                        commands: any
                    """
        })
    }

    deinit {
        daemon.stop()
        for user in users { try? Self.sh("userdel \(user)") }
    }

    static func sh(_ command: String) throws {
        let out = try Harness.run(["/bin/sh", "-c", command])
        if out.status != 0 { throw HarnessError("\(command): \(out.stderrText)") }
    }

    func ctl(_ user: String?, _ arguments: [String], stdinPath: String? = nil) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user, stdinPath: stdinPath)
    }

    // MARK: - 6. Terminal escape injection

    @Test func listStatusAndErrorsShowControlCharactersEscapedAndJSONStaysExact() throws {
        let sneaky = "x\r\u{1b}[2Kid\u{9b}1m\u{202e}"
        let out = try ctl(dev, ["exec", "--", "echo", sneaky])
        #expect(out.status == 0)
        let id = try #require(ExecTests.executionID(out.stderrText))
        // The command's own output is passed through byte-exact.
        #expect(out.stdoutText == sneaky + "\n")

        func isClean(_ data: Data) -> Bool {
            let text = String(decoding: data, as: UTF8.self)
            return !data.contains(0x1B) && !data.contains(0x0D)
                && !text.unicodeScalars.contains { $0.value == 0x9B || $0.value == 0x202E }
        }
        for user in [nil, dev] {
            let list = try ctl(user, ["list", "--limit", "1000"])
            #expect(list.status == 0 && isClean(list.stdout), "\(list.stdoutText)")
            #expect(list.stdoutText.contains(#"echo $'x\r\x1b[2Kid\u009b1m\u202e'"#), "\(list.stdoutText)")
            let status = try ctl(user, ["status", id])
            #expect(status.status == 0 && isClean(status.stdout), "\(status.stdoutText)")
            #expect(status.stdoutText.contains(#"command:     echo $'x\r\x1b[2Kid\u009b1m\u202e'"#))
        }
        let json = try JSONDecoder().decode(ExecutionInfo.self, from: try ctl(nil, ["status", "--json", id]).stdout)
        #expect(json.argv == ["echo", sneaky])
        let listed = try JSONDecoder().decode(ListResult.self, from: try ctl(nil, ["list", "--json"]).stdout)
        #expect(listed.executions.first { $0.executionId == id }?.argv == ["echo", sneaky])
        // Error messages quote the caller's argv: escaped too.
        let missing = try ctl(dev, ["exec", "--", "\u{1b}]0;owned\u{7}nope\r"])
        #expect(missing.status == 127 && isClean(missing.stderr), "\(missing.stderrText)")
        #expect(missing.stderrText.contains(#"\x1b]0;owned\x07nope\r"#))
    }

    // MARK: - 8a. Executions of others answer like unknown ones

    /// stderr with the execution id replaced, to compare the answers for two ids.
    func answer(_ user: String, _ arguments: [String], id: String) throws -> (Int32, String) {
        let out = try ctl(user, arguments + [id])
        return (out.status, out.stderrText.replacingOccurrences(of: id, with: "ID"))
    }

    @Test func executionsACallerMayNotSeeAnswerLikeOnesThatDoNotExist() throws {
        let started = try ctl(other, ["exec", "--detach", "--", "sleep", "30"])
        let real = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ctl(nil, ["kill", "--signal", "KILL", real]) }
        let madeUp = "01aaaaaaaaaaaaaaaaaaaaaaaa"
        for method in [["status"], ["logs"], ["kill"]] {
            for user in [dev, none] {
                let seen = try answer(user, method, id: real)
                let unknown = try answer(user, method, id: madeUp)
                #expect(seen == unknown, "\(user) \(method): \(seen) / \(unknown)")
                #expect(seen.0 == 125)
                #expect(seen.1.contains(user == none ? "permission_denied" : "no_such_execution"), "\(seen.1)")
            }
        }
        // The refusal is audited with what really happened.
        let audited = try Harness.journal([
            "RUNVOY_EVENT=request_denied", "RUNVOY_CALLER_USER=\(dev)", "RUNVOY_EXECUTION_ID=\(real)",
        ])
        #expect(audited.contains { $0["RUNVOY_REASON"]?.contains("started by another user") == true })
        let kill = try Harness.journal([
            "RUNVOY_EVENT=execution_kill", "RUNVOY_CALLER_USER=\(dev)", "RUNVOY_EXECUTION_ID=\(real)",
        ])
        #expect(kill.first?["RUNVOY_REASON"]?.contains("started by another user") == true)
        // Its owner still sees and kills it.
        #expect(try ctl(other, ["status", real]).status == 0)
        #expect(try ctl(other, ["kill", real]).status == 0)
    }

    // MARK: - 8b. A path the run-as user cannot reach is not found, like a missing one

    @Test func aCommandBehindAFolderTheRunAsUserCannotSearchIsNotFoundLikeAMissingOne() throws {
        let hidden = daemon.directory + "/root-only"
        mkdir(hidden, 0o700)
        try "#!/bin/sh\necho ran\n".write(toFile: hidden + "/tool", atomically: true, encoding: .utf8)
        chmod(hidden + "/tool", 0o755)
        let present = try ctl(dev, ["exec", "--", hidden + "/tool"])
        let absent = try ctl(dev, ["exec", "--", hidden + "/absent"])
        #expect(present.status == absent.status, "\(present.stderrText) / \(absent.stderrText)")
        #expect(present.status == 127)
        #expect(
            present.stderrText.replacingOccurrences(of: "tool", with: "X")
                == absent.stderrText.replacingOccurrences(of: "absent", with: "X"))
        // Neither reached the history, so `list` cannot tell them apart either.
        let listed = try JSONDecoder().decode(ListResult.self, from: try ctl(dev, ["list", "--json"]).stdout)
        #expect(!listed.executions.contains { $0.argv.first?.hasPrefix(hidden) == true })
        // Root's executor still reaches it; once the folder is searchable, so does nobody.
        #expect(try ctl(nil, ["exec", "-q", "-e", "root", "--", hidden + "/tool"]).stdoutText == "ran\n")
        chmod(hidden, 0o711)
        #expect(try ctl(dev, ["exec", "-q", "--", hidden + "/tool"]).stdoutText == "ran\n")
    }

    // MARK: - 8c. A refused secrets change names no owner and no executor

    @Test func aRefusedSecretChangeSaysTheSameWhetherTheSecretExistsAndNamesNoOwnerOrExecutor() throws {
        let valuePath = daemon.directory + "/secret-value"
        try "a-long-enough-value\n".write(toFile: valuePath, atomically: true, encoding: .utf8)
        chmod(valuePath, 0o644)
        #expect(try ctl(other, ["secrets", "set", "others-token"], stdinPath: valuePath).status == 0)

        func refused(_ arguments: [String], _ name: String) throws -> (Int32, String) {
            let out = try ctl(dev, arguments + [name], stdinPath: valuePath)
            return (out.status, out.stderrText.replacingOccurrences(of: name, with: "NAME"))
        }
        // Someone else's secret, and a name an executor injects that nobody has set: one answer.
        let owned = try refused(["secrets", "set"], "others-token")
        let reserved = try refused(["secrets", "set"], "reserved-token")
        #expect(owned == reserved, "\(owned) / \(reserved)")
        #expect(owned.0 == 125 && owned.1.contains("permission_denied"))
        for text in [owned.1, reserved.1] {
            #expect(!text.contains(other) && !text.contains("vaulted"), "\(text)")
        }
        // Removing someone else's secret says what removing a missing one says.
        let removeOwned = try refused(["secrets", "rm"], "others-token")
        let removeMissing = try refused(["secrets", "rm"], "never-was-a-token")
        #expect(removeOwned == removeMissing, "\(removeOwned) / \(removeMissing)")
        #expect(removeOwned.1.contains("secret_missing") && !removeOwned.1.contains(other))
        // The audit trail keeps the whole reason.
        let audited = try Harness.journal([
            "RUNVOY_EVENT=secret_changed", "RUNVOY_CALLER_USER=\(dev)", "RUNVOY_DECISION=deny",
        ]) { $0.count >= 4 }
        #expect(audited.contains { $0["RUNVOY_REASON"]?.contains("belongs to \(other)") == true })
        #expect(audited.contains { $0["RUNVOY_REASON"]?.contains("injected by executor 'vaulted'") == true })
        #expect(try ctl(other, ["secrets", "rm", "others-token"]).status == 0)
    }
}

/// The state directory and the secrets runtime directory are the daemon's alone (issue 10, item 7).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct PrivateStateTests {
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
    }

    @Test func aStateDirectoryOthersCouldReadIsMadePrivateAtStart() throws {
        let daemon = try DaemonFixture(config: { directory in
            // What an older runvoyd (or an administrator) left: a 0755 directory with 0644 files.
            let state = directory + "/state"
            mkdir(state, 0o755)
            mkdir(state + "/output", 0o755)
            for name in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
                FileManager.default.createFile(atPath: state + "/" + name, contents: Data())
                chmod(state + "/" + name, 0o644)
            }
            chmod(state, 0o755)
            chmod(state + "/output", 0o755)
            return DaemonFixture.standardConfig(directory: directory)
        })
        defer { daemon.stop() }
        let out = try daemon.ctl(["exec", "--", "echo", "kept private"])
        #expect(out.status == 0)
        let id = try #require(ExecTests.executionID(out.stderrText))
        let state = daemon.directory + "/state"
        #expect(Self.mode(state) == 0o700)
        for name in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
            #expect(
                Self.mode(state + "/" + name) == 0o600,
                "\(name): \(String(Self.mode(state + "/" + name) ?? 0, radix: 8))")
        }
        #expect(Self.mode(state + "/output") == 0o700)
        #expect(Self.mode(state + "/output/" + id) == 0o700)
        let segments = try FileManager.default.contentsOfDirectory(atPath: state + "/output/" + id)
        #expect(!segments.isEmpty && segments.allSatisfy { Self.mode(state + "/output/\(id)/" + $0) == 0o600 })
        let asNobody = try Harness.run(["/usr/sbin/runuser", "-u", "nobody", "--", "cat", state + "/history.sqlite"])
        #expect(asNobody.status != 0)
        #expect(daemon.log.contains("was mode 755; now 700"))
    }

    /// A configuration whose state and runtime directories are `state` and `runtime`.
    static func config(_ directory: String, state: String, runtime: String) -> String {
        DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(of: "state_directory: \(directory)/state", with: "state_directory: \(state)")
            .replacingOccurrences(
                of: "runtime_directory: \(directory)/secrets-run", with: "runtime_directory: \(runtime)")
    }

    func start(_ config: String, in directory: String) throws -> (start: Harness.Output, check: Harness.Output) {
        let path = directory + "/runvoyd-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", path])
        let start = try Harness.run(
            [Harness.runvoyd, "--config", path], environment: ["RUNVOYD_LOG_STDERR": "1"], timeout: 30)
        return (start, check)
    }

    @Test func aStateDirectoryThatIsALinkOrAnotherUsersOrARuntimeDirectoryOthersCanReplaceStopsTheDaemon() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let real = dir + "/real-state"
        mkdir(real, 0o700)
        symlink(real, dir + "/linked-state")
        let linked = try start(Self.config(dir, state: dir + "/linked-state", runtime: dir + "/run1"), in: dir)
        #expect(linked.start.status == 1)
        #expect(
            linked.start.stderrText.contains("\(dir)/linked-state is a symbolic link"), "\(linked.start.stderrText)")
        #expect(linked.check.status == 1 && linked.check.stdoutText.contains("symbolic link"))

        let foreign = dir + "/foreign-state"
        mkdir(foreign, 0o700)
        chown(foreign, 65534, 65534)
        let owned = try start(Self.config(dir, state: foreign, runtime: dir + "/run2"), in: dir)
        #expect(owned.start.status == 1)
        #expect(owned.start.stderrText.contains("\(foreign) belongs to uid 65534"))
        #expect(owned.start.stderrText.contains("chown -R 0 \(foreign)"))
        #expect(owned.check.status == 1 && owned.check.stdoutText.contains("belongs to uid 65534"))

        let open = dir + "/open"
        mkdir(open, 0o777)
        chmod(open, 0o777)
        let replaceable = try start(Self.config(dir, state: dir + "/state3", runtime: open + "/secrets"), in: dir)
        #expect(replaceable.start.status == 1)
        #expect(replaceable.start.stderrText.contains("\(open) is writable by users other than its owner"))
        #expect(replaceable.start.stderrText.contains("chmod go-w \(open)"))
        #expect(access(open + "/secrets", F_OK) != 0)
        #expect(replaceable.check.status == 1 && replaceable.check.stdoutText.contains("chmod go-w"))

        // --check-config says what start would tighten, and changes nothing.
        let loose = dir + "/loose"
        mkdir(loose, 0o755)
        chmod(loose, 0o755)
        let path = dir + "/loose.yaml"
        try Self.config(dir, state: loose, runtime: dir + "/run4").write(
            toFile: path, atomically: true, encoding: .utf8)
        let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", path])
        #expect(check.status == 0)
        #expect(check.stdoutText.contains("warning: \(loose) was mode 755; runvoyd makes it 700"))
        #expect(Self.mode(loose) == 0o755)
    }
}

/// runvoyd keeps secret values in memory: no core dump, no ptrace or /proc/PID/mem for its uid (issue 10,
/// item 9). Checked on a daemon run unprivileged, as in development, where a same-uid process would otherwise
/// read it.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct CrashHygieneTests {
    @Test func anUnprivilegedDaemonIsNotDumpableAndStillServes() throws {
        let user = "rvs\(String(UInt32.random(in: 0..<0xFFFF), radix: 16))-d"
        try SurfaceTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        defer { try? SurfaceTests.sh("userdel \(user)") }
        let home = try Harness.makeTemporaryDirectory() + "/home"
        defer { try? FileManager.default.removeItem(atPath: (home as NSString).deletingLastPathComponent) }
        try SurfaceTests.sh("mkdir -m 700 \(home) && chown \(user):nogroup \(home)")
        let daemon = try DaemonFixture(
            config: { _ in
                """
                socket: {path: \(home)/runvoyd.sock, mode: "0600"}
                state_directory: \(home)/state
                audit: {fail_closed: false}
                secrets: {runtime_directory: \(home)/secrets-run}
                roles:
                  developer: {users: ["*"]}
                executors:
                  default:
                    default: true
                    run_as: {user: \(user), group: nogroup}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    commands: any
                """
            },
            environment: ["RUNVOY_SECRET_IN_ENV": "visible-to-a-dumpable-process"],
            wrapper: ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=nogroup", "--clear-groups", "--"],
            socketPath: home + "/runvoyd.sock")
        defer { daemon.stop() }
        let pid = daemon.process.pid
        // Non-dumpable: the kernel hands /proc/PID to root, and refuses same-uid readers of environ and mem.
        var info = stat()
        #expect(stat("/proc/\(pid)/environ", &info) == 0)
        #expect(info.st_uid == 0, "owned by \(info.st_uid)")
        for file in ["environ", "mem"] {
            let read = try Harness.run([
                "/usr/sbin/runuser", "-u", user, "--", "head", "-c", "1", "/proc/\(pid)/\(file)",
            ])
            #expect(read.status != 0, "\(file): \(read.stdoutText)")
        }
        // And it still works unprivileged, with its state private.
        let out = try daemon.ctl(["exec", "-q", "--", "id", "-un"], asUser: user)
        #expect(out.status == 0 && out.stdoutText == user + "\n", "\(out.stderrText)\n\(daemon.log)")
        #expect(PrivateStateTests.mode(home + "/state") == 0o700)
    }
}
