import Foundation
import Glibc
import NIOCore
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// A playbook's `locks` are held by its run from before its first step to after its last (review of playbooks,
/// H3): a claim of locks only through the admission scheduler, released when the run ends however it ends.
@Suite struct PlaybookRunLockSchedulerTests {
    typealias Scheduler = AdmissionScheduler<Int>

    static let limits = FairShares.Limits(total: 8, reserved: 0, perUser: 1, perUserWithoutRole: 1)

    static func request(
        _ id: Int, executor: String, locks: [String], hold: Bool = false, inRunHold: Bool = false
    ) -> Scheduler.Request {
        Scheduler.Request(
            id: id, uid: 1000, holder: .member, executor: executor, concurrency: hold ? nil : 1,
            locks: locks.map { Scheduler.LockClaim(name: $0, shared: false) }, inRunHold: inRunHold,
            line: inRunHold ? "run:1" : nil)
    }

    /// A run's hold takes its user's share and its steps use it (reviews 3 and 4: R3-M2, R4-M1): a user at its
    /// share holds no more locks, and nothing of its user's takes the share its steps need between them.
    @Test func aRunsHoldTakesTheShareItsStepsUseAndStillExcludes() {
        var scheduler = Scheduler()
        // The user's share is one execution: the run's hold takes it, its steps take none.
        #expect(
            scheduler.arrive(
                Self.request(1, executor: "playbook:p", locks: ["deploy"], hold: true), within: Self.limits)
                == [1])
        #expect(scheduler.shares.held(by: 1000) == 1)
        #expect(
            scheduler.arrive(Self.request(2, executor: "gated", locks: [], inRunHold: true), within: Self.limits)
                == [2])
        #expect(scheduler.shares.held(by: 1000) == 1)
        // Another execution of the user and another run of it wait for the share, whatever the locks.
        #expect(scheduler.arrive(Self.request(5, executor: "other", locks: []), within: Self.limits) == [])
        #expect(
            scheduler.arrive(
                Self.request(3, executor: "playbook:p", locks: ["deploy"], hold: true), within: Self.limits)
                == [])
        #expect(scheduler.blocker(of: Self.request(5, executor: "other", locks: []), within: Self.limits) != nil)
        // Between its steps the share stays the run's: its next step starts, the waiting execution does not.
        #expect(scheduler.finish(2, within: Self.limits) == [])
        #expect(
            scheduler.arrive(Self.request(6, executor: "gated", locks: [], inRunHold: true), within: Self.limits)
                == [6])
        #expect(scheduler.finish(6, within: Self.limits) == [])
        #expect(scheduler.locks["deploy"] == .exclusive(1))
        #expect(scheduler.shareDenial(ofRunning: 1, as: .member, within: Self.limits) == nil)
        // The run ends: the share goes to the older waiter, then the next run has it and the lock.
        #expect(scheduler.finish(1, within: Self.limits) == [5])
        #expect(scheduler.finish(5, within: Self.limits) == [3])
        #expect(scheduler.shares.held(by: 1000) == 1 && scheduler.locks["deploy"] == .exclusive(3))
        #expect(scheduler.finish(3, within: Self.limits) == [])
        #expect(scheduler.locks.isEmpty && scheduler.shares.held(by: 1000) == 0)
    }

    @Test func aRunHoldsALockExclusivelyWhenThePlaybookOrAnyStepsExecutorNamesItSo() {
        func executor(_ name: String, _ locks: [ExecutorLock]) -> ExecutorConfig {
            var config = ExecutorConfig(name: name, runAs: RunAs(user: "nobody", group: nil), commands: .any, line: 1)
            config.locks = locks
            return config
        }
        let playbook = [ExecutorLock(name: "db", shared: true), ExecutorLock(name: "deploy", shared: true)]
        let readers = executor("report", [ExecutorLock(name: "db", shared: true)])
        let writer = executor("migrate", [ExecutorLock(name: "deploy", shared: false)])
        #expect(
            PlaybookRun.runLocks(playbook, steps: [readers, writer]) == [
                ExecutorLock(name: "db", shared: true), ExecutorLock(name: "deploy", shared: false),
            ])
        // A run that holds locks holds its steps' executors' too; one that names none holds none.
        #expect(
            PlaybookRun.runLocks([ExecutorLock(name: "x", shared: false)], steps: [readers]) == [
                ExecutorLock(name: "db", shared: true), ExecutorLock(name: "x", shared: false),
            ])
        #expect(PlaybookRun.runLocks([], steps: [readers, writer]).isEmpty)
        // A step claims only what its run's hold does not cover: a lock it needs alone that the run holds shared
        // (after a reload changed its executor; the step is then refused), or one the run does not hold.
        let context = PlaybookStepContext(
            runID: "run-x", playbook: "p", step: "s", trusted: false, locks: playbook,
            definition: PlaybookConfig(name: "p", steps: [], file: "(test)"))
        #expect(
            context.locks(with: [
                ExecutorLock(name: "deploy", shared: false), ExecutorLock(name: "other", shared: true),
            ])
                == [ExecutorLock(name: "deploy", shared: false), ExecutorLock(name: "other", shared: true)])
        #expect(context.locks(with: [ExecutorLock(name: "db", shared: true)]).isEmpty)
    }
}

