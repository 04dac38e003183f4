import Foundation
import Glibc
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Security review of playbooks (issue 19): each test is a finding of docs/REVIEW-playbooks.md and fails on the
/// code it was written against. A real request layer, spawner and history in process (`InProcessConnection`),
/// with a handle on the configuration store so that a test can reload (or revoke a grant) while a run is under way.
@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookReviewUnitTests {
    /// The development configuration plus `strict`, which runs only `echo` and `true`.
    static let yaml = PlaybookRunInProcessTests.yaml

    /// `strict` after a reload that no longer lets it run `echo`.
    static let tightenedYAML = yaml.replacingOccurrences(of: "- [echo, \"*\"]\n", with: "")

    static var nobody: Caller { RouterTests.nobody }
    /// Another developer (every user is one in the development configuration).
    static var other: Caller { Caller.resolve(uid: 1, gid: 1, pid: 4243, hasPidfd: false) }

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    /// A folder nobody can search, and in it the file a waiting step waits for.
    static func gate() throws -> (directory: String, file: String) {
        var template = Array("/tmp/pbreview-gate-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        chmod(directory, 0o755)
        return (directory, directory + "/open")
    }

    /// `first` waits (on the default executor) until `file` exists; `second` is `echo second` on `strict`.
    static func waitThenEcho(_ file: String) -> PlaybookConfig {
        let first = PlaybookStep(
            name: "first", executor: nil,
            argv: literal("sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file), line: 1)
        let second = PlaybookStep(name: "second", executor: "strict", argv: literal("echo", "second"), line: 2)
        var playbook = PlaybookConfig(name: "twostep", steps: [first, second], file: "(test)")
        playbook.access = AccessList(users: ["*"])
        return playbook
    }

    /// Starts `twostep`, waits for its first step to start, calls `change`, lets the first step end, and returns
    /// every frame up to the reply.
    static func runChangingMidway(
        _ connection: ReviewConnection, gate file: String, change: () throws -> Void
    ) async throws -> [String] {
        try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"twostep"}}"#)
        var changed = false
        return try await connection.inner.framesUntilReply { frame in
            if !changed, frame.contains(#""event":"step""#), frame.contains(#""state":"started""#) {
                changed = true
                try change()
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
            }
            return false
        }
    }

    static func ranSecond(_ connection: ReviewConnection) throws -> Bool {
        let rows = try connection.inner.executions.store.list(ListParams(limit: 100), ownerUid: nil)
        return rows.contains { $0.argv == ["echo", "second"] }
    }

    // MARK: - H1: a reload during a run does not reach its later steps

    @Test func aStepAfterAReloadThatRemovesThePlaybookDoesNotRun() async throws {
        let (directory, file) = try Self.gate()
        defer { FileSystem.removeTree(directory) }
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.waitThenEcho(file)]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let frames = try await Self.runChangingMidway(connection, gate: file) {
                    var reloaded = connection.inner.config
                    reloaded.playbooks = []
                    reloaded.digest = "00000000deadbeef"
                    connection.store.replace(with: reloaded)
                }
                #expect(
                    try !Self.ranSecond(connection),
                    "a step that starts after the playbook was removed by a reload must not run")
                let result = try #require(
                    try PlaybookRunInProcessTests.object(frames.last)["result"] as? [String: Any], "\(frames)")
                #expect(result["state"] as? String == "cancelled", "the run is not a success: \(result)")
            }
        }
    }

    @Test func aStepAfterAReloadThatTightensItsExecutorsRulesDoesNotRun() async throws {
        let (directory, file) = try Self.gate()
        defer { FileSystem.removeTree(directory) }
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [Self.waitThenEcho(file)]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                #expect(Self.tightenedYAML != Self.yaml, "the reload must take `echo` from `strict`")
                _ = try await Self.runChangingMidway(connection, gate: file) {
                    var reloaded = try ConfigLoader.parse(
                        yaml: Self.tightenedYAML.replacingOccurrences(of: "/nonexistent", with: connection.directory),
                        file: "(test)")
                    reloaded.playbooks = connection.inner.config.playbooks
                    connection.store.replace(with: reloaded)
                }
                #expect(
                    try !Self.ranSecond(connection),
                    "a step that starts after a reload took `echo` from its executor's rules must not run")
            }
        }
    }

    @Test func aStepAfterTheCallersGrantIsRevokedDoesNotRun() async throws {
        let (directory, file) = try Self.gate()
        defer { FileSystem.removeTree(directory) }
        let now = WallClock.milliseconds()
        let grant = TemporaryGrant(
            id: "g1", uid: 65534, user: "nobody", subject: .role(.developer), reason: "review", grantedByUid: 0,
            grantedByUser: "root", createdAtMs: now, expiresAtMs: now + 3_600_000)
        let noRole = RouterTests.noRoleYAML + String(Self.yaml.dropFirst(RouterTests.developerYAML.count))
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: noRole, playbooks: [Self.waitThenEcho(file)], grants: [grant]
        ) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                _ = try await Self.runChangingMidway(connection, gate: file) {
                    connection.store.setGrants([])
                }
                #expect(
                    try !Self.ranSecond(connection),
                    "a step that starts after the caller's only role (a grant) was revoked must not run")
            }
        }
    }

    /// H1 in the queue: a step waits for its executor's only slot when a reload removes its playbook; when the
    /// slot frees, the queue decides it again under the configuration in force, where the playbook is gone.
    @Test func aQueuedStepWhosePlaybookAReloadRemovedDoesNotRun() async throws {
        let (directory, file) = try Self.gate()
        defer { FileSystem.removeTree(directory) }
        var playbook = PlaybookConfig(
            name: "queued",
            steps: [PlaybookStep(name: "only", executor: "gated", argv: Self.literal("echo", "second"), line: 1)],
            file: "(test)")
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.lockYAML, playbooks: [playbook]) {
            connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                let blocker = try await executions.start(
                    ExecParams(
                        argv: ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file], executor: "gated",
                        timeoutMs: 600_000),
                    requestID: nil, caller: Self.other, config: connection.store.current, sink: nil
                ) { _ in }
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"queued"}}"#)
                var reloaded = false
                let frames = try await connection.inner.framesUntilReply { frame in
                    if !reloaded, frame.contains(#""event":"queued""#) {
                        reloaded = true
                        var config = connection.store.current
                        config.playbooks = []
                        config.digest = "00000000deadbeef"
                        connection.store.replace(with: config)
                        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                    }
                    return false
                }
                _ = await blocker.waitFinished()
                #expect(reloaded, "the step never waited in the queue: \(frames)")
                let rows = try connection.inner.executions.store.list(ListParams(limit: 100), ownerUid: nil)
                    .filter { $0.argv == ["echo", "second"] }
                // It waited in the queue (a `queued` row), and never got a process.
                #expect(
                    rows.count == 1 && rows.allSatisfy { $0.pid == nil && $0.status == .cancelled },
                    "a queued step whose playbook a reload removed must not run: \(rows.map { ($0.status, $0.pid) })")
                #expect(frames.last?.contains(#""state":"succeeded""#) == false, "\(frames.last ?? "")")
            }
        }
    }

    // MARK: - H3: the playbook's locks are not held between its steps

    /// `gated` runs one execution at a time; `locker` holds the lock `deploy`.
    static let lockYAML =
        yaml + """

              gated:
                description: One at a time
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                concurrency: 1
                allow:
                  users: ["*"]
                commands: any
              locker:
                description: Holds deploy
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                locks: [deploy]
                allow:
                  users: ["*"]
                commands: any
            """

    @Test func thePlaybooksLockIsHeldFromItsFirstStepToItsLast() async throws {
        let (directory, file) = try Self.gate()
        defer { FileSystem.removeTree(directory) }
        var playbook = PlaybookConfig(
            name: "locked",
            steps: [
                PlaybookStep(name: "first", executor: nil, argv: Self.literal("true"), line: 1),
                PlaybookStep(name: "last", executor: "gated", argv: Self.literal("true"), line: 2),
            ], file: "(test)")
        playbook.locks = [ExecutorLock(name: "deploy", shared: false)]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.lockYAML, playbooks: [playbook]) {
            connection in
            let executions = connection.inner.executions
            try await ExecutionLifetimeTests.running(executions) {
                let config = connection.store.current
                // Holds `gated`'s only slot, so the run's last step waits in the queue after its first ended.
                let blocker = try await executions.start(
                    ExecParams(
                        argv: ["sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done", file], executor: "gated",
                        timeoutMs: 600_000),
                    requestID: nil, caller: Self.nobody, config: config, sink: nil
                ) { _ in }
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"locked"}}"#)
                let read = try await connection.inner.framesUntilReply { frame in
                    frame.contains(#""event":"step""#) && frame.contains(#""name":"first""#)
                        && frame.contains(#""state":"succeeded""#)
                }
                let replied = read.last.map(InProcessConnection.isReply) ?? false
                // The run is between its first step and its last: `deploy` must still be its own, whoever asks.
                let refusal = await #expect(throws: RunvoyError.self, "an execution took the run's lock between steps")
                {
                    let probe = try await executions.start(
                        ExecParams(argv: ["true"], executor: "locker", wait: false), requestID: nil,
                        caller: Self.other, config: config, sink: nil
                    ) { _ in }
                    _ = await probe.waitFinished()
                }
                #expect(refusal?.code == .busy, "\(String(describing: refusal))")
                #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                _ = await blocker.waitFinished()
                if !replied { try await connection.inner.reply() }
            }
        }
    }

    /// L2: the caller's only role is a grant, revoked while its run waits for approval; the approval (bound to the
    /// file's digest only) is then spent and the steps run under the snapshot that still holds the grant.
    @Test func aRunApprovedAfterTheCallersGrantWasRevokedDoesNotRun() async throws {
        let now = WallClock.milliseconds()
        let grant = TemporaryGrant(
            id: "g2", uid: 65534, user: "nobody", subject: .role(.developer), reason: "review", grantedByUid: 0,
            grantedByUser: "root", createdAtMs: now, expiresAtMs: now + 3_600_000)
        let noRole = RouterTests.noRoleYAML + String(Self.yaml.dropFirst(RouterTests.developerYAML.count))
        try await ReviewConnection.with(
            caller: Self.nobody, yaml: noRole, playbooks: [PlaybookRunInProcessTests.approved], grants: [grant]
        ) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let id = try await PlaybookRunInProcessTests.awaitApproval(connection.inner)
                connection.store.setGrants([])
                try await PlaybookRunInProcessTests.answer(id, approve: true, connection.inner)
                try await connection.inner.reply()
                #expect(
                    try connection.inner.executions.store.count() == 0,
                    "nobody holds no role any more when its approved run starts: no step may run")
            }
        }
    }

    /// H2, later steps: a path value is judged again right before each step, so a path that leaves `under` during
    /// the run (here root swaps a directory on the way for a link to /etc while the first step runs) stops the run.
    @Test func aPathThatLeavesItsUnderDuringTheRunStopsTheLaterSteps() async throws {
        let (gateDirectory, file) = try Self.gate()
        defer { FileSystem.removeTree(gateDirectory) }
        var template = Array("/tmp/pbreview-under-XXXXXX".utf8CString)
        let under = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(under) }
        chmod(under, 0o755)
        #expect(mkdir(under + "/sub", 0o755) == 0)
        #expect(FileManager.default.createFile(atPath: under + "/sub/passwd", contents: Data()))
        var target = PlaybookParameter(name: "target", type: .path(under: [under]), line: 1)
        target.required = true
        var playbook = Self.waitThenEcho(file)
        playbook.steps[1].argv = [ArgvTemplate(literal: "echo"), ArgvTemplate(parameter: "target")]
        playbook.parameters = [target]
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [playbook]) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                try await connection.inner.send(
                    #"{"v":1,"id":7,"method":"playbook_run","params":{"name":"twostep","params":{"target":"\#(under)/sub/passwd"}}}"#
                )
                var swapped = false
                let frames = try await connection.inner.framesUntilReply { frame in
                    if !swapped, frame.contains(#""event":"step""#), frame.contains(#""state":"started""#) {
                        swapped = true
                        #expect(rename(under + "/sub", under + "/old") == 0)
                        #expect(symlink("/etc", under + "/sub") == 0)
                        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
                    }
                    return false
                }
                let rows = try connection.inner.executions.store.list(ListParams(limit: 100), ownerUid: nil)
                #expect(swapped && rows.count == 1, "only the first step ran: \(rows.map(\.argv))")
                #expect(frames.last?.contains(#""state":"cancelled""#) == true, "\(frames.suffix(3))")
            }
        }
    }

    // MARK: - H2: a path parameter is not judged against the caller

    @Test func aPathThroughADirectoryTheCallerCanChangeIsRefused() async throws {
        var template = Array("/tmp/pbreview-under-XXXXXX".utf8CString)
        let under = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(under) }
        chmod(under, 0o755)
        // `drop` belongs to the caller: it can swap it for a link to anywhere between the check and the step.
        #expect(mkdir(under + "/drop", 0o755) == 0)
        #expect(chown(under + "/drop", 65534, 65534) == 0)
        #expect(FileManager.default.createFile(atPath: under + "/drop/f", contents: Data()))
        var target = PlaybookParameter(name: "target", type: .path(under: [under]), line: 1)
        target.required = true
        var playbook = PlaybookConfig(
            name: "show",
            steps: [
                PlaybookStep(
                    name: "show", executor: "strict",
                    argv: [ArgvTemplate(literal: "echo"), ArgvTemplate(parameter: "target")], line: 1)
            ], file: "(test)")
        playbook.parameters = [target]
        playbook.access = AccessList(users: ["*"])
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [playbook]) { connection in
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                let frames = try await PlaybookRunInProcessTests.run(
                    connection.inner, #"{"name":"show","params":{"target":"\#(under)/drop/f"}}"#)
                #expect(
                    frames.last?.contains(#""code":"invalid_argument""#) == true,
                    "SECURITY.md: paths within `under` as path_under decides (no directory the caller can change)")
                #expect(try connection.inner.executions.store.count() == 0)
            }
        }
    }

    // MARK: - M1: a refusal listing every unknown name outgrows a frame

    @Test func aRefusalForManyUnknownParametersStaysWithinAFrame() async throws {
        var playbook = PlaybookConfig(
            name: "deploy", steps: [PlaybookStep(name: "t", executor: "strict", argv: Self.literal("true"), line: 1)],
            file: "(test)")
        playbook.access = AccessList(users: ["*"])
        // About 290 KiB of request: well within max_frame_bytes (1 MiB).
        let names = (0..<24_000).map { "\"k\($0)\":\"\"" }.joined(separator: ",")
        try await ReviewConnection.with(caller: Self.nobody, yaml: Self.yaml, playbooks: [playbook]) { connection in
            let limit = connection.inner.config.limits.maxFrameBytes
            let request = #"{"v":1,"id":7,"method":"playbook_run","params":{"name":"deploy","params":{"# + names + "}}}"
            #expect(request.utf8.count < limit)
            let reply = await connection.inner.call(request)
            #expect(reply.contains(#""code":"invalid_argument""#))
            #expect(reply.utf8.count <= limit, "PROTOCOL.md: frames the daemon sends are at most 1 MiB")
        }
    }

    // MARK: - M3: playbook runs escape retention

    /// `history.max_age` deletes finished executions and their argv (which hold the run's values); the run's own
    /// row, with the same values, must go with them, else `playbook_runs` grows without bound.
    @Test func retentionRemovesFinishedRunsWithTheirExecutions() throws {
        var template = Array("/tmp/pbreview-store-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(directory) }
        let store = try ExecutionStore(stateDirectory: directory)
        let id = "run-" + ExecutionID.make(milliseconds: 1_700_000_000_000)
        try store.insertRun(
            PlaybookRunRecord(
                id: id, playbook: "deploy", callerUid: 65534, callerUser: "nobody",
                paramsJSON: #"{"msg":"\#(String(repeating: "x", count: 4096))"}"#, startedAtMs: 1_700_000_000_000,
                schedule: nil))
        try store.finishRun(id, state: "succeeded", atMs: 1_700_000_001_000, stepsJSON: "[]")
        _ = try store.prune(olderThanMs: WallClock.milliseconds(), maxTotalBytes: nil)
        #expect(try store.run(id) == nil, "a run that ended years before max_age is kept, with its values, forever")
    }
}

