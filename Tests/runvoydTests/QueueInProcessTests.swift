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
            #expect(manager.isQueued(secondID))
            #expect(manager.cancel(secondID, by: "the test"))
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
