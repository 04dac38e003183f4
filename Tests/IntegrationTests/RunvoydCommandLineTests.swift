import Foundation
import Glibc
import RunvoyKit
import Testing

/// runvoyd's command line, with the real binary: options that do not go together are refused before anything is
/// read, a missing configuration says how to go on, and `--dev` serves the embedded development configuration
/// under a state root given relative to the working directory.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct RunvoydCommandLineTests {
    /// ArgumentParser's status for a usage error (EX_USAGE).
    static let usage: Int32 = 64
    /// Where runvoyd looks without --config.
    static let defaultConfig = "/etc/runvoy/runvoyd.yaml"

    @Test(arguments: [
        (["--dev", "--config", "/nonexistent.yaml"], "--dev uses the embedded configuration; do not combine it"),
        (["--log-level", "loud"], "unknown log level 'loud'"),
        (["--restore", "/nonexistent.tar"], "--restore needs --state-directory DIR"),
        (["--restore", "/nonexistent.tar", "--state-directory", "/nonexistent", "--dev"], "cannot be combined"),
        (
            ["--restore", "/nonexistent.tar", "--state-directory", "/nonexistent", "--check-config"],
            "cannot be combined"
        ),
        (["--state-directory", "/nonexistent"], "--state-directory and --key-file go with --restore"),
        (["--key-file", "/nonexistent.key"], "--state-directory and --key-file go with --restore"),
    ])
    func optionsThatDoNotGoTogetherAreRefused(arguments: [String], message: String) async throws {
        let out = try await Harness.runDetached([Harness.runvoyd] + arguments, timeout: 60)
        #expect(out.status == Self.usage, "\(arguments): \(out.stderrText)")
        #expect(out.stderrText.contains(message), "\(arguments): \(out.stderrText)")
    }

    @Test(.enabled(if: access("/etc/runvoy/runvoyd.yaml", F_OK) != 0, "a configuration is installed on this host"))
    func withoutAConfigurationItSaysWhereItLookedAndWhatToPass() async throws {
        let out = try await Harness.runDetached([Harness.runvoyd], timeout: 60)
        #expect(out.status == 78, "EX_CONFIG: \(out.stderrText)")
        #expect(out.stderrText.contains(Self.defaultConfig), "\(out.stderrText)")
        #expect(
            out.stderrText.contains("runvoyd: no configuration at \(Self.defaultConfig); pass --config PATH"),
            "\(out.stderrText)")
        // The file named on the command line is missing: no hint about the default path.
        let named = try await Harness.runDetached(
            [Harness.runvoyd, "--config", "/nonexistent/runvoyd.yaml"], timeout: 60)
        #expect(named.status == 78, "\(named.stderrText)")
        #expect(named.stderrText.contains("/nonexistent/runvoyd.yaml"), "\(named.stderrText)")
        #expect(!named.stderrText.contains("no configuration at"), "\(named.stderrText)")
    }

    @Test func devServesTheEmbeddedConfigurationUnderARelativeStateRoot() async throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A state root relative to the working directory becomes an absolute one beside it.
        let script = "cd \"$1\" && exec \"$2\" --dev --state-root dev-root"
        let process = try Self.start(["/bin/sh", "-c", script, "sh", directory, Harness.runvoyd], in: directory)
        defer { Self.stop(process) }
        let socket = directory + "/dev-root/runvoyd.sock"
        let serving = await Self.serves(process, at: socket)
        let stderr = { (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "" }
        try #require(serving, "runvoyd --dev did not serve on \(socket): \(stderr())")
        #expect(stderr().contains("runvoyd: development mode; socket \(socket)"), "\(stderr())")
        #expect(stderr().contains("runvoyd: try: RUNVOY_SOCKET=\(socket) runvoyctl exec -- id"), "\(stderr())")
        // As root, the development executor runs commands as nobody.
        let out = try await Harness.runDetached([
            Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", "id", "-un",
        ])
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(out.stdoutText == "nobody\n")
        #expect(access(directory + "/dev-root/state", F_OK) == 0, "the state lives under the state root")
    }

    @Test func devAsAnOrdinaryUserRunsCommandsAsThatUser() async throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The state root's parent must be writable by its owner only (runvoyd refuses one others could replace).
        let nobody = try #require(getpwnam("nobody")?.pointee)
        #expect(chown(directory, nobody.pw_uid, nobody.pw_gid) == 0 && chmod(directory, 0o755) == 0)
        let asNobody = ["/usr/bin/setpriv", "--reuid", "nobody", "--regid", "\(nobody.pw_gid)", "--clear-groups"]
        let process = try Self.start(
            asNobody + [Harness.runvoyd, "--dev", "--state-root", directory + "/root"], in: directory)
        defer { Self.stop(process) }
        let socket = directory + "/root/runvoyd.sock"
        let stderr = { (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "" }
        try #require(
            await Self.serves(process, at: socket), "runvoyd --dev as nobody did not serve on \(socket): \(stderr())")
        // Not root: the development executor runs commands as the daemon's own user.
        let out = try await Harness.runDetached(
            asNobody + [Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", "id", "-un"])
        #expect(out.status == 0, "\(out.stderrText)")
        #expect(out.stdoutText == "nobody\n")
    }

    /// A daemon that runs as root without CAP_SETGID (a unit whose `CapabilityBoundingSet=` leaves it out) cannot
    /// take a run-as user's groups: each request that needs them is refused, and the daemon serves on. (Before, the
    /// thread's identity switch failed at `setgroups` and its restore failed the same way, which aborts: any user's
    /// `exec` ended the daemon. Review of be65455, finding B.)
    @Test func withoutCapSetgidRequestsAreRefusedAndTheDaemonServesOn() async throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try Self.start(
            [
                "/usr/bin/setpriv", "--bounding-set", "-setgid", Harness.runvoyd, "--dev", "--state-root",
                directory + "/root",
            ],
            in: directory)
        defer { Self.stop(process) }
        let socket = directory + "/root/runvoyd.sock"
        let stderr = { (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? "" }
        try #require(await Self.serves(process, at: socket), "runvoyd did not serve: \(stderr())")
        let out = try await Harness.runDetached([
            Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", "id", "-un",
        ])
        #expect(out.status != 0, "\(out.stdoutText)")
        #expect(!out.stderrText.contains("closed the connection"), "\(out.stderrText)")
        // The start said why.
        #expect(stderr().contains("runvoyd runs as root without CAP_SETGID: it cannot take a run_as user's identity"))
        #expect(process.isRunning, "runvoyd ended: \(stderr().prefix(3000))")
        #expect(await Self.serves(process, at: socket))
    }

    /// A command (typed as a path through a link the caller made, or by name) runs with its real path as
    /// `argv[0]`: a program that trusts where `argv[0]` says it lives (CPython finds a virtual environment, and runs
    /// its `.pth` files, from `argv[0]`) must not be pointed at the caller's files. (Before, the typed path went to
    /// the program unchanged: a developer allowed `python3` on a root executor ran code of their own as root.
    /// Review of 60dc9de, finding 1.)
    @Test func aCommandRunsWithItsRealPathAsArgv0() async throws {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(chmod(directory, 0o755) == 0)
        #expect(mkdir(directory + "/v", 0o755) == 0 && symlink("/usr/bin", directory + "/v/bin") == 0)
        let process = try Self.start([Harness.runvoyd, "--dev", "--state-root", directory + "/root"], in: directory)
        defer { Self.stop(process) }
        let socket = directory + "/root/runvoyd.sock"
        try #require(await Self.serves(process, at: socket))
        let out = try await Harness.runDetached([
            Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", directory + "/v/bin/cat", "/proc/self/cmdline",
        ])
        #expect(out.status == 0, "\(out.stderrText)")
        let argv = out.stdout.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        #expect(argv.first == "/usr/bin/cat", "\(argv)")
        #expect(argv.dropFirst().first == "/proc/self/cmdline", "\(argv)")
        // A command typed by name starts with its path too: the program would otherwise look itself up in a `PATH`
        // the caller may set (`allow_env`). (Review of fb808e6, finding 1.)
        let named = try await Harness.runDetached([
            Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", "cat", "/proc/self/cmdline",
        ])
        #expect(named.stdout.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } == "/usr/bin/cat")
    }

    /// `argv` (a runvoyd) logging to stderr, its output in `directory`/out and `directory`/err.
    static func start(_ argv: [String], in directory: String) throws -> ChildProcess {
        try ChildProcess(
            argv, environment: ProcessInfo.processInfo.environment.merging(["RUNVOYD_LOG_STDERR": "1"]) { $1 },
            stdoutPath: directory + "/out", stderrPath: directory + "/err")
    }

    static func stop(_ process: ChildProcess) {
        process.signal(SIGTERM)
        if process.wait(seconds: 60) == nil {
            process.signal(SIGKILL)
            process.wait()
        }
    }

    /// Whether the daemon `process` answers `hello` at `socket` within a minute.
    static func serves(_ process: ChildProcess, at socket: String) async -> Bool {
        await Harness.waitUntilDetached(seconds: 60) {
            guard process.isRunning, let client = try? RunvoyClient(socketPath: socket) else { return false }
            return (try? client.call(.hello, params: NoParams(), result: HelloResult.self)) != nil
        }
    }
}
