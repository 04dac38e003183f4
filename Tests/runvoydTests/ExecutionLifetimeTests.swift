import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// An execution that has ended is given back: nothing the daemon keeps (a timer, a task, a table) holds it.
///
/// A cancelled `Task.sleep` keeps its task, and whatever the task captured, until its deadline. Each execution's
/// timeout timer was one, so with a one-hour timeout every execution of the last hour stayed in memory (about
/// 1 KB each). This counts live `Execution` objects instead of measuring memory. This is the only suite in this
/// target that makes executions, and it runs its tests one at a time, so the count is each test's own.
@Suite(.serialized) struct ExecutionLifetimeTests {
    @Test func finishedExecutionsAreReleasedBeforeTheirTimeout() async throws {
        var template = Array("/tmp/runvoyd-lifetime-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let user = try #require(UserDatabase.user(uid: geteuid()))
        let group = UserDatabase.groupName(gid: getegid()) ?? String(getegid())
        let config = ConfigLoader.embeddedDefault(stateRoot: directory, runAsUser: user.name, runAsGroup: group)
        let store = try ExecutionStore(stateDirectory: config.stateDirectory)
        let secrets = try SecretStore(store: store, key: try #require(MasterKey.parse(Array(repeating: 7, count: 32))))
        let logger = Logger(label: "ExecutionLifetimeTests")
        let manager = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: store, secrets: secrets,
            refusals: RefusalThrottle(logger: logger)
        ) { _ in }
        let caller = Caller.resolve(uid: geteuid(), gid: getegid(), pid: getpid(), hasPidfd: false)

        let count = 20
        try await Self.running(manager) {
            for _ in 0..<count {
                // An hour to run: the timeout timer outlives this test unless it is given back when the command ends.
                let execution = try await manager.start(
                    ExecParams(argv: ["true"], timeoutMs: 3_600_000), requestID: nil, caller: caller, config: config,
                    sink: nil
                ) { _ in }
                let exit = await execution.waitFinished()
                #expect(exit.exitCode == 0)
            }
        }
        #expect(manager.startedCount == count)

        // Wait for the event (the last reference going away), bounded so that a regression fails instead of
        // hanging; no duration is asserted.
        let deadline = ContinuousClock.now + .seconds(60)
        while (Execution.live.load(ordering: .relaxed) > 0 || manager.runningCount > 0)
            && ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(manager.runningCount == 0)
        #expect(Execution.live.load(ordering: .relaxed) == 0, "executions still held after they ended")
    }

    /// Runs `body` while `manager` runs as the service it is in the daemon, then shuts it down.
    static func running(_ manager: ExecutionManager, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await manager.run() }
            do {
                try await body()
            } catch {
                await manager.shutdown(grace: .zero, killGrace: .zero)
                tasks.cancelAll()
                throw error
            }
            await manager.shutdown(grace: .seconds(60), killGrace: .seconds(1))
            // Outside a service group nothing asks it to stop gracefully: it waits until cancelled.
            tasks.cancelAll()
        }
    }

    /// Collects what an execution sends its client.
    actor CollectingSink: OutputSink {
        var output: [OutputStreamKind: [UInt8]] = [:]
        var exit: ExitEvent?

        func output(_ stream: OutputStreamKind, _ chunk: ByteBuffer) async throws {
            output[stream, default: []] += chunk.readableBytesView
        }

        func exit(_ event: ExitEvent) async throws { exit = event }
    }

    /// A whole execution in process, through the real spawner: output reaches the client redacted, and the end
    /// reaches the history and the audit trail after the two records written before it started.
    @Test func anExecutionRunsInProcessAndRecordsItsEnd() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let manager = fixture.manager(PosixSpawner())
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        let sink = CollectingSink()
        var exit: ExitEvent?
        try await Self.running(manager) {
            let execution = try await manager.start(
                ExecParams(argv: ["sh", "-c", "echo \"out $TOKEN\"; cat \"$TOKEN_FILE\" >&2; exit 3"]),
                requestID: .number(8), caller: root, config: fixture.config, sink: sink
            ) { _ in }
            #expect(manager.running(id: execution.id) === execution)
            exit = await execution.waitFinished()
            #expect(manager.running(id: execution.id) == nil)
        }
        #expect(exit?.exitCode == 3)
        #expect(await sink.exit == exit)
        let stdout = String(decoding: await sink.output[.stdout] ?? [], as: UTF8.self)
        let stderr = String(decoding: await sink.output[.stderr] ?? [], as: UTF8.self)
        #expect(stdout.hasPrefix("out ") && !stdout.contains("s3cret"))
        #expect(!stderr.isEmpty && !stderr.contains("s3cret"))
        let row = try fixture.row()
        #expect(row.status == .failed && row.exitCode == 3 && row.pid != nil)
        #expect(fixture.secretFolders.isEmpty)
        #expect(fixture.records().map(\.event) == ["decision", "execution_started", "execution_finished"])
    }

    /// Shutdown stops admitting, gives what runs the grace, then terminates it (SIGKILL after the kill grace for a
    /// command that ignores SIGTERM) and returns only once the executions' task group has ended, every end recorded.
    @Test func shutdownTerminatesWhatOutlivesTheGraceAndAwaitsTheGroup() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let manager = fixture.manager(PosixSpawner())
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await manager.run() }
            let sink = CollectingSink()
            let execution = try await manager.start(
                ExecParams(argv: ["sh", "-c", "trap '' TERM; echo ready; sleep 600"]), requestID: .number(9),
                caller: root, config: fixture.config, sink: sink
            ) { _ in }
            // Only once the shell ignores SIGTERM (it said so) does SIGKILL have to end it: on a slow machine
            // (ThreadSanitizer) SIGTERM could otherwise arrive before the trap.
            let deadline = ContinuousClock.now + .seconds(60)
            while await sink.output[.stdout] == nil && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            await manager.shutdown(grace: .zero, killGrace: .zero)
            // (Read first: a failed expectation would reflect the execution, whose state cannot be copied, and crash.)
            let finished = execution.isFinished
            #expect(finished)
            #expect(manager.runningCount == 0)
            do {
                _ = try await manager.start(
                    ExecParams(argv: ["true"]), requestID: nil, caller: root, config: fixture.config, sink: nil
                ) { _ in }
                Issue.record("admitted while shutting down")
            } catch {
                #expect(error as? RunvoyError == RunvoyError(.busy, "runvoyd is shutting down"))
            }
            tasks.cancelAll()
        }
        let rows = try fixture.store.list(ListParams(status: [.killed]), ownerUid: nil)
        #expect(rows.count == 1 && rows.first?.signal == SIGKILL)
    }

    /// A cancelled `Task.sleep` keeps its task and its dispatch timer until the deadline (swiftlang/swift#60441):
    /// code that arms a timer per execution, connection or request and cancels it early must use the event
    /// loop's `scheduleTask`, whose cancellation frees it at once. Only the daemon's few long-lived loops, which
    /// sleep once at a time, may use `Task.sleep`. The retained memory is inside the runtime, where no counter
    /// reaches, so this names the cause instead (scripts/bench-soak measures the effect).
    @Test func perExecutionTimersDoNotSleepOnTasks() throws {
        let longLived: Set<String> = [
            "HistoryCheckpointer.swift", "HistoryPruner.swift", "RefusalThrottle.swift", "WatchdogService.swift",
            "MemoryTrimmer.swift", "MetricsTextfile.swift",
            // The schedule manager's retry of a timer whose name is still loaded: one actor, at start and reload.
            "ScheduleManager+Units.swift",
        ]
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/RunvoyDaemon")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path)).compactMap { $0 as? String }
        #expect(files.contains("Executors/Execution.swift"))
        var offenders: [String] = []
        for file in files where file.hasSuffix(".swift") && !longLived.contains((file as NSString).lastPathComponent) {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("Task.sleep(") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                offenders.append("\(file):\(number + 1)")
            }
        }
        #expect(offenders.isEmpty, "Task.sleep in per-request code: \(offenders)")
    }

    /// A sandboxed executor's execution, in process against `FakeSystemd`: the command's output comes through the
    /// pipe the unit was given, redacted; its exit status is the unit's; its environment file and secret folder
    /// are gone at the end and the unit is released.
    @Test func aSandboxedExecutionRunsAsAUnit() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var config = fixture.config
        var boxed = try #require(config.executor(named: "vault"))
        boxed.name = "boxed"
        boxed.isDefault = false
        boxed.sandbox = SandboxConfig(properties: [SandboxProperty(name: "PrivateTmp", value: .boolean(true))])
        config.executors.append(boxed)
        let fake = try FakeSystemd(output: "token s3cret\n")
        defer { fake.stop() }
        let units = UnitContainment(
            booted: true, root: true, cgroupMount: "/nonexistent", connect: { SystemdBus.connect(fd: fake.clientFD) })
        let manager = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: fixture.logger, store: fixture.store,
            secrets: fixture.secrets, refusals: RefusalThrottle(logger: fixture.logger), journal: fixture.journal,
            units: units
        ) { _ in }
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        let sink = CollectingSink()
        var exit: ExitEvent?
        try await Self.running(manager) {
            let execution = try await manager.start(
                ExecParams(argv: ["sh", "-c", "exit 3"], executor: "boxed"), requestID: .number(10), caller: root,
                config: config, sink: sink
            ) { _ in }
            #expect(execution.pid == 4242)
            #expect(execution.signal(0) == false, "no process of the unit's cgroup is the daemon's to signal here")
            let path = try #require(fake.unitPaths.first)
            fake.finish(path, code: 1, status: 3)
            exit = await execution.waitFinished()
        }
        #expect(exit?.exitCode == 3)
        #expect(String(decoding: await sink.output[.stdout] ?? [], as: UTF8.self) == "token [secret:token]\n")
        let row = try fixture.row()
        #expect(row.status == .failed && row.exitCode == 3 && row.usage?.source == "unit")
        #expect(fixture.secretFolders.isEmpty, "\(fixture.secretFolders)")
        #expect(fixture.records().map(\.event) == ["decision", "execution_started", "execution_finished"])
        #expect(SystemdBusTests.eventually { fake.unrefs.count == 1 })
    }

}
