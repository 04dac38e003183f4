import Foundation
import Glibc
import NIOCore
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Second security review of playbooks (bypasses of the first review's fixes): each test is a finding of
/// docs/REVIEW-playbooks.md ("Second review") and fails on the code it was written against.
@Suite struct PlaybookReview2SchedulerTests {
    typealias Scheduler = AdmissionScheduler<Int>

    static let limits = FairShares.Limits(total: 8, reserved: 0, perUser: 4, perUserWithoutRole: 4)

    static func executor(_ name: String, _ lock: String) -> ExecutorConfig {
        var config = ExecutorConfig(name: name, runAs: RunAs(user: "nobody", group: nil), commands: .any, line: 1)
        config.locks = [ExecutorLock(name: lock, shared: false)]
        return config
    }

    static func claims(_ locks: [ExecutorLock]) -> [Scheduler.LockClaim] {
        locks.map { Scheduler.LockClaim(name: $0.name, shared: $0.shared) }
    }

    /// R2-M1: playbook `a` locks `x` and has a step on `on-y` (which names `y`); playbook `b` locks `y` and has a
    /// step on `on-x`. Two users run them at once. Were each run to hold only its playbook's lock and its step to
    /// wait for the other's, neither would ever start. A run that holds locks therefore takes every lock its steps'
    /// executors name too, all at once (`PlaybookRun.runLocks`): run `b` waits for run `a`, whose step claims
    /// nothing more and starts; when run `a` ends, run `b` holds its locks and its step starts.
    @Test func twoRunsWhoseStepsNeedEachOthersPlaybookLockDoNotDeadlock() {
        let x = ExecutorLock(name: "x", shared: false)
        let y = ExecutorLock(name: "y", shared: false)
        let onX = Self.executor("on-x", "x")
        let onY = Self.executor("on-y", "y")
        let empty = PlaybookConfig(name: "a", steps: [], file: "(test)")
        let locksA = PlaybookRun.runLocks([x], steps: [onY])
        let locksB = PlaybookRun.runLocks([y], steps: [onX])
        #expect(locksA == [x, y] && locksB == [x, y])
        let stepA = PlaybookStepContext(
            runID: "run-a", playbook: "a", step: "s", trusted: false, locks: locksA, definition: empty)
        let stepB = PlaybookStepContext(
            runID: "run-b", playbook: "b", step: "s", trusted: false, locks: locksB, definition: empty)
        var scheduler = Scheduler()
        let holdA = Scheduler.Request(
            id: 1, uid: 1000, holder: .member, executor: ExecutionManager.runLockKey("a"), concurrency: nil,
            locks: Self.claims(locksA))
        let holdB = Scheduler.Request(
            id: 2, uid: 1001, holder: .member, executor: ExecutionManager.runLockKey("b"), concurrency: nil,
            locks: Self.claims(locksB))
        #expect(scheduler.arrive(holdA, within: Self.limits) == [1])
        #expect(scheduler.arrive(holdB, within: Self.limits) == [], "run b waits for run a's locks")
        // Each run's first step: its executor's locks but those its run holds: none.
        #expect(stepA.locks(with: onY.locks).isEmpty && stepB.locks(with: onX.locks).isEmpty)
        let firstA = Scheduler.Request(
            id: 3, uid: 1000, holder: .member, executor: "on-y", concurrency: nil,
            locks: Self.claims(stepA.locks(with: onY.locks)))
        #expect(scheduler.arrive(firstA, within: Self.limits) == [3], "run a's step starts")
        #expect(scheduler.finish(3, within: Self.limits) == [])
        #expect(scheduler.finish(1, within: Self.limits) == [2], "run a ended: run b holds its locks")
        let firstB = Scheduler.Request(
            id: 4, uid: 1001, holder: .member, executor: "on-x", concurrency: nil,
            locks: Self.claims(stepB.locks(with: onX.locks)))
        #expect(scheduler.arrive(firstB, within: Self.limits) == [4], "run b's step starts")
    }
}

@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookReview2Tests {
    static var nobody: Caller { RouterTests.nobody }
    static var other: Caller { PlaybookReviewUnitTests.other }

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    // MARK: - R2-M2: a step waits behind its own user's execution that waits for the run's lock

    /// R2-M2: a developer runs `locked` (locks `deploy`; its second step on `locker`, which names `deploy`) and,
    /// meanwhile, `exec --wait` on `locker` (it waits for `deploy`, held by the run). The run's second step then
    /// waits behind that older execution of its user on the same executor (first come first served within a user),
    /// which waits for the run's lock, which is given back only after the step: neither ever starts, and `deploy`
    /// is held for as long as the client stays (every other user's execution that names it waits too).
    @Test func aStepDoesNotWaitBehindItsUsersExecutionThatWaitsForTheRunsLock() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        var playbook = PlaybookConfig(
            name: "locked",
            steps: [
                PlaybookStep(name: "first", executor: nil, argv: PlaybookRunLockTests.waitFor(file), line: 1),
                PlaybookStep(name: "second", executor: "locker", argv: Self.literal("true"), line: 2),
            ], file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: false)]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                _ = try await PlaybookRunLockTests.run(connection, until: PlaybookRunLockTests.started("first"))
                // The same user, from another terminal: an execution on `locker` that waits for `deploy`.
                let config = connection.store.current
                let mine = Task {
                    var params = ExecParams(argv: ["true"], executor: "locker", wait: true)
                    params.waitTimeoutMs = 600_000
                    let execution = try await executions.start(
                        params, requestID: nil, caller: Self.nobody, config: config, sink: nil
                    ) { _ in }
                    _ = await execution.waitFinished()
                }
                defer { mine.cancel() }
                let deadline = ContinuousClock.now + .seconds(900)
                while executions.queuedCount < 1, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(executions.queuedCount == 1, "the user's execution waits for the run's lock")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                // The second step either starts (sound) or is queued.
                let frame = try await PlaybookRunLockTests.frames(connection) {
                    $0.contains(#""event":"queued""#) || PlaybookRunLockTests.started("second")($0)
                }
                guard frame.contains(#""event":"queued""#) else { return }
                let (scheduler, _, holds) = executions.admissionSnapshot()
                let waiters = scheduler.waiters
                let step = try #require(waiters.first { $0.executor == "locker" && $0.locks.isEmpty })
                let exec = try #require(waiters.first { $0.executor == "locker" && !$0.locks.isEmpty })
                let stepBlocker = scheduler.blocker(of: step, within: .unlimited)
                let execBlocker = scheduler.blocker(of: exec, within: .unlimited)
                let runHoldsDeploy = scheduler.running.contains {
                    holds[$0.key] != nil && $0.value.locks.contains { $0.name == "deploy" }
                }
                #expect(
                    !(stepBlocker == .earlier(exec.id) && execBlocker == .lock("deploy") && runHoldsDeploy),
                    "deadlock: the run's step waits for \(String(describing: stepBlocker)) (its user's execution), which waits for \(String(describing: execBlocker)) held by the run itself"
                )
                // Undo the cycle so the run can end: the user's execution leaves the queue.
                executions.leave(exec.id, RunvoyError(.cancelled, "review test"), cause: "cancelled")
                let reply = try await PlaybookRunLockTests.frames(connection)
                #expect(reply.contains(#""result":"#), "\(reply)")
            }
        }
    }

    // MARK: - R2-M5: runs that wait for their locks are metered by nothing but the request rate

    /// R2-M5: an `exec --wait` that cannot start takes one of its user's `exec_rate` tokens before it waits in the
    /// queue (with a history row and an audit record), so a user's queue grows no faster than `exec_rate`. A
    /// playbook run that waits for its locks takes none (its first step would, once it has the locks): with
    /// `exec_rate: 2/10m`, one connection queues any number of runs behind the first (each a `playbook_runs` row
    /// `running`, a `playbook_run_started` record, a waiter and a task for as long as the client stays), bounded
    /// only by `request_rate` (6000 a minute by default).
    @Test func runsThatWaitForTheirLocksAreMeteredByTheExecutionRate() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        var playbook = PlaybookConfig(
            name: "locked",
            steps: [PlaybookStep(name: "first", executor: nil, argv: PlaybookRunLockTests.waitFor(file), line: 1)],
            file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: false)]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.execRate = .perPeriod(count: 2, period: .seconds(600))
            connection.store.replace(with: config)
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                _ = try await PlaybookRunLockTests.run(connection, until: PlaybookRunLockTests.started("first"))
                let extra = 8
                for id in 100..<(100 + extra) {
                    try await connection.inner.send(
                        #"{"v":1,"id":\#(id),"method":"playbook_run","params":{"name":"locked"}}"#)
                }
                var queued = Set<Int>()
                var refused = Set<Int>()
                while queued.count + refused.count < extra {
                    let frame = try await connection.inner.nextFrame()
                    // A reply's `id` may be its last member (`"id":100}`), an event's is not.
                    for id in 100..<(100 + extra)
                    where frame.contains(#""id":\#(id),"#) || frame.contains(#""id":\#(id)}"#) {
                        if frame.contains(#""event":"queued""#) { queued.insert(id) }
                        if InProcessConnection.isReply(frame), frame.contains(#""error":"#) { refused.insert(id) }
                    }
                }
                #expect(
                    queued.count < extra,
                    "\(queued.count) runs wait for their locks with exec_rate 2/10m spent; \(executions.queuedCount) waiters"
                )
                // Let them all end: each later run gets the lock, and its step is refused by the rate.
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                var replies = 0
                while replies < 1 + queued.count {
                    if InProcessConnection.isReply(try await connection.inner.nextFrame()) { replies += 1 }
                }
            }
        }
    }

    // MARK: - R2-L2: a waiter blocked by a run's hold is not told who holds its lock

    /// R2-L2: PROTOCOL.md (`locks`, and the queue) says a waiter's `queued` events say `waiting_for: "lock"` and
    /// name the holders ("another user" without id to who may not see them); `busy` and `locks` name a run's hold.
    /// Another user's `exec --wait` on `locker` while a run of `locked` holds `deploy` is told it waits for a lock
    /// that no one holds: its `holders` is empty (only executions are looked up, not run holds).
    @Test func aWaiterBlockedByARunsHoldIsToldThatSomeoneHoldsItsLock() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        var playbook = PlaybookConfig(
            name: "locked",
            steps: [PlaybookStep(name: "first", executor: nil, argv: PlaybookRunLockTests.waitFor(file), line: 1)],
            file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: false)]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                _ = try await PlaybookRunLockTests.run(connection, until: PlaybookRunLockTests.started("first"))
                let events = Mutex<[QueuedEvent]>([])
                let client = ExecutionManager.QueueClient(
                    send: { event in events.withLock { $0.append(event) } }, onHangup: { _ in {} },
                    isGone: { false })
                let config = connection.store.current
                let waiter = Task {
                    var params = ExecParams(argv: ["true"], executor: "locker", wait: true)
                    params.waitTimeoutMs = 600_000
                    let execution = try await executions.start(
                        params, requestID: nil, caller: Self.other, config: config, sink: nil, client: client
                    ) { _ in }
                    _ = await execution.waitFinished()
                }
                let deadline = ContinuousClock.now + .seconds(900)
                while events.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let first = try #require(events.withLock { $0.first })
                #expect(first.waitingFor == "lock")
                #expect(!first.holders.isEmpty, "the waiter is told no one holds the lock it waits for: \(first)")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                _ = try await PlaybookRunLockTests.frames(connection)
                try await waiter.value
            }
        }
    }

    // MARK: - R2-M3: a reload that makes a step's executor name the run's lock exclusively

    /// `reader` shares `deploy`; `target` shares it too until the reload below makes it exclusive.
    static let sharedYAML =
        PlaybookRunInProcessTests.yaml + """

              reader:
                description: Reads under deploy
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                locks: [{name: deploy, shared: true}]
                allow:
                  users: ["*"]
                commands: any
              target:
                description: Writes under deploy after the reload
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                locks: [{name: deploy, shared: true}] # target
                allow:
                  users: ["*"]
                commands: any
            """

    /// R2-M3: a run of `shared` (locks `deploy` shared; its steps' executors share it too, so the run holds it
    /// shared) is under way when a reload makes `target` name `deploy` exclusively. The next step, on `target`,
    /// is re-planned under the new configuration (H1) but takes none of `deploy` (its run holds it) and the run's
    /// hold stays shared: the step runs on `target` while another user's execution on `reader` holds `deploy`
    /// shared beside it, which `target`'s exclusive lock exists to stop.
    @Test func aStepWhoseExecutorNowNamesTheRunsLockExclusivelyDoesNotRunBesideItsReaders() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let (directory2, file2) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory2) }
        var playbook = PlaybookConfig(
            name: "locked",
            steps: [
                PlaybookStep(name: "first", executor: nil, argv: PlaybookRunLockTests.waitFor(file), line: 1),
                PlaybookStep(name: "second", executor: "target", argv: PlaybookRunLockTests.waitFor(file2), line: 2),
            ], file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: true)]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.sharedYAML, playbooks: [playbook]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                _ = try await PlaybookRunLockTests.run(connection, until: PlaybookRunLockTests.started("first"))
                let exclusive = Self.sharedYAML.replacingOccurrences(
                    of: "[{name: deploy, shared: true}] # target", with: "[deploy]")
                #expect(exclusive != Self.sharedYAML, "the reload must make `target` name `deploy` exclusively")
                var reloaded = try ConfigLoader.parse(
                    yaml: exclusive.replacingOccurrences(of: "/nonexistent", with: connection.directory),
                    file: "(test)")
                reloaded.playbooks = connection.store.current.playbooks
                connection.store.replace(with: reloaded)
                #expect(connection.store.current.executor(named: "target")?.locks.first?.shared == false)
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                let frame = try await PlaybookRunLockTests.frames(
                    connection, until: PlaybookRunLockTests.started("second"))
                if PlaybookRunLockTests.started("second")(frame) {
                    // While the step runs on `target`, another user's execution shares `deploy` on `reader`.
                    let refusal = await #expect(throws: RunvoyError.self) {
                        let execution = try await connection.inner.executions.start(
                            ExecParams(argv: ["true"], executor: "reader", wait: false), requestID: nil,
                            caller: Self.other, config: connection.store.current, sink: nil
                        ) { _ in }
                        _ = await execution.waitFinished()
                    }
                    #expect(
                        refusal?.code == .busy,
                        "an execution sharing `deploy` ran while a step ran on `target`, which now needs `deploy` alone"
                    )
                    #expect(FileManager.default.createFile(atPath: file2, contents: Data()))
                    _ = try await PlaybookRunLockTests.frames(connection)
                }
            }
        }
    }

    // MARK: - R2-M4 and R2-L1: explain of a playbook's step

    static var viewerYAML: String {
        PlaybookRunInProcessTests.yaml.replacingOccurrences(
            of: "  developer: {users: [\"*\"]}\n", with: "  viewer: {users: [\"*\"]}\n")
    }

    static func error(_ reply: [String: Any]) -> (code: String?, message: String) {
        let error = reply["error"] as? [String: Any]
        return (error?["code"] as? String, error?["message"] as? String ?? "")
    }

    /// R2-M4: `playbook_show` tells a user outside a playbook's access list nothing about it (permission_denied),
    /// and a viewer (no `exec`) that it does not exist; `explain` with `playbook` and `step` needs only
    /// `executors_read` and tells both the command the step would run (argv template with defaults and values
    /// rendered), whether the administrator trusts it, every step's name (an unknown step's error) and the
    /// parameters' names and rules (a refusal of the values).
    @Test func explainOfAStepTellsWhoMayNotRunThePlaybookNoMoreThanShowDoes() async throws {
        var hidden = PlaybookExplainTests.mixed
        hidden.access = AccessList(users: ["root"])
        for (who, yaml) in [
            ("a developer outside the access list", PlaybookRunInProcessTests.yaml), ("a viewer", Self.viewerYAML),
        ] {
            try await InProcessConnection.with(caller: Self.nobody, yaml: yaml, playbooks: [hidden]) { connection in
                let show = try PlaybookRunInProcessTests.object(
                    await connection.call(#"{"v":1,"id":2,"method":"playbook_show","params":{"name":"mixed"}}"#))
                #expect(show["result"] == nil, "\(who): playbook_show refuses: \(show)")
                let step = try await PlaybookExplainTests.explain(
                    connection, #"{"playbook":"mixed","step":"trusted-who","params":{"msg":"a"}}"#)
                let result = step["result"] as? [String: Any]
                #expect(result?["argv"] == nil, "\(who) learns the step's command: \(step)")
                #expect(result?["trusted"] == nil, "\(who) learns the step is trusted: \(step)")
                let unknown = Self.error(
                    try await PlaybookExplainTests.explain(connection, #"{"playbook":"mixed","step":"nope"}"#))
                #expect(!unknown.message.contains("trusted-who"), "\(who) learns the steps: \(unknown.message)")
                let values = Self.error(
                    try await PlaybookExplainTests.explain(connection, #"{"playbook":"mixed","step":"say"}"#))
                #expect(!values.message.contains("param 'msg'"), "\(who) learns the parameters: \(values.message)")
            }
        }
    }

    /// `gatekeep` needs one approval (by root) for every command.
    static let approvalYAML =
        PlaybookRunInProcessTests.yaml + """

              gatekeep:
                description: Needs an approval
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                allow:
                  users: ["*"]
                approval: {count: 1, approvers: {users: [root]}, expires: 10m}
                commands: any
            """

    /// R2-L1: a step on an executor whose rules need an approval is refused by every run ("steps that need
    /// approval of their own are not supported in playbooks"), but `explain` of that step says `allow` (with the
    /// approval it would need): the answer a user gets is not what a run decides.
    @Test func explainOfAStepThatNeedsItsOwnApprovalSaysWhatARunDecides() async throws {
        var playbook = PlaybookConfig(
            name: "gated",
            steps: [PlaybookStep(name: "only", executor: "gatekeep", argv: Self.literal("true"), line: 1)],
            file: "(test)")
        playbook.access = AccessList(users: ["*"])
        try await InProcessConnection.with(caller: Self.nobody, yaml: Self.approvalYAML, playbooks: [playbook]) {
            connection in
            let run = try PlaybookRunInProcessTests.object(
                await connection.call(#"{"v":1,"id":2,"method":"playbook_run","params":{"name":"gated"}}"#))
            let refused = Self.error(run)
            #expect(refused.code == "permission_denied", "\(run)")
            let explained = try await PlaybookExplainTests.explain(
                connection, #"{"playbook":"gated","step":"only"}"#)
            let result = try #require(explained["result"] as? [String: Any], "\(explained)")
            #expect(
                result["decision"] as? String == "deny",
                "explain says \(result["decision"] ?? "?") (\(result["approval"] ?? "")) where the run is refused: \(refused.message)"
            )
        }
    }
}
