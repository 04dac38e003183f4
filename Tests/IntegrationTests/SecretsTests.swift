import Crypto
import Foundation
import Glibc
import RunvoyKit
import Testing

/// Secrets against a real runvoyd: injection into the environment and files, and every channel through which a
/// caller might try to get a value back. The caller is `daemon`; commands run as `nobody`.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class SecretsTests {
    let daemon: DaemonFixture
    let value: String
    let caller = "daemon"

    static let executors = """
          vault:
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/bin:/bin
              API_TOKEN: {secret: api-token}
            secret_files:
              TOKEN_FILE: {secret: api-token}
            allow: {users: ["*"]}
            commands: any
          ghost:
            run_as: {user: nobody}
            environment: {MISSING: {secret: never-set}}
            allow: {users: ["*"]}
            commands: any
        """

    static func config(_ directory: String, adminRead: Bool = true, state: String? = nil) -> String {
        var text = DaemonFixture.standardConfig(directory: directory).replacingOccurrences(
            of: "  runtime_directory: \(directory)/secrets-run",
            with: "  runtime_directory: \(state ?? directory)/secrets-run\n  admin_read: \(adminRead)")
        if let state {
            text = text.replacingOccurrences(
                of: "state_directory: \(directory)/state", with: "state_directory: \(state)/state")
        }
        return text + executors
    }

    init() throws {
        value = "tok-" + (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
        daemon = try DaemonFixture(config: { Self.config($0) }, extraArguments: ["--log-level", "trace"])
        // An executor injects api-token, so only an admin may create it (root here).
        try set("api-token", value, as: nil)
    }

    deinit { daemon.stop() }

    /// `runvoyctl secrets set NAME` as `user`, with the value on stdin (a file only the test and that user read).
    @discardableResult
    func set(_ name: String, _ value: String, as user: String?, description: String? = nil) throws -> Harness.Output {
        let path = daemon.directory + "/value-\(UInt32.random(in: 0...UInt32.max))"
        try (value + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        defer { unlink(path) }
        var arguments = ["secrets", "set", name]
        if let description { arguments += ["--description", description] }
        return try daemon.ctl(arguments, asUser: user, stdinPath: path)
    }

    var forms: [String] {
        let bytes = Array(value.utf8)
        return [value, Base64.encode(bytes), String(Base64.encode(bytes).dropLast(4))]
    }

    func leaks(_ text: String) -> Bool { forms.contains { text.contains($0) } }
    func leaks(_ data: Data) -> Bool { forms.contains { data.range(of: Data($0.utf8)) != nil } }

    var sha256: String {
        SHA256.hash(data: Array(value.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func theCommandGetsTheSecretAndNoChannelGivesItToTheCaller() throws {
        var seen: [String] = []
        let script = """
            printf %s "$API_TOKEN" | sha256sum; cmp -s "$TOKEN_FILE" - <<EOF && echo file-matches
            $API_TOKEN
            EOF
            stat -c '%a %U' "$TOKEN_FILE"; echo "env: $API_TOKEN"; echo "file: $(cat "$TOKEN_FILE")"
            printf %s "$API_TOKEN" | base64; echo "to stderr: $API_TOKEN" >&2
            """
        let run = try daemon.ctl(["exec", "-e", "vault", "--", "sh", "-c", script], asUser: caller)
        #expect(run.status == 0, "\(run.stderrText)")
        // Injected: the command saw the value (its hash) in the environment and the same bytes in the file.
        #expect(run.stdoutText.hasPrefix(sha256 + "  -\n"))
        #expect(run.stdoutText.contains("400 nobody\n"))
        // 1. The live stream carries the marker, never the value or its base64.
        #expect(run.stdoutText.contains("env: [secret:api-token]\nfile: [secret:api-token]\n"))
        #expect(run.stderrText.contains("to stderr: [secret:api-token]"))
        #expect(!leaks(run.stdoutText) && !leaks(run.stderrText))
        let id = try #require(ExecTests.executionID(run.stderrText))

        // 2. Stored output, 3. its replay.
        let logs = try daemon.ctl(["logs", id], asUser: caller)
        #expect(logs.status == 0 && logs.stdoutText.contains("env: [secret:api-token]"))
        let replay = try daemon.ctl(["logs", "--replay", "--speed", "1000", id], asUser: caller)
        #expect(replay.status == 0)
        seen += [logs.stdoutText, logs.stderrText, replay.stdoutText, replay.stderrText]

        // 4. status and list.
        seen.append(try daemon.ctl(["status", "--json", id], asUser: caller).stdoutText)
        seen.append(try daemon.ctl(["list", "--json", "--limit", "1000"]).stdoutText)
        seen.append(try daemon.ctl(["secrets", "list", "--json"]).stdoutText)

        // 5. Error messages: a missing secret, a value too short, someone else's secret, a refused read.
        let missing = try daemon.ctl(["exec", "-e", "ghost", "--", "true"], asUser: caller)
        #expect(missing.status == 125 && missing.stderrText.contains("secret_missing"))
        #expect(missing.stderrText.contains("needs secret 'never-set'"))
        let short = try set("tiny", "abc", as: caller)
        #expect(short.status == 125 && short.stderrText.contains("at least 6 bytes"))
        let foreign = try set("api-token", value + "-changed", as: "nobody")
        #expect(foreign.status == 125 && foreign.stderrText.contains("is not yours to set"))
        #expect(!foreign.stderrText.contains("root") && !foreign.stderrText.contains("vault"))
        let read = try daemon.ctl(["secrets", "get", "api-token"], asUser: caller)
        #expect(read.status == 125 && read.stderrText.contains("permission_denied"))
        seen += [missing.stderrText, short.stderrText, foreign.stderrText, read.stdoutText, read.stderrText]

        // 6. The journal, every field of every record (of every process: the value must be nowhere in it).
        let journal = try Harness.run(["/usr/bin/journalctl", "--no-pager", "-o", "export"])
        #expect(journal.status == 0, "\(journal.stderrText)")
        #expect(journal.stdout.range(of: Data("RUNVOY_EXECUTION_ID=\(id)".utf8)) != nil)
        #expect(!leaks(journal.stdout))
        let pid = "_PID=\(daemon.process.pid)"
        let started = try Harness.journal([pid, "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_started"])
        #expect(started.first?["RUNVOY_SECRETS"] == "api-token")
        let setRecord = try Harness.journal([pid, "RUNVOY_EVENT=secret_changed", "RUNVOY_SECRET_NAME=api-token"])
        #expect(setRecord.contains { $0["RUNVOY_ACTION"] == "set" && $0["RUNVOY_CALLER_USER"] == "root" })

        // 7. The command line of the child, and the child's environment as the caller (another user) would read it.
        let sleeper = try daemon.ctl(["exec", "-e", "vault", "--detach", "--", "sleep", "20"], asUser: caller)
        let sleeperID = sleeper.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let childPID = try #require(
            try JSONDecoder().decode(
                ExecutionInfo.self, from: try daemon.ctl(["status", "--json", sleeperID]).stdout
            ).pid)
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(childPID)/cmdline"))
        #expect(!cmdline.isEmpty && !leaks(cmdline))
        let asCaller = try Harness.run(["/usr/sbin/runuser", "-u", caller, "--", "cat", "/proc/\(childPID)/environ"])
        #expect(asCaller.status != 0 && !leaks(asCaller.stdout))

        // 8. The caller's own process: runvoyctl, running as the caller, has received the command's output (the
        // value in plain and in base64, redacted) and waits for the command to end. Its environment, read as the
        // caller reads it, and every writable page of its memory (heap, stacks, environment) hold no form of the
        // value. The probe word in its argv shows the memory read is of the right process.
        let gate = daemon.directory + "/release-caller-ctl"
        let probe = "probe-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let base = daemon.directory + "/caller-ctl"
        let callerCtl = try ChildProcess(
            [
                "/usr/bin/setpriv", "--reuid", caller, "--regid", caller, "--init-groups", Harness.runvoyctl, "exec",
                "--socket", daemon.socketPath, "-e", "vault", "--", "sh", "-c",
                #"echo "env: $API_TOKEN"; printf %s "$API_TOKEN" | base64; while [ ! -e "$1" ]; do sleep 0.05; done"#,
                probe, gate,
            ], stdoutPath: base + ".out", stderrPath: base + ".err")
        let received = Harness.waitUntil {
            ((try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "").split(separator: "\n").count >= 2
        }
        let callerOutput = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        #expect(received && callerOutput.hasPrefix("env: [secret:api-token]\n"), "\(callerOutput)")
        #expect(callerCtl.isRunning)
        let callerEnvironment = try Harness.run([
            "/usr/sbin/runuser", "-u", caller, "--", "cat", "/proc/\(callerCtl.pid)/environ",
        ])
        #expect(callerEnvironment.status == 0 && !callerEnvironment.stdout.isEmpty, "\(callerEnvironment.stderrText)")
        #expect(!leaks(callerEnvironment.stdout))
        let memory = try Self.writableMemory(of: callerCtl.pid)
        #expect(memory.contains { $0.range(of: Data(probe.utf8)) != nil }, "the probe is not in the memory read")
        #expect(!memory.contains { leaks($0) })
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(callerCtl.wait(seconds: 60) == 0)
        seen.append(callerOutput)
        #expect(try daemon.ctl(["kill", sleeperID]).status == 0)

        // The daemon's own logs, at trace level, and its database files, once the executions have ended and their
        // secret files are gone.
        #expect(try waitUntil { try self.status(sleeperID).status.isFinal })
        #expect(
            try waitUntil { (try? FileManager.default.contentsOfDirectory(atPath: self.secretsRun))?.isEmpty == true })
        seen.append(daemon.log)
        for file in ["history.sqlite", "history.sqlite-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: daemon.directory + "/state/" + file))) ?? Data()
            #expect(!leaks(bytes), "\(file)")
        }
        for text in seen { #expect(!leaks(text), "\(text.prefix(300))") }
    }

    func status(_ id: String) throws -> ExecutionInfo {
        try JSONDecoder().decode(ExecutionInfo.self, from: try daemon.ctl(["status", "--json", id]).stdout)
    }

    /// Every readable and writable mapping of process `pid` (heap, stacks, its environment and data), read
    /// through /proc/PID/mem: wherever a value the process had received, or put in its environment, would be.
    static func writableMemory(of pid: pid_t) throws -> [Data] {
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        let fd = open("/proc/\(pid)/mem", O_RDONLY)
        guard fd >= 0 else { throw HarnessError("open /proc/\(pid)/mem: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var regions: [Data] = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, fields[1].hasPrefix("rw") else { continue }
            let bounds = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard bounds.count == 2, bounds[1] > bounds[0] else { continue }
            // A sanitizer build (scripts/sanitize) maps terabytes of shadow memory; runvoyctl's own heap and stacks
            // are far below this bound, and the caller checks that the probe was found in what was read.
            guard bounds[1] - bounds[0] <= 1 << 30 else { continue }
            var buffer = [UInt8](repeating: 0, count: Int(bounds[1] - bounds[0]))
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(bounds[0])) }
            if count > 0 { regions.append(Data(buffer.prefix(count))) }
        }
        return regions
    }

    var secretsRun: String { daemon.directory + "/secrets-run" }

    func waitUntil(seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    /// Issue 10, item 1: on an executor that echoes its input, whether a guess came back at once told whether it
    /// began the secret. Now a guess that begins the secret comes back like any other (after the idle delay,
    /// without EOF); before the fix it was held until the end of the stream and this read timed out.
    @Test func aGuessThatBeginsTheSecretComesBackLikeAnyOther() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"executor":"vault","argv":["cat"],"stdin":true}}"#)
        let started = try #require(try connection.readFrame())
        #expect(started["event"] as? String == "started", "\(started)")
        let base64 = Base64.encode(Array(value.utf8))
        for (index, guess) in [String(value.prefix(7)), "zz-not-it", String(base64.prefix(9))].enumerated() {
            let data = Base64.encode(Array(guess.utf8))
            try connection.sendFrame(#"{"v":1,"id":\#(index + 2),"method":"stdin","params":{"data":"\#(data)"}}"#)
            var echoed: [UInt8] = []
            // Each read waits at most the connection's 10 s receive timeout, and stdin stays open throughout.
            while echoed.count < guess.utf8.count {
                let frame = try #require(try connection.readFrame())
                #expect(frame["event"] as? String == "output", "\(frame)")
                echoed += Base64.decode(frame["data"] as? String ?? "") ?? []
            }
            #expect(echoed == Array(guess.utf8))
        }
        try connection.sendFrame(#"{"v":1,"id":9,"method":"stdin","params":{"eof":true}}"#)
        let exit = try #require(try connection.readFrame())
        #expect(exit["event"] as? String == "exit" && exit["exit_code"] as? Int == 0, "\(exit)")
    }

    /// Issue 10, item 1: base64 of a value whose length is not a multiple of 3 ended in a character (before the
    /// padding) that carried the value's last bits; at an offset the first character carried its first bits.
    @Test func base64OfTheSecretLeavesNoCharacterWithItsBits() throws {
        let script =
            #"printf %s "$API_TOKEN" | base64 -w0; echo; (printf x; printf %s "$API_TOKEN") | base64 -w0; echo;"#
            + #" (printf xy; printf %s "$API_TOKEN") | base64 -w0 | tr +/ -_; echo"#
        let run = try daemon.ctl(["exec", "-e", "vault", "--", "sh", "-c", script], asUser: caller)
        #expect(run.status == 0, "\(run.stderrText)")
        let lines = run.stdoutText.split(separator: "\n").map(String.init)
        let bytes = Array(value.utf8)
        for (index, prefix) in ["", "x", "xy"].enumerated() {
            let encoded = Base64.encode(Array(prefix.utf8) + bytes)
            let head = String(encoded.prefix(8 * prefix.utf8.count / 6))
            let padding = String(repeating: "=", count: encoded.filter { $0 == "=" }.count)
            #expect(lines.count == 3 && lines[index] == head + "[secret:api-token]" + padding, "\(lines)")
        }
    }

    @Test func checkConfigWarnsAboutMissingSecretsAndSharedRunAsUsers() throws {
        let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", daemon.configPath])
        #expect(check.status == 0)
        #expect(check.stdoutText.contains("executors.ghost: secret 'never-set' is not set"))
        #expect(check.stdoutText.contains("executors.vault: injects secrets and runs as 'nobody'"))
        #expect(!leaks(check.stdoutText))
    }

    @Test func onATerminalTheValueIsReadWithoutEcho() throws {
        // script(1) gives runvoyctl a pseudo-terminal; its input comes from a FIFO the test writes the value into
        // once the prompt is there (runvoyctl turns echo off before printing it), as a person would type it.
        let fifo = daemon.directory + "/tty-input"
        let outPath = daemon.directory + "/tty-output"
        #expect(mkfifo(fifo, 0o600) == 0)
        let command = "\(Harness.runvoyctl) secrets set --socket \(daemon.socketPath) tty-secret"
        let session = try ChildProcess(
            ["/bin/sh", "-c", "exec script -qec '\(command)' /dev/null <\(fifo)"], stdoutPath: outPath)
        // Opening the FIFO for writing succeeds once the shell has opened it for reading.
        var input: Int32 = -1
        #expect(
            Harness.waitUntil {
                input = open(fifo, O_WRONLY | O_NONBLOCK)
                return input >= 0
            })
        var output: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
        #expect(Harness.waitUntil { output.contains("value for secret tty-secret (not echoed): ") }, "\(output)")
        var typed = Array("typed-on-a-terminal-42\n".utf8)
        #expect(write(input, &typed, typed.count) == typed.count)
        close(input)
        #expect(session.wait(seconds: 60) == 0, "\(output)")
        let out = output
        #expect(out.contains("value for secret tty-secret (not echoed): "))
        #expect(out.contains("secret tty-secret set (version 1)"))
        #expect(!out.contains("typed-on-a-terminal-42"))
        let stored = try JSONDecoder().decode(
            SecretListResult.self, from: try daemon.ctl(["secrets", "list", "--json"]).stdout)
        #expect(stored.secrets.contains { $0.name == "tty-secret" && $0.owner == "root" })
        #expect(try daemon.ctl(["secrets", "rm", "tty-secret"]).status == 0)
    }

    @Test func secretsBelongToWhoSetThemAndAdminsMayReadWhenTheConfigurationSaysSo() throws {
        #expect(try set("nobodys", "nobody-value-1", as: "nobody", description: "mine").status == 0)
        let mine = try JSONDecoder().decode(
            SecretListResult.self, from: try daemon.ctl(["secrets", "list", "--json"], asUser: "nobody").stdout)
        #expect(mine.secrets.map(\.name) == ["nobodys"])
        #expect(mine.secrets.first?.description == "mine" && mine.secrets.first?.owner == "nobody")
        let everything = try JSONDecoder().decode(
            SecretListResult.self, from: try daemon.ctl(["secrets", "list", "--json"]).stdout)
        #expect(Set(everything.secrets.map(\.name)).isSuperset(of: ["api-token", "nobodys"]))
        #expect(everything.secrets.first { $0.name == "api-token" }?.executors == ["vault"])
        #expect(everything.missing == ["never-set"])

        // Someone else's secret is answered as a missing one, naming no owner.
        let refused = try daemon.ctl(["secrets", "rm", "nobodys"], asUser: caller)
        #expect(refused.status == 125 && refused.stderrText.contains("secret_missing"))
        #expect(!refused.stderrText.contains("belongs to"))
        #expect(try set("nobodys", "nobody-value-2", as: "nobody").stdoutText.contains("rotated (version 2)"))
        // A name an executor injects is not anyone's to claim first.
        let claimed = try set("never-set", "claimed-by-a-developer", as: caller)
        #expect(claimed.status == 125 && claimed.stderrText.contains("is not yours to set; only an admin may"))
        // An admin's rotation makes the secret the admin's.
        #expect(try set("nobodys", "admin-rotated-3", as: nil).status == 0)
        let rotated = try JSONDecoder().decode(
            SecretListResult.self, from: try daemon.ctl(["secrets", "list", "--json"]).stdout)
        #expect(rotated.secrets.first { $0.name == "nobodys" }?.owner == "root")
        #expect(
            try daemon.ctl(["secrets", "list", "--json"], asUser: "nobody").stdoutText.contains("nobodys") == false)

        let read = try daemon.ctl(["secrets", "get", "nobodys"])
        #expect(read.status == 0 && read.stdoutText == "admin-rotated-3")
        let audited = try Harness.journal([
            "_PID=\(daemon.process.pid)", "RUNVOY_EVENT=secret_read", "RUNVOY_SECRET_NAME=nobodys",
        ])
        #expect(audited.first?["RUNVOY_DECISION"] == "allow" && audited.first?["RUNVOY_CALLER_USER"] == "root")
        #expect(try daemon.ctl(["secrets", "rm", "nobodys"]).status == 0)
        #expect(try daemon.ctl(["secrets", "rm", "nobodys"]).stderrText.contains("secret_missing"))
    }
}

/// What survives a crash, and what a daemon with the wrong key does.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct SecretsRecoveryTests {
    @Test func secretFilesAreRemovedAtTheNextStartAfterACrash() throws {
        let shared = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let first = try DaemonFixture(config: { SecretsTests.config($0, state: shared) })
        let valuePath = shared + "/value"
        try "crash-test-value".write(toFile: valuePath, atomically: true, encoding: .utf8)
        #expect(try first.ctl(["secrets", "set", "api-token"], stdinPath: valuePath).status == 0)
        let started = try first.ctl(["exec", "-e", "vault", "--detach", "--", "sleep", "30"])
        let id = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let file = shared + "/secrets-run/\(id)/api-token"
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o400)
        first.process.signal(SIGKILL)
        first.process.wait()
        #expect(access(file, F_OK) == 0)

        let second = try DaemonFixture(config: { SecretsTests.config($0, state: shared) })
        defer { second.stop() }
        #expect(access(file, F_OK) != 0)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: shared + "/secrets-run"))?.isEmpty == true)
        let status = try JSONDecoder().decode(
            ExecutionInfo.self, from: try second.ctl(["status", "--json", id]).stdout)
        #expect(status.status == .lost)
        // The secret itself survived, sealed with the same key.
        let run = try second.ctl(["exec", "-q", "-e", "vault", "--", "sh", "-c", "echo ${#API_TOKEN}"])
        #expect(run.stdoutText == "16\n")
        if let pid = status.pid { kill(pid, SIGKILL) }
    }

    @Test func aKeyFileOthersCanReadOrTheWrongKeyStopsTheDaemonWithAClearError() throws {
        let shared = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let first = try DaemonFixture(config: { SecretsTests.config($0, state: shared) })
        let valuePath = shared + "/value"
        try "some-secret-value".write(toFile: valuePath, atomically: true, encoding: .utf8)
        #expect(try first.ctl(["secrets", "set", "api-token"], stdinPath: valuePath).status == 0)
        first.stop()
        let keyPath = shared + "/state/secrets.key"
        let config = shared + "/again.yaml"
        try SecretsTests.config(shared, state: shared).write(toFile: config, atomically: true, encoding: .utf8)

        chmod(keyPath, 0o644)
        let open = try Harness.run(
            [Harness.runvoyd, "--config", config], environment: ["RUNVOYD_LOG_STDERR": "1"], timeout: 30)
        #expect(open.status == 1)
        #expect(open.stderrText.contains("must be owned by uid 0 with mode 0600 or stricter"))

        chmod(keyPath, 0o600)
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: keyPath))
        let wrong = try Harness.run(
            [Harness.runvoyd, "--config", config], environment: ["RUNVOYD_LOG_STDERR": "1"], timeout: 30)
        #expect(wrong.status == 1)
        #expect(wrong.stderrText.contains("master key does not match"))
    }
}
