import Foundation
import Glibc
import RunvoyKit

/// A real runvoyd started on a temporary socket with a temporary configuration, stopped with SIGTERM.
final class DaemonFixture {
    let directory: String
    let socketPath: String
    let configPath: String
    let process: ChildProcess
    let logPath: String

    /// The standard test configuration: `default` runs as nobody for everyone, `root` runs as root for root only,
    /// `limited` accepts only a few argv patterns, `staff` admits only the `daemon` user.
    static func standardConfig(directory: String, extra: String = "", idleTimeout: String = "30s") -> String {
        """
        socket:
          path: \(directory)/runvoyd.sock
          mode: "0666"
        state_directory: \(directory)/state
        admin_contact: "the test suite"
        limits:
          max_frame_bytes: 1048576
          idle_timeout: \(idleTimeout)
          max_connections: 4096
        shutdown_grace: 10s
        kill_grace: 1s
        audit:
          fail_closed: true
        secrets:
          runtime_directory: \(directory)/secrets-run
        roles:
          developer: {users: ["*"]}
        executors:
          default:
            default: true
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/local/bin:/usr/bin:/bin
              HOME: /
              RUNVOY_TEST: "yes"
            allow_env: [LANG, TF_VAR_*]
            working_directory: /
            timeout: 10m
            max_timeout: 1h
            allow:
              users: ["*"]
            commands: any
          root:
            run_as: {user: root}
            environment:
              PATH: /usr/bin:/bin
            commands: any
          limited:
            run_as: {user: nobody}
            environment:
              PATH: /usr/bin:/bin
            allow:
              users: ["*"]
            commands:
              - [echo, "*"]
              - [/usr/bin/id, -u]
          staff:
            run_as: {user: nobody}
            allow:
              users: [daemon]
            commands: any
        \(extra)
        """
    }

    init(
        config: ((String) -> String)? = nil, extraArguments: [String] = [], environment: [String: String] = [:],
        wrapper: [String] = [], waitForSocket: Bool = true, socketPath: String? = nil, logToJournal: Bool = false
    ) throws {
        directory = try Harness.makeTemporaryDirectory()
        self.socketPath = socketPath ?? directory + "/runvoyd.sock"
        configPath = directory + "/runvoyd.yaml"
        logPath = directory + "/runvoyd.log"
        let text = (config ?? { DaemonFixture.standardConfig(directory: $0) })(directory)
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        var wrapper = wrapper
        // systemd-socket-activate gives its child only LISTEN_* and the -E variables: under scripts/coverage the
        // daemon's profile would otherwise go to default.profraw in the working directory, unread.
        if wrapper.first?.hasSuffix("systemd-socket-activate") == true, let profile = getenv("LLVM_PROFILE_FILE") {
            wrapper.insert(contentsOf: ["-E", "LLVM_PROFILE_FILE=" + String(cString: profile)], at: 1)
        }
        let argv = wrapper + [Harness.runvoyd, "--config", configPath] + extraArguments
        var env = ProcessInfo.processInfo.environment
        if !logToJournal { env["RUNVOYD_LOG_STDERR"] = "1" }
        for (key, value) in environment { env[key] = value }
        process = try ChildProcess(argv, environment: env, stdoutPath: logPath, stderrPath: logPath + ".err")
        if waitForSocket { try self.waitForSocket() }
    }

    /// Waits until the daemon answers on its socket.
    func waitForSocket(seconds: Double = 20) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = process.status {
                throw HarnessError("runvoyd exited with \(status) before serving:\n\(log)")
            }
            if let client = try? RunvoyClient(socketPath: socketPath),
                (try? client.call(.hello, params: NoParams(), result: HelloResult.self)) != nil
            {
                return
            }
            usleep(20_000)
        }
        throw HarnessError("runvoyd did not start serving within \(seconds) s:\n\(log)")
    }

    var log: String {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: logPath + ".err", encoding: .utf8)) ?? "")
    }

    /// Runs runvoyctl against this daemon, optionally as another user through runuser.
    func ctl(
        _ arguments: [String], asUser user: String? = nil, stdinPath: String? = nil, timeout: Double = 120
    ) throws
        -> Harness.Output
    {
        var argv = [Harness.runvoyctl, "--socket", socketPath]
        // `--socket` belongs to the subcommand: runvoyctl SUBCOMMAND --socket PATH ...
        // (For a command group such as `secrets` or `playbook`, after its subcommand.)
        let head = ["secrets", "playbook"].contains(arguments.first) ? 2 : 1
        argv = [Harness.runvoyctl] + arguments.prefix(head) + ["--socket", socketPath] + arguments.dropFirst(head)
        if let user { argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv }
        return try Harness.run(argv, stdinPath: stdinPath, timeout: timeout)
    }

    /// A runvoyctl running in the background against this daemon, with its output in files.
    struct BackgroundCtl {
        let process: ChildProcess
        let stdoutPath: String
        let stderrPath: String

        var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        /// Waits until runvoyctl has printed the execution id, and returns it.
        func executionID(seconds: Double = 20) throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let id = ExecTests.executionID(stderr) { return id }
                usleep(10_000)
            }
            throw HarnessError("runvoyctl printed no execution id within \(seconds) s; stderr: \(stderr)")
        }
    }

    private var backgroundCount = 0

    /// Starts `runvoyctl SUBCOMMAND --socket PATH ARGS...` without waiting for it.
    func startCtl(_ arguments: [String]) throws -> BackgroundCtl {
        backgroundCount += 1
        let base = "\(directory)/ctl-\(backgroundCount)"
        let head = ["secrets", "playbook"].contains(arguments.first) ? 2 : 1
        let argv = [Harness.runvoyctl] + arguments.prefix(head) + ["--socket", socketPath] + arguments.dropFirst(head)
        let process = try ChildProcess(argv, stdoutPath: base + ".out", stderrPath: base + ".err")
        return BackgroundCtl(process: process, stdoutPath: base + ".out", stderrPath: base + ".err")
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit status.
    @discardableResult
    func stop(seconds: Double = 30) -> Int32 {
        process.signal(SIGTERM)
        if let status = process.wait(seconds: seconds) { return status }
        process.signal(SIGKILL)
        process.wait()
        return -1
    }

    deinit {
        if process.isRunning {
            process.signal(SIGKILL)
            process.wait()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
