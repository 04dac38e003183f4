import Foundation
import Glibc
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The queue in process, through the real spawner: waiters hear their place, leave on `cancel` and when their
/// client hangs up, and one whose turn comes when the disk is below its reserve fails without running.
@Suite(.serialized) struct QueueInProcessTests {
    actor Events {
        var received: [QueuedEvent] = []
        func add(_ event: QueuedEvent) { received.append(event) }
    }

    static func client(_ events: Events, hangup: Hangup = Hangup()) -> ExecutionManager.QueueClient {
        ExecutionManager.QueueClient(
            send: { await events.add($0) }, onHangup: { hangup.on($0) }, isGone: { hangup.isClosed })
    }

    @Test func waitersLeaveOnCancelAndHangupAndATurnBelowTheReserveDoesNotRun() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var config = fixture.config
        let index = try #require(config.executors.firstIndex { $0.name == "vault" })
        config.executors[index].concurrency = 1
        var full = config
        full.history.minFreeBytes = .max
        let manager = fixture.manager(PosixSpawner())
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        let hangup = Hangup()
        let (first, second, third) = (Events(), Events(), Events())
        try await ExecutionLifetimeTests.running(manager) {
            let holder = try await manager.start(
                ExecParams(argv: ["sleep", "600"]), requestID: .number(1), caller: root, config: config, sink: nil
            ) { _ in }
            func wait(
                _ events: Events, _ config: DaemonConfig, _ hangup: Hangup = Hangup()
            ) -> Task<
                RunvoyError.Code?, Never
            > {
                Task {
                    do {
                        _ = try await manager.start(
                            ExecParams(argv: ["true"], wait: true), requestID: .number(2), caller: root,
                            config: config, sink: nil, client: Self.client(events, hangup: hangup)
                        ) { _ in }
                        return nil
                    } catch {
                        return (error as? RunvoyError)?.code
                    }
                }
            }
            let belowReserve = wait(first, full)
            while manager.queuedCount < 1 { await Task.yield() }
            let cancelled = wait(second, config)
            while manager.queuedCount < 2 { await Task.yield() }
            let hungUp = wait(third, config, hangup)
            while await third.received.isEmpty { await Task.yield() }
            let places = [await first.received.first, await second.received.first, await third.received.first]
            #expect(places.map { $0?.position } == [1, 2, 3])
            #expect(
                places.allSatisfy { $0?.waitingFor == "concurrency" && $0?.holders.first?.executionId == holder.id })
            let secondID = try #require(places[1]?.executionId)
            // (Read first: a failed expectation would reflect the manager, whose state cannot be copied.)
            let queued = manager.isQueued(secondID)
            #expect(queued)
            let withdrew = manager.cancel(secondID, by: "the test")
            #expect(withdrew)
            #expect(!manager.cancel(secondID, by: "the test"))
            #expect(await cancelled.value == .cancelled)
            hangup.fire()
            #expect(await hungUp.value == .cancelled)
            #expect(manager.queuedCount == 1)
            holder.terminate()
            #expect(await belowReserve.value == .storeUnavailable)
            let rows = try fixture.store.list(ListParams(limit: 10), ownerUid: nil)
            let status = Dictionary(uniqueKeysWithValues: rows.map { ($0.executionId, $0.status) })
            let (firstID, thirdID) = (try #require(places[0]?.executionId), try #require(places[2]?.executionId))
            #expect(status[secondID] == .cancelled && status[thirdID] == .cancelled)
            #expect(status[firstID] == .failed)
        }
        let events = fixture.records().map(\.event)
        #expect(events.filter { $0 == "execution_queued" }.count == 3)
        #expect(events.filter { $0 == "execution_cancelled" }.count == 2)
    }
}

