import Foundation
import Glibc
import NIOCore
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Fourth security review of playbooks (bypasses of the third review's fixes, 03d7bb2): each test is a finding of
/// docs/REVIEW-playbooks.md ("Fourth review") and fails on the code it was written against.
@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookReview4Tests {
    static var nobody: Caller { RouterTests.nobody }

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    /// A shell command that runs until `file` exists.
    static func waitFor(_ file: String) -> [String] {
        ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file]
    }

    // MARK: - R4-M1: a user takes its share after its run's hold was granted

    /// R4-M1: 03d7bb2 grants a run's hold only while its user could start one more execution besides its other
    /// holds (R3-M2), so that "a user at its share holds no more locks". It judges that once, when the hold is
    /// granted; the hold takes no share, so the user's own other executions may take the share afterwards, and the
    /// run then keeps every lock of its steps' executors while none of its steps may start, for as long as the
    /// user's own command runs (R3-M2's harm, bounded by `max_executions_per_user` holds). Here `nobody` (a share of
    /// one) runs `locked`; while its first step runs, an execution of its own waits for its share; when the first
    /// step ends, that execution takes the share, the second step waits for `user_share`, and another user's
    /// execution on `locker` (which names `deploy`) is refused `busy` by the run's hold. Either the second step
    /// must have gone first, or the run must not hold `deploy` while its step waits for its user's share.
    @Test func aRunHoldsNoLockWhileItsUserTookItsShareBetweenItsSteps() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let mineGate = directory + "/mine"
        let first = PlaybookStep(
            name: "first", executor: nil,
            argv: Self.literal("sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file), line: 1)
        let second = PlaybookStep(name: "second", executor: nil, argv: Self.literal("true"), line: 2)
        let playbook = PlaybookReview3Tests.locked([first, second])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.maxExecutionsPerUser = 1
            connection.store.replace(with: config)
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                defer {
                    FileManager.default.createFile(atPath: file, contents: Data())
                    FileManager.default.createFile(atPath: mineGate, contents: Data())
                }
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"locked"}}"#)
                let started = try await PlaybookRunLockTests.frames(connection) {
                    $0.contains(#""event":"step""#) && $0.contains(#""name":"first""#)
                        && $0.contains(#""state":"started""#)
                }
                #expect(started.contains(#""state":"started""#), "the first step runs: \(started)")
                // The user's own execution waits for its share, which the first step has.
                let current = connection.store.current
                let mine = Task {
                    try await executions.start(
                        ExecParams(argv: Self.waitFor(mineGate), executor: "gated", wait: true), requestID: nil,
                        caller: Self.nobody, config: current, sink: nil
                    ) { _ in }
                }
                try await PlaybookReview3Tests.eventually { executions.queuedCount == 1 }
                #expect(executions.queuedCount == 1, "the user's own execution waits for its share")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                let next = try await PlaybookRunLockTests.frames(connection) {
                    $0.contains(#""event":"queued""#)
                        || ($0.contains(#""name":"second""#) && $0.contains(#""state":"started""#))
                }
                if next.contains(#""event":"queued""#) {
                    #expect(next.contains(#""waiting_for":"user_share""#), "\(next)")
                    let refusal = await PlaybookReview3Tests.lockerRefusal(connection)
                    #expect(
                        refusal == nil,
                        "the run holds `deploy` while its second step waits for its user's share, which the user's own execution took after the hold was granted: \(String(describing: refusal))"
                    )
                }
                #expect(FileManager.default.createFile(atPath: mineGate, contents: Data()))
                let execution = try await mine.value
                _ = await execution.waitFinished()
                let reply = try await PlaybookReview3Tests.reply(connection)
                #expect(reply.contains(#""state":"succeeded""#), "\(reply)")
            }
        }
    }

    // MARK: - R4-L1: a run costs one exec_rate token more than it runs executions

    /// R4-L1: 03d7bb2 takes an `exec_rate` token for every run before it is recorded (R3-L1) and each step still
    /// takes its own, so a run of n steps needs n + 1 tokens of a bucket that CONFIGURATION.md describes as the
    /// user's "executions started" ("each request or execution takes one"). A user whose `exec_rate` holds one
    /// token (`1/PERIOD`, e.g. a bot's `rates.users` entry) can run one execution per period, but no playbook
    /// ever: each run takes the token, is recorded, and its first step is refused `rate_limited` (the run ends
    /// `failed`, its start and end records and row written). Here `exec_rate: 1/10m` and a fresh bucket: the first
    /// run of the one-step `plain` must run its step.
    @Test func aOneStepRunNeedsNoMoreThanOneExecutionToken() async throws {
        let playbook = PlaybookReview3Tests.plain
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.execRate = .perPeriod(count: 1, period: .seconds(600))
            connection.store.replace(with: config)
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"plain"}}"#)
                let reply = try await PlaybookReview3Tests.reply(connection)
                #expect(
                    reply.contains(#""state":"succeeded""#),
                    "the first run of a one-step playbook, with one execution token, did not run its step: \(reply)")
            }
        }
    }

    /// Review of 700fc38 (F1): the token a run takes before it is recorded went back before its first step was
    /// admitted; when an executor's own `exec_rate` refused that step (taking nothing), the run had cost nothing,
    /// and a user could write start and end records and a history row per request (R3-L1 again). Here the user's
    /// `exec_rate` is 3/10m and the step's executor's 1/10m: the first run runs; the later ones are refused by the
    /// executor's rate, but each keeps its run's token, so the fourth is refused `rate_limited` before it is
    /// recorded.
    @Test func aRunWhoseFirstStepAnExecutorsRateRefusesKeepsItsToken() async throws {
        let playbook = PlaybookReview3Tests.plain
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.execRate = .perPeriod(count: 3, period: .seconds(600))
            for index in config.executors.indices {
                config.executors[index].execRate = .perPeriod(count: 1, period: .seconds(600))
            }
            connection.store.replace(with: config)
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                var replies: [String] = []
                for id in 7..<11 {
                    try await connection.inner.send(
                        #"{"v":1,"id":\#(id),"method":"playbook_run","params":{"name":"plain"}}"#)
                    replies.append(try await PlaybookReview3Tests.reply(connection))
                }
                #expect(replies.first?.contains(#""state":"succeeded""#) == true, "\(replies)")
                #expect(
                    replies.last?.hasPrefix(#"{"error":{"code":"rate_limited""#) == true,
                    "runs whose step an executor's rate refused cost no token: \(replies)")
                let started = connection.inner.auditor.events.filter { $0.kind == .playbookRunStarted }.count
                #expect(started == 3, "\(started) start records")
            }
        }
    }
}
