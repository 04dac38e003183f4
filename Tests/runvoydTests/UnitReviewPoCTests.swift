import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Security review of sandboxed executors (issue 13, item 5): proofs of concept that FAIL on the reviewed code
/// (branch `unit` at ea88d38). Each test names what an attacker does and what must hold instead.
@Suite(.serialized) struct UnitReviewPoCTests {
    /// systemd's `replace_env_argv` (src/basic/env-util.c), as much as these tests need: it runs on every
    /// ExecStart= argv (also one set over D-Bus as `a(sasb)`) unless the command has the `no-env-expand` flag
    /// (ExecStartEx, systemd 243+). A word that is `$NAME` alone becomes NAME's value split at whitespace, and
    /// disappears when NAME is unset or not a valid name; in any other word `${NAME}` becomes the value (empty
    /// when unset) and `$$` becomes `$`.
    static func systemdExpanded(_ argv: [String], _ environment: [String: String]) -> [String] {
        var expanded: [String] = []
        for word in argv {
            let characters = Array(word)
            if characters.first == "$", characters.count < 2 || (characters[1] != "{" && characters[1] != "$") {
                let name = String(characters.dropFirst())
                if ExecPlan.isEnvironmentName(name), let value = environment[name] {
                    expanded += value.split(whereSeparator: { " \t\n".contains($0) }).map(String.init)
                }
                continue
            }
            var result = ""
            var index = 0
            while index < characters.count {
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                if characters[index] == "$", next == "$" {
                    result.append("$")
                    index += 2
                    continue
                }
                if characters[index] == "$", next == "{",
                    let close = characters[(index + 2)...].firstIndex(of: "}"),
                    ExecPlan.isEnvironmentName(String(characters[(index + 2)..<close]))
                {
                    result += environment[String(characters[(index + 2)..<close])] ?? ""
                    index = close + 1
                    continue
                }
                result.append(characters[index])
                index += 1
            }
            expanded.append(result)
        }
        return expanded
    }

    @Test func theModelOfSystemdsExpansionIsSystemds() {
        // systemd.service(5), "Command lines": "$FOO" alone is split, "${FOO}" is one word, "$$" is "$".
        #expect(
            Self.systemdExpanded(["echo", "$A", "${A}x", "$$A", "$UNSET", "$1", "a$A"], ["A": "1 2"])
                == ["echo", "1", "2", "1 2x", "$A", "a$A"])
    }

    /// A caller (developer role) sends argv words with `$`: the command rules and the audit record see them as
    /// written, but systemd expands them with the unit's environment (injected secrets, allow_env values,
    /// HOME/USER/SHELL it adds) before exec. So a secret reaches argv (`/proc/PID/cmdline`, world-readable), a
    /// relative `${HOME}/...` passes a `path_under` rule and opens the run-as user's home, `$X` alone is re-split
    /// into several arguments or dropped: what runs is not what was checked and audited.
    @Test func theArgvReachesTheSandboxedCommandAsItWasCheckedAndAudited() throws {
        var recipe = try UnitRecipeTests.recipe()
        let argv = ["cat", "${HOME}/.ssh/id_rsa", "$TOKEN", "$1", "costs $$5", "${TOKEN}", "$"]
        recipe.argv = argv
        let sent = recipe.properties.compactMap { property -> [String]? in
            if case .execStart(_, let argv) = property { return argv }
            return nil
        }
        let execArgv = try #require(sent.first)
        // What the unit's environment holds: the environment file's values (a secret among them) and HOME,
        // which systemd sets from User=.
        let environment = ["HOME": "/root", "TOKEN": "s3cret value"]
        let ran = Self.systemdExpanded(execArgv, environment)
        #expect(ran == argv, "systemd runs \(ran), the rules and audit saw \(argv)")
        #expect(!ran.joined(separator: " ").contains("s3cret"), "an injected secret in the command's argv")
    }

    /// A fault after systemd has started the unit (here a property read of the started unit fails; likewise a
    /// StartTransientUnit reply that times out after 25 s while systemd goes on to start the unit): the
    /// execution fails (`spawn_failed`), its slot and pipes are released, and the command runs on in its unit,
    /// unsupervised, with no timeout and unreachable by `kill`, until runvoyd's next start. The unit must be
    /// stopped (or its cgroup killed) on every failure after the start call was sent.
    @Test func aUnitThatStartedButFailedTheLaunchIsNotLeftRunning() async throws {
        let fake = try FakeSystemd(failingProperties: ["ControlGroup"])
        defer { fake.stop() }
        var template = Array("/tmp/runvoy-unitpoc-XXXXXX".utf8CString)
        let mount = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(mount) }
        let cgroup = mount + "/runvoy.slice/runvoy-01F.service"
        try FileSystem.makeDirectories(cgroup, mode: 0o755)
        let units = UnitContainment(
            booted: true, root: true, cgroupMount: mount, connect: { SystemdBus.connect(fd: fake.clientFD) })
        let executor = try UnitRecipeTests.executor()
        let request = SpawnRequest(
            path: "/bin/sleep", argv: ["sleep", "1d"], environment: [:], workingDirectory: "/", identity: nil,
            stdinPipe: false)
        var failed = false
        do throws(SpawnError) {
            let (process, _) = try await units.start(
                request, executionID: "01F", executor: executor, runtimeDirectory: mount)
            for fd in [process.pidfd, process.stdoutFD, process.stderrFD ?? -1] where fd >= 0 { close(fd) }
        } catch {
            failed = true
        }
        #expect(failed, "the fault did not fail the launch")
        #expect(fake.starts.count == 1, "systemd was asked to start the unit (and its job finished 'done')")
        let stopped = SystemdBusTests.eventually {
            fake.stops.contains("runvoy-01F.service") || access(cgroup + "/cgroup.kill", F_OK) == 0
        }
        #expect(stopped, "the started unit was left running: only \(fake.unrefs) were unreferenced")
    }
}
