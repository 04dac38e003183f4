import Foundation
import Glibc
import NIOPosix
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/CONFIGURATION.md, "Named locks": an execution holds its locks until it ends, however it ends, the daemon
/// shutting down included. In process through the real spawner: shutdown ends the holders, and afterwards no lock
/// is held, no ticket runs and the execution that waited for the lock left without running.
@Suite struct ShutdownLockTests {
    @Test func shutdownGivesBackEveryLockAndRunsNoWaiter() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        var configured = fixture.config
        let vault = try #require(configured.executors.firstIndex { $0.name == "vault" })
        var writer = configured.executors[vault]
        (writer.name, writer.isDefault) = ("writer", false)
        writer.locks = [ExecutorLock(name: "deploy", shared: false)]
        var reader = writer
        reader.name = "reader"
        reader.locks = [ExecutorLock(name: "reports", shared: true)]
        configured.executors += [writer, reader]
        let config = configured
        let manager = fixture.manager(PosixSpawner())
        manager.limitsChanged(config)
        let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
        let events = QueueInProcessTests.Events()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await manager.run() }
            func start(_ executor: String) async throws -> Execution {
                try await manager.start(
                    ExecParams(argv: ["sleep", "600"], executor: executor), requestID: .number(1), caller: root,
                    config: config, sink: nil
                ) { _ in }
            }
            let holders = [try await start("writer"), try await start("reader"), try await start("reader")]
            let waiter = Task { () -> RunvoyError.Code? in
                do {
                    _ = try await manager.start(
                        ExecParams(argv: ["true"], executor: "writer", wait: true), requestID: .number(2),
                        caller: root, config: config, sink: nil, client: QueueInProcessTests.client(events)
                    ) { _ in }
                    return nil
                } catch {
                    return (error as? RunvoyError)?.code
                }
            }
            while manager.queuedCount < 1 { await Task.yield() }
            let before = manager.admissionSnapshot().scheduler
            #expect(before.locks.keys.sorted() == ["deploy", "reports"], "\(before.locks)")
            // The holders run `sleep 600`: only the shutdown (grace over, SIGTERM) ends them.
            await manager.shutdown(grace: .milliseconds(100), killGrace: .seconds(30))
            tasks.cancelAll()
            #expect(await waiter.value == .cancelled)
            for holder in holders {
                #expect(await holder.waitFinished().exitCode == nil)
            }
            let after = manager.admissionSnapshot().scheduler
            #expect(after.locks.isEmpty, "locks still held after shutdown: \(after.locks)")
            #expect(after.running.isEmpty, "tickets still running after shutdown: \(after.running.keys)")
            let table = manager.lockTable(config, for: root)
            #expect(table.allSatisfy { $0.holders.isEmpty && $0.waiters.isEmpty }, "\(table)")
        }
    }
}