extension QueueInProcessTests {
    /// A reload that raises the caller's share starts what waited for it, at once.
    @Test func aReloadThatMakesRoomStartsTheWaiter() async throws {
        let fixture = try ExecLaunchTests.Fixture(limits: "{max_executions: 8, max_executions_per_user: 1}")
        let manager = fixture.manager(PosixSpawner())
        manager.limitsChanged(fixture.config)
        let nobody = try #require(UserDatabase.user(named: "nobody"))
        let caller = Caller.resolve(uid: nobody.uid, gid: nobody.gid, pid: getpid(), hasPidfd: false)
        let events = Events()
        let config = fixture.config
        try await ExecutionLifetimeTests.running(manager) {
            let holder = try await manager.start(
                ExecParams(argv: ["sleep", "600"]), requestID: .number(1), caller: caller, config: config,
                sink: nil
            ) { _ in }
            let waiter = Task {
                try await manager.start(
                    ExecParams(argv: ["true"], wait: true), requestID: .number(2), caller: caller,
                    config: config, sink: nil, client: Self.client(events)
                ) { _ in }
            }
            while await events.received.isEmpty { await Task.yield() }
            #expect(await events.received.first?.waitingFor == "user_share")
            var raised = config
            raised.limits.maxExecutionsPerUser = 2
            manager.limitsChanged(raised)
            let started = try await waiter.value
            #expect(await started.waitFinished().exitCode == 0)
            holder.terminate()
        }
    }
}

extension QueueInProcessTests {
    /// A reload that gives the executor a lock, or lowers its `concurrency`, applies to what already waits: the
    /// waiter waits for the lock (held by a running execution on another executor) and under the lower
    /// concurrency, and runs once there is room. (Before, it started under the old lock set and concurrency: on a
    /// reload whose digest differed it was cancelled at its turn, and it never waited for the new lock.)
    @Test func aReloadReplansWhatWaits() async throws {
        let fixture = try ExecLaunchTests.Fixture(failClosed: false)
        var config = fixture.config
        let vault = try #require(config.executors.firstIndex { $0.name == "vault" })
        config.executors[vault].concurrency = 2
        var locker = config.executors[vault]
        (locker.name, locker.isDefault, locker.concurrency) = ("locker", false, nil)
        locker.locks = [ExecutorLock(name: "deploy", shared: false)]
        config.executors.append(locker)
        let initial = config
        let manager = fixture.manager(PosixSpawner())
        manager.limitsChanged(config)
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        let events = Events()
        try await ExecutionLifetimeTests.running(manager) {
            func start(_ executor: String) async throws -> Execution {
                try await manager.start(
                    ExecParams(argv: ["sleep", "600"], executor: executor), requestID: .number(1), caller: root,
                    config: config, sink: nil
                ) { _ in }
            }
            let first = try await start("vault")
            let second = try await start("vault")
            let lockHolder = try await start("locker")
            let waiter = Task {
                try await manager.start(
                    ExecParams(argv: ["true"], executor: "vault", wait: true), requestID: .number(2), caller: root,
                    config: initial, sink: nil, client: Self.client(events)
                ) { _ in }
            }
            while await events.received.isEmpty { await Task.yield() }
            let id = try #require(await events.received.first?.executionId)
            var reloaded = config
            reloaded.digest = "reloaded"
            reloaded.executors[vault].concurrency = 1
            reloaded.executors[vault].locks = [ExecutorLock(name: "deploy", shared: false)]
            manager.limitsChanged(reloaded)
            // Two run on vault: the lower concurrency holds it, then the new lock does.
            first.terminate()
            while manager.runningCount > 2 { await Task.yield() }
            // (Read first: a failed expectation must not reflect the manager, whose state cannot be copied.)
            let waitsUnderTheLowerConcurrency = manager.isQueued(id)
            #expect(waitsUnderTheLowerConcurrency, "it started under the old concurrency")
            second.terminate()
            while manager.runningCount > 1 { await Task.yield() }
            let waitsForTheNewLock = manager.isQueued(id)
            #expect(waitsForTheNewLock, "it started without the new lock")
            lockHolder.terminate()
            let started = try await waiter.value
            let startedID = started.id
            #expect(startedID == id)
            #expect(await started.waitFinished().exitCode == 0)
        }
    }
}

