import Foundation
import Glibc
import NIOCore
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Third security review of playbooks (bypasses of the second review's fixes, 70ad57c): each test is a finding of
/// docs/REVIEW-playbooks.md ("Third review") and fails on the code it was written against.
@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookReview3Tests {
    static var nobody: Caller { RouterTests.nobody }
    static var other: Caller { PlaybookReviewUnitTests.other }

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    /// `locked` (locks `deploy`) with `steps`, open to everyone.
    static func locked(_ steps: [PlaybookStep]) -> PlaybookConfig {
        var playbook = PlaybookConfig(name: "locked", steps: steps, file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: false)]
        playbook.access = AccessList(users: ["*"])
        return playbook
    }

    /// Polls until `condition` holds, for minutes at most (a shared, noisy machine).
    /// `plain`: one step, `true`, that anyone may run; no locks.
    static var plain: PlaybookConfig {
        var playbook = PlaybookConfig(
            name: "plain", steps: [PlaybookStep(name: "only", executor: nil, argv: Self.literal("true"), line: 1)],
            file: "(test)")
        playbook.access = AccessList(users: ["*"])
        return playbook
    }

    /// Waits up to 15 minutes: in CI the whole test process can make no progress for its first minutes (no test
    /// finished in the first 84 to 352 s of a run while the integration suites set up on the two threads of the
    /// concurrency pool), and an in-process daemon's work waits with it (docs/TESTING.md, "Running the suites").
    static func eventually(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(900)
        while !condition(), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Another user's `exec --no-wait` of `true` on `locker` (which names `deploy`): nil when it ran, else the
    /// refusal.
    static func lockerRefusal(_ connection: ReviewConnection) async -> RunvoyError? {
        do {
            let execution = try await connection.inner.executions.start(
                ExecParams(argv: ["true"], executor: "locker", wait: false), requestID: nil, caller: Self.other,
                config: connection.store.current, sink: nil
            ) { _ in }
            _ = await execution.waitFinished()
            return nil
        } catch {
            return error
        }
    }

    /// Reads frames up to the reply to a request (events skipped).
    static func reply(_ connection: ReviewConnection) async throws -> String {
        while true {
            let frame = try await connection.inner.nextFrame()
            if !frame.contains(#""event":"#), frame.contains(#""result":"#) || frame.contains(#""error":"#) {
                return frame
            }
        }
    }

    // MARK: - R3-M1: a step's post_exec hooks run after its run gave its executor's locks back

    /// `lockYAML` plus `hooked`, which names `deploy` and has a `post_exec` hook that says it started (`hook` in
    /// `gate`) and runs until `release` exists in `gate`.
    static func hookedYAML(gate: String) -> String {
        PlaybookReviewUnitTests.lockYAML + """

              hooked:
                description: Holds deploy, with a post_exec hook
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                locks: [deploy]
                hooks:
                  - name: after
                    event: post_exec
                    command: [/bin/sh, -c, "touch \(gate)/hook; while [ ! -e \(gate)/release ]; do sleep 0.05; done"]
                    user: root
                    timeout: 5m
                allow:
                  users: ["*"]
                commands: any
            """
    }

    /// R3-M1: an execution's `post_exec` hooks hold its admission, its executor's locks included, until they end
    /// (CONFIGURATION.md, `hooks`), so nothing that needs the lock runs beside them. Since 70ad57c a step of a run
    /// that holds locks claims none of its executor's locks (its run holds them all), and the run gives them back
    /// as soon as its last step's command ended (`waitFinished`), before that step's `post_exec` hooks ran. Here
    /// `locked`'s only step runs on `hooked` (which names `deploy`); once its hook runs and the run has replied (or,
    /// should the run wait for its step's hooks, after a while), another user's execution on `locker`, which names
    /// `deploy`, starts beside the hook.
    @Test func aStepsPostExecHooksKeepItsExecutorsLocksUntilTheyEnd() async throws {
        let (directory, _) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let step = PlaybookStep(name: "only", executor: "hooked", argv: Self.literal("true"), line: 1)
        let playbook = Self.locked([step])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: Self.hookedYAML(gate: directory), playbooks: [playbook]
        ) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                defer { FileManager.default.createFile(atPath: directory + "/release", contents: Data()) }
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"locked"}}"#)
                // The reply is read aside: a run that waits for its step's hooks replies only once they end.
                let replied = Mutex<String?>(nil)
                let reader = Task {
                    let reply = try await Self.reply(connection)
                    replied.withLock { $0 = reply }
                }
                try await Self.eventually { access(directory + "/hook", F_OK) == 0 }
                #expect(access(directory + "/hook", F_OK) == 0, "the step's post_exec hook started")
                // Past the run's end (its reply) when it does not wait for the hook (milliseconds after the hook
                // starts); the wait is bounded only so that a run that does wait does not keep the test long (the
                // check below holds either way).
                let deadline = ContinuousClock.now + .seconds(5)
                while replied.withLock({ $0 == nil }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(access(directory + "/release", F_OK) != 0, "the hook still runs")
                let refusal = await Self.lockerRefusal(connection)
                #expect(
                    refusal?.code == .busy,
                    "an execution needing `deploy` ran while the post_exec hook of a step on `hooked` (which names `deploy`) still ran: \(String(describing: refusal))"
                )
                #expect(FileManager.default.createFile(atPath: directory + "/release", contents: Data()))
                try await reader.value
                let reply = replied.withLock { $0 } ?? ""
                #expect(reply.contains(#""state":"succeeded""#), "\(reply)")
            }
        }
    }

    // MARK: - R3-M2: a run holds its locks while its user may start none of its steps

    /// R3-M2: an execution takes its locks together with its share of running executions (all at once or none),
    /// so a user at `max_executions_per_user` holds no lock more, and "no one can deny a lock to others without
    /// holding it" (CONFIGURATION.md, "Named locks"). A run's hold takes no share and is granted while its user is
    /// at its share: since 70ad57c it takes every lock of every step's executor at once, and keeps them while its
    /// first step waits for a share that the user's own other execution (any command it may run anywhere, for as
    /// long as it likes) keeps. Here `nobody` (a share of one) runs a command that waits, then runs `locked`: its
    /// step waits for `user_share`, and another user's execution on `locker` is refused `busy` by the run's hold.
    /// Any number of playbooks' locks can be held this way at once, one `exec_rate` token each.
    @Test func aRunHoldsNoLockWhileItsUserMayStartNoneOfItsSteps() async throws {
        let (directory, file) = try PlaybookReviewUnitTests.gate()
        defer { FileSystem.removeTree(directory) }
        let playbook = Self.locked([PlaybookStep(name: "only", executor: nil, argv: Self.literal("true"), line: 1)])
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.maxExecutionsPerUser = 1
            connection.store.replace(with: config)
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                defer { FileManager.default.createFile(atPath: file, contents: Data()) }
                // The user's one execution: it runs until `file` exists.
                let mine = try await executions.start(
                    ExecParams(
                        argv: ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file], executor: "gated"),
                    requestID: nil, caller: Self.nobody, config: connection.store.current, sink: nil
                ) { _ in }
                let queued = try await PlaybookRunLockTests.run(connection) { $0.contains(#""event":"queued""#) }
                #expect(queued.contains(#""event":"queued""#), "the run waits for its user's share: \(queued)")
                let refusal = await Self.lockerRefusal(connection)
                #expect(
                    refusal == nil,
                    "the run holds `deploy` while none of its steps may start (its user is at its share): \(String(describing: refusal))"
                )
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                _ = await mine.waitFinished()
                let reply = try await Self.reply(connection)
                #expect(reply.contains(#""result":"#), "\(reply)")
            }
        }
    }

    // MARK: - R3-L1: a run without locks writes its start and its history row past the execution rate

    /// R3-L1: 70ad57c meters a run that holds locks (`meterRunLocks`: an `exec_rate` token before its start is
    /// written); a run of a playbook that names no locks takes none before `begin`, which writes its
    /// `playbook_run_started` record and its `playbook_runs` row; only its first step's execution takes a token,
    /// and is refused by the rate. A caller whose `exec_rate` is spent still writes two audit records (start and
    /// end, not coalesced as refusals are) and a history row per request, at `request_rate` (6000 a minute by
    /// default), where an `exec` refused by the rate writes one coalesced record and no row. Here, `exec_rate: 2/10m`:
    /// runs of `plain` go on until one does not succeed; that one must be refused `rate_limited` before anything of
    /// it is recorded (every start record is of a run that succeeded).
    @Test func aRunWithoutLocksIsMeteredBeforeItsStartIsRecorded() async throws {
        let playbook = Self.plain
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: PlaybookReviewUnitTests.lockYAML, playbooks: [playbook]
        ) { connection in
            var config = connection.store.current
            config.limits.execRate = .perPeriod(count: 2, period: .seconds(600))
            connection.store.replace(with: config)
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                var succeeded = 0
                var last = ""
                for id in 7..<12 {
                    try await connection.inner.send(
                        #"{"v":1,"id":\#(id),"method":"playbook_run","params":{"name":"plain"}}"#)
                    last = try await Self.reply(connection)
                    guard last.contains(#""state":"succeeded""#) else { break }
                    succeeded += 1
                }
                #expect(succeeded >= 1, "the first run has its tokens: \(last)")
                let started = connection.inner.auditor.events.filter { $0.kind == .playbookRunStarted }.count
                #expect(
                    last.hasPrefix(#"{"error":{"code":"rate_limited""#) && started == succeeded,
                    "a run past the execution rate was started and recorded (\(started) start records for \(succeeded) runs that succeeded): \(last)"
                )
            }
        }
    }
}