@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookRunLockTests {
    static var nobody: Caller { RouterTests.nobody }
    static var other: Caller { PlaybookReviewUnitTests.other }
    static let yaml = PlaybookReviewUnitTests.lockYAML

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    static func waitFor(_ file: String) -> [ArgvTemplate] {
        literal("sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file)
    }

    static func playbook(_ steps: [PlaybookStep], shared: Bool = false) -> PlaybookConfig {
        var playbook = PlaybookConfig(name: "locked", steps: steps, file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: shared)]
        playbook.access = AccessList(users: ["*"])
        return playbook
    }

    /// Starts `locked` and reads frames until `until` says stop (true) or the reply came; returns that frame.
    static func run(_ connection: ReviewConnection, until: (String) -> Bool = { _ in false }) async throws -> String {
        try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"locked"}}"#)
        return try await frames(connection, until: until)
    }

    /// Reads frames until the reply or until `until` says stop; returns that frame.
    static func frames(
        _ connection: ReviewConnection, until: (String) -> Bool = { _ in false }
    ) async throws
        -> String
    {
        try await connection.inner.framesUntilReply(stoppingAt: until).last ?? ""
    }

    /// `ReviewConnection.with` for a body that half-closes the connection (the server then closes it).
    static func withHangingUp(
        _ steps: [PlaybookStep], _ body: (ReviewConnection) async throws -> Void
    ) async throws {
        do {
            try await ReviewConnection.with(
                caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.playbook(steps)], body)
        } catch ChannelError.alreadyClosed {
            // The server closed it already.
        }
    }

    static func started(_ step: String) -> (String) -> Bool {
        { $0.contains(#""event":"step""#) && $0.contains(#""name":"\#(step)""#) && $0.contains(#""state":"started""#) }
    }

    /// An execution on `locker` (which names `deploy`) by another user: it must start (and it ends at once).
    static func lockerRuns(_ connection: ReviewConnection, wait: Bool) async throws {
        var params = ExecParams(argv: ["true"], executor: "locker", wait: wait)
        if wait { params.waitTimeoutMs = 600_000 }
        let execution = try await connection.inner.executions.start(
            params, requestID: nil, caller: Self.other, config: connection.store.current, sink: nil
        ) { _ in }
        #expect(await execution.waitFinished().exitCode == 0)
    }

    @Test func aSecondRunOfThePlaybookWaitsUntilTheFirstEnds() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let steps = [PlaybookStep(name: "first", executor: nil, argv: Self.waitFor(file), line: 1)]
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.playbook(steps)]) {
            connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                _ = try await Self.run(connection, until: Self.started("first"))
                // `locks` names the run as the holder, by its run id.
                let table = executions.lockTable(connection.store.current, for: PlaybookRunInProcessTests.root)
                let holder = table.first { $0.name == "deploy" }?.holders.first
                #expect(holder?.executionId?.hasPrefix("run-") == true, "\(String(describing: holder))")
                #expect(holder?.shared == false)
                // A second run of the playbook (another user's), through the same path a run takes its locks.
                let second = PlaybookRun(
                    id: "run-" + ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds())),
                    playbook: Self.playbook(steps), values: [:], steps: [],
                    locks: [ExecutorLock(name: "deploy", shared: false)], caller: Self.other,
                    config: connection.store.current, requestID: .number(9), reason: nil, schedule: nil)
                let waiting = Task { try await executions.holdRunLocks(second, client: nil) }
                let deadline = ContinuousClock.now + .seconds(900)
                while !executions.isQueued(second.id), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(executions.isQueued(second.id), "the second run waits for the first run's lock")
                // No exec on an executor naming the lock comes between them either.
                let refusal = await #expect(throws: RunvoyError.self) {
                    try await Self.lockerRuns(connection, wait: false)
                }
                #expect(refusal?.code == .busy)
                // The run is another user's: named as such to who may not see that user's executions.
                #expect(
                    refusal?.message.contains("another user's playbook run") == true, "\(String(describing: refusal))")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                let reply = try await Self.frames(connection)
                #expect(reply.contains(#""state":"succeeded""#), "\(reply)")
                let ticket = try await waiting.value
                #expect(ticket != nil)
                #expect(!executions.isQueued(second.id))
                executions.releaseRunLocks(ticket)
                try await Self.lockerRuns(connection, wait: false)
            }
        }
    }

    @Test func aUserWithAShareOfOneRunsALockedPlaybookOfTwoSteps() async throws {
        let steps = [
            PlaybookStep(name: "first", executor: nil, argv: Self.literal("true"), line: 1),
            PlaybookStep(name: "second", executor: "gated", argv: Self.literal("true"), line: 2),
        ]
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.playbook(steps)]) {
            connection in
            var config = connection.store.current
            config.limits.maxExecutionsPerUser = 1
            connection.store.replace(with: config)
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let reply = try await Self.run(connection)
                #expect(reply.contains(#""state":"succeeded""#), "\(reply)")
                try await Self.lockerRuns(connection, wait: false)
            }
        }
    }

    @Test func aStepWhoseExecutorNamesThePlaybooksLockRuns() async throws {
        let steps = [
            PlaybookStep(name: "first", executor: "locker", argv: Self.literal("true"), line: 1),
            PlaybookStep(name: "second", executor: "locker", argv: Self.literal("true"), line: 2),
        ]
        // The playbook shares `deploy`, `locker` needs it alone: the run holds it alone, its steps not again.
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.playbook(steps, shared: true)]
        ) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let reply = try await Self.run(connection)
                #expect(reply.contains(#""state":"succeeded""#), "\(reply)")
                try await Self.lockerRuns(connection, wait: false)
            }
        }
    }

    @Test func theLockIsGivenBackWhenARunFailsMidway() async throws {
        let steps = [
            PlaybookStep(name: "first", executor: nil, argv: Self.literal("false"), line: 1),
            PlaybookStep(name: "second", executor: "gated", argv: Self.literal("true"), line: 2),
        ]
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.playbook(steps)]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let reply = try await Self.run(connection)
                #expect(reply.contains(#""state":"failed""#), "\(reply)")
                try await Self.lockerRuns(connection, wait: false)
            }
        }
    }

    @Test func theLockIsGivenBackWhenTheClientGoesMidRun() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let steps = [
            PlaybookStep(name: "first", executor: nil, argv: Self.waitFor(file), line: 1),
            PlaybookStep(name: "second", executor: "gated", argv: Self.literal("true"), line: 2),
        ]
        try await Self.withHangingUp(steps) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                _ = try await Self.run(connection, until: Self.started("first"))
                let channel = connection.inner.channel
                try await channel.testingEventLoop.executeInContext {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
                }
                // The first step is killed, the run ends and gives `deploy` back: this waits for it, then runs.
                try await Self.lockerRuns(connection, wait: true)
                let rows = try connection.inner.executions.store.list(ListParams(limit: 100), ownerUid: nil)
                #expect(!rows.contains { $0.executor == "gated" }, "no step runs after its client went away")
            }
        }
    }

    @Test func aRunWhoseClientGoesWhileItWaitsForItsLocksRunsNoStep() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let steps = [PlaybookStep(name: "first", executor: nil, argv: Self.literal("true"), line: 1)]
        try await Self.withHangingUp(steps) { connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                // Another user's execution holds `deploy` until the gate opens.
                let holder = try await executions.start(
                    ExecParams(
                        argv: ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file], executor: "locker",
                        timeoutMs: 600_000),
                    requestID: nil, caller: Self.other, config: connection.store.current, sink: nil
                ) { _ in }
                let queued = try await Self.run(connection) { $0.contains(#""event":"queued""#) }
                #expect(queued.contains(#""waiting_for":"lock""#), "\(queued)")
                let channel = connection.inner.channel
                try await channel.testingEventLoop.executeInContext {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
                }
                let deadline = ContinuousClock.now + .seconds(900)
                while executions.queuedCount > 0, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(executions.queuedCount == 0, "the run left the queue when its client went")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                _ = await holder.waitFinished()
                try await Self.lockerRuns(connection, wait: false)
                let rows = try executions.store.list(ListParams(limit: 100), ownerUid: nil)
                #expect(!rows.contains { $0.argv == ["true"] && $0.executor == "default" }, "no step ran")
            }
        }
    }
}