/// `InProcessConnection` with the configuration store it was served under, so that a test can reload.
struct ReviewConnection {
    let inner: InProcessConnection
    let store: ConfigStore
    /// The temporary state folder the configuration's `/nonexistent` paths stand for.
    let directory: String

    static func with(
        caller: Caller, yaml: String, playbooks: [PlaybookConfig], grants: [TemporaryGrant] = [],
        _ body: (ReviewConnection) async throws -> Void
    ) async throws {
        var template = Array("/tmp/runvoyd-pbreview-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(directory) }
        var parsed = try ConfigLoader.parse(
            yaml: yaml.replacingOccurrences(of: "/nonexistent", with: directory), file: "(test)")
        parsed.playbooks = playbooks
        let config = parsed
        let logger = Logger(label: "PlaybookReviewUnitTests")
        let history = try ExecutionStore(stateDirectory: config.stateDirectory)
        let secrets = try SecretStore(
            store: history, key: try #require(MasterKey.parse(Array(repeating: 7, count: 32))))
        let refusals = RefusalThrottle(logger: logger)
        let executions = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: history, secrets: secrets,
            refusals: refusals
        ) { _ in }
        let store = ConfigStore(config)
        if !grants.isEmpty { store.setGrants(grants) }
        store.observe { executions.limitsChanged($0) }
        let auditor = RecordingAuditor()
        let context = ServerContext(
            config: store, executions: executions,
            reloader: ConfigReloader(path: nil, store: store, notifier: SystemdNotifier(), logger: logger),
            refusals: refusals, logger: logger, auditor: { _ in auditor })
        let channel = NIOAsyncTestingChannel()
        let activity = ConnectionTimeoutHandler.Activity()
        let wrapped = try await channel.testingEventLoop.executeInContext {
            try RunvoyServer.wrap(channel, limits: config.limits, activity: activity)
        }
        try await channel.connect(to: SocketAddress(unixDomainSocketPath: "/runvoyd-pbreview-test"))
        let served = Task {
            await Connection(channel: wrapped, caller: caller, activity: activity, context: context).run()
        }
        let connection = ReviewConnection(
            inner: InProcessConnection(
                channel: channel, auditor: auditor, config: store.current, executions: executions),
            store: store, directory: directory)
        do {
            try await body(connection)
        } catch {
            try? await channel.close()
            await served.value
            throw error
        }
        try await channel.close()
        await served.value
    }
}