extension QueueInProcessTests {
    /// The fixture's configuration with `vault` at `concurrency: 1`, a manager, and root running a holder there.
    static func serial(
        _ fixture: ExecLaunchTests.Fixture
    ) throws -> (DaemonConfig, ExecutionManager, Caller) {
        var config = fixture.config
        let vault = try #require(config.executors.firstIndex { $0.name == "vault" })
        config.executors[vault].concurrency = 1
        return (config, fixture.manager(PosixSpawner()), Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false))
    }

    static func waiter(
        _ manager: ExecutionManager, _ config: DaemonConfig, _ caller: Caller, _ events: Events,
        hangup: Hangup = Hangup()
    ) -> Task<RunvoyError.Code?, Never> {
        Task {
            do {
                _ = try await manager.start(
                    ExecParams(argv: ["true"], wait: true), requestID: .number(2), caller: caller, config: config,
                    sink: nil, client: Self.client(events, hangup: hangup)
                ) { _ in }
                return nil
            } catch {
                return (error as? RunvoyError)?.code
            }
        }
    }

    /// One caller queueing 40 executions and leaving with all of them writes 30 `execution_queued` and 30
    /// `execution_cancelled` records, and one summary of each with the 10 more: bounded, and no count lost.
    /// (Before, every one was written: a caller could flood the audit trail through the queue.)
    @Test func aFloodOfQueuedExecutionsIsAuditedBounded() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let (config, manager, root) = try Self.serial(fixture)
        let collector = Collector(fixture.journald)
        try await ExecutionLifetimeTests.running(manager) {
            let holder = try await manager.start(
                ExecParams(argv: ["sleep", "600"]), requestID: .number(1), caller: root, config: config, sink: nil
            ) { _ in }
            let hangup = Hangup()
            let waiters = (0..<40).map { _ in Self.waiter(manager, config, root, Events(), hangup: hangup) }
            while manager.queuedCount < 40 { await Task.yield() }
            hangup.fire()
            for waiter in waiters { #expect(await waiter.value == .cancelled) }
            holder.terminate()
        }
        let summaries = RecordingAuditor()
        manager.refusals.flush(all: true, audit: summaries)
        fixture.journal.drain(timeout: .seconds(10))
        let events = collector.finish().compactMap { datagram in
            datagram.split(separator: "\n").first { $0.hasPrefix("RUNVOY_EVENT=") }.map { String($0.dropFirst(13)) }
        }
        #expect(events.filter { $0 == "execution_queued" }.count == 30)
        #expect(events.filter { $0 == "execution_cancelled" }.count == 30)
        let counted = summaries.events.map { ($0.kind, Dictionary($0.fields) { $1 }["SUPPRESSED"]) }
        #expect(counted.contains { $0 == (.executionQueued, "10") }, "\(counted)")
        #expect(counted.contains { $0 == (.executionCancelled, "10") }, "\(counted)")
    }

    /// A waiter whose history row is no longer `queued` when its turn comes (it was ended meanwhile) does not run,
    /// and an `execution_cancelled` record says so. (Before, it left without a record.)
    @Test func aWaiterThatNoLongerWaitsAtItsTurnIsRecorded() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let (config, manager, root) = try Self.serial(fixture)
        let events = Events()
        try await ExecutionLifetimeTests.running(manager) {
            let holder = try await manager.start(
                ExecParams(argv: ["sleep", "600"]), requestID: .number(1), caller: root, config: config, sink: nil
            ) { _ in }
            let waiter = Self.waiter(manager, config, root, events)
            while await events.received.isEmpty { await Task.yield() }
            let id = try #require(await events.received.first?.executionId)
            try fixture.store.finish(id, .notStarted(reason: "ended elsewhere"))
            holder.terminate()
            #expect(await waiter.value == .cancelled)
        }
        let records = fixture.records()
        let cancelled = records.filter { $0.event == "execution_cancelled" }
        #expect(cancelled.count == 1 && cancelled.first?.reason?.contains("no longer waits") == true, "\(records)")
    }
}

/// Reads a fake journald's datagrams as they come (its socket holds only a few), until `finish`.
final class Collector: @unchecked Sendable {
    private let journald: JournalTests.FakeJournald
    private let received = Mutex<[String]>([])
    private let stopping = Mutex(false)
    private let done = DispatchSemaphore(value: 0)

    init(_ journald: JournalTests.FakeJournald) {
        self.journald = journald
        Thread { [self] in
            while !stopping.withLock({ $0 }) {
                let got = self.journald.receiveAll()
                received.withLock { $0 += got }
                usleep(500)
            }
            done.signal()
        }.start()
    }

    /// Every datagram received.
    func finish() -> [String] {
        stopping.withLock { $0 = true }
        done.wait()
        let rest = journald.receiveAll()
        return received.withLock { $0 + rest }
    }
}
