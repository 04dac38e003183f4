import CRunvoyPosix
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `SystemdBus` and `UnitContainment` against `FakeSystemd` over a direct sd-bus connection: the StartTransientUnit
/// message as sd-bus carries it (types as systemd's bus-unit-util.c appends them), the wait for the start job and
/// the unit's end, the exit status, and a lost connection. (Against the real systemd: scripts/e2e-systemd.)
@Suite(.serialized) struct SystemdBusTests {
    /// Polls `condition` for up to 10 s (the fake answers on its own thread).
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<2000 where !condition() { usleep(5000) }
        return condition()
    }

    static func pipe() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        _ = runvoy_pipe_cloexec(&fds, 0)
        return (fds[0], fds[1])
    }

    @Test func aUnitStartsWithItsPropertiesAndEndsWithItsStatus() async throws {
        let fake = try FakeSystemd()
        defer { fake.stop() }
        let bus = try SystemdBus.connect(fd: fake.clientFD).get()
        let (read, write) = Self.pipe()
        defer { for fd in [read, write] { close(fd) } }
        var recipe = try UnitRecipeTests.recipe()
        recipe.stdio = (read, write, write)
        let started = try await bus.startUnit("runvoy-01ABC.service", properties: recipe.properties).get()
        #expect(started.mainPID == 4242)
        #expect(started.controlGroup == "/runvoy.slice/runvoy-01ABC.service")
        #expect(started.objectPath == "/org/freedesktop/systemd1/unit/runvoy_2d01ABC_2eservice")
        let dump = try #require(fake.starts.first)
        for expected in [
            "STRING \"runvoy-01ABC.service\";", "STRING \"fail\";", "STRING \"ProtectSystem\";",
            "VARIANT \"s\" {\n", "STRING \"strict\";", "VARIANT \"a(sasb)\"", "STRING \"/bin/echo\";",
            "VARIANT \"(bas)\"", "BOOLEAN false;", "STRING \"@mount\";", "VARIANT \"h\"", "VARIANT \"t\"",
            "UINT64 1500000;", "VARIANT \"u\"", "UINT32 63;", "VARIANT \"a(sb)\"",
            "STRING \"/run/runvoy/secrets/01ABC.env\";",
        ] {
            #expect(dump.contains(expected), "\(expected) not in:\n\(dump)")
        }
        async let end = bus.waitEnd(started.objectPath)
        fake.finish(started.objectPath, code: 1, status: 7)
        let ended = try await end.get()
        #expect(ended.code == 1 && ended.status == 7 && ended.result == "success")
        #expect(ended.cpuNsec == 1_000_000 && ended.ioReadBytes == 4096 && ended.ioWriteBytes == nil)
        bus.unref("runvoy-01ABC.service")
        #expect(Self.eventually { fake.unrefs == ["runvoy-01ABC.service"] })
    }

    @Test func aStartJobThatFailsIsAFailure() async throws {
        let fake = try FakeSystemd(jobResult: "failed")
        defer { fake.stop() }
        let bus = try SystemdBus.connect(fd: fake.clientFD).get()
        let result = await bus.startUnit("runvoy-01B.service", properties: [.string("Type", "exec")])
        guard case .failure(let failure) = result else {
            Issue.record("started: \(result)")
            return
        }
        #expect(failure.message.contains("its start job ended 'failed'"), "\(failure)")
    }

    @Test func aLostConnectionEndsTheWaitAndRefusesWhatFollows() async throws {
        let fake = try FakeSystemd()
        let bus = try SystemdBus.connect(fd: fake.clientFD).get()
        let started = try await bus.startUnit("runvoy-01C.service", properties: [.string("Type", "exec")]).get()
        async let end = bus.waitEnd(started.objectPath)
        fake.stop()
        guard case .failure(let failure) = await end else {
            Issue.record("the wait did not fail")
            return
        }
        // Either the property read failed (Disconnected) or the loop saw the connection end first.
        #expect(failure.message.contains("gone") || failure.message.contains("Disconnected"), "\(failure)")
        #expect(Self.eventually { bus.brokenReason != nil })
        guard case .failure = await bus.startUnit("runvoy-01D.service", properties: []) else {
            Issue.record("a start on a lost connection succeeded")
            return
        }
    }

    /// The whole of `UnitContainment.start`: pipes, the environment file (removed once the unit has started, its
    /// values never in a property), the scope, and the end read from the unit.
    @Test func aSandboxedCommandRunsAsAUnit() async throws {
        let fake = try FakeSystemd(output: "hello from the unit\n")
        defer { fake.stop() }
        let units = UnitContainment(
            booted: true, root: true, cgroupMount: "/nonexistent",
            connect: { SystemdBus.connect(fd: fake.clientFD) })
        var template = Array("/tmp/runvoy-units-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let request = SpawnRequest(
            path: "/bin/echo", argv: ["echo"], environment: ["TOKEN": "s3cret-value", "PATH": "/bin"],
            workingDirectory: "/", identity: nil, stdinPipe: true)
        let (process, scope) = try await units.start(
            request, executionID: "01E", executor: try UnitRecipeTests.executor(), runtimeDirectory: directory)
        defer {
            for fd in [process.pidfd, process.stdoutFD, process.stderrFD ?? -1, process.stdinFD ?? -1] where fd >= 0 {
                close(fd)
            }
        }
        #expect(process.pid == 4242)
        #expect(access(directory + "/01E.env", F_OK) != 0, "the environment file is left")
        let dump = try #require(fake.starts.first)
        #expect(!dump.contains("s3cret-value"))
        #expect(dump.contains("STRING \"\(directory)/01E.env\";"))
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(process.stdoutFD, &bytes, 64)
        #expect(String(decoding: bytes.prefix(max(count, 0)), as: UTF8.self) == "hello from the unit\n")
        #expect(units.summary([try UnitRecipeTests.executor()], detail: true) == "unit for sandboxed executors (web)")
        #expect(scope.members().isEmpty && !scope.isPopulated && !scope.signalMain(process.pid, 0))
        async let status = scope.waitMain(pidfd: process.pidfd)
        fake.finish(scope.unit.objectPath, code: 2, status: SIGTERM)
        #expect(await status == .signaled(SIGTERM))
        #expect(scope.usage() == ResourceUsage(ioReadBytes: 4096, source: "unit"))
        scope.release()
        #expect(Self.eventually { fake.unrefs == ["runvoy-01E.service"] })
    }
}
