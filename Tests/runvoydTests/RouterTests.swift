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

/// The request layer in process: a `Connection` served over NIO's testing channel, with the daemon's real
/// parts (history, secrets, policy) in a temporary directory and an auditor that keeps its records in memory.
/// No root, no journal, no socket; each test waits for the frames it expects, never for a time.
///
/// The messages are the daemon's wire contract (docs/PROTOCOL.md): each is checked byte for byte.
@Suite struct RouterTests {
    /// The embedded development configuration (every user a developer), and one that binds no role at all.
    static let developerYAML = ConfigLoader.embeddedDefaultYAML(
        stateRoot: "/nonexistent", runAsUser: "nobody", runAsGroup: "nogroup")
    static let noRoleYAML = developerYAML.replacingOccurrences(of: "  developer: {users: [\"*\"]}\n", with: "  {}\n")

    static var nobody: Caller { Caller.resolve(uid: 65534, gid: 65534, pid: 4242, hasPidfd: false) }

    // MARK: - The envelope

    @Test func aFrameThatIsNotARequestIsABadRequestWithoutAnID() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            await connection.expectReply(
                to: "{not json",
                #"{"error":{"code":"bad_request","message":"the frame is not a valid request: it is not valid JSON"},"id":null}"#
            )
            // Valid JSON that is not an object is named as such (the member is the whole frame, so it has no name).
            await connection.expectReply(
                to: "[1,2,3]",
                #"{"error":{"code":"bad_request","message":"the frame is not a valid request: member '' must be an object"},"id":null}"#
            )
        }
    }

    @Test func missingVersionIDOrMethodAreBadRequests() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            await connection.expectReply(
                to: #"{"id":1,"method":"hello"}"#,
                #"{"error":{"code":"bad_request","message":"the request has no \"v\" (protocol version)"},"id":1}"#)
            await connection.expectReply(
                to: #"{"v":1,"method":"hello"}"#,
                #"{"error":{"code":"bad_request","message":"the request has no \"id\""},"id":null}"#)
            await connection.expectReply(
                to: #"{"v":1,"id":"x"}"#,
                #"{"error":{"code":"bad_request","message":"the request has no \"method\""},"id":"x"}"#)
            await connection.expectReply(
                to: #"{"v":99,"id":2,"method":"hello"}"#,
                #"{"error":{"code":"unsupported_version","message":"protocol version 99 is not supported; this daemon speaks [1]"},"id":2}"#
            )
        }
    }

    @Test func anUnknownMethodIsNamed() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":"a","method":"format_disk"}"#,
                #"{"error":{"code":"unknown_method","message":"unknown method 'format_disk'"},"id":"a"}"#)
            // Names are exact: the table is keyed by the name on the wire.
            await connection.expectReply(
                to: #"{"v":1,"id":"b","method":"Hello"}"#,
                #"{"error":{"code":"unknown_method","message":"unknown method 'Hello'"},"id":"b"}"#)
            #expect(connection.auditor.events.isEmpty)
        }
    }

    // MARK: - Params

    @Test func paramsOfTheWrongTypeAreBadRequestsAndValuesOutsideTheSetInvalidArguments() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"exec","params":{"argv":"rm -rf /"}}"#,
                #"{"error":{"code":"bad_request","message":"bad params for 'exec': member 'params.argv' must be an array"},"id":1}"#
            )
            await connection.expectReply(
                to: #"{"v":1,"id":2,"method":"list","params":{"limit":"ten"}}"#,
                #"{"error":{"code":"bad_request","message":"bad params for 'list': member 'params.limit' must be an integer"},"id":2}"#
            )
            await connection.expectReply(
                to: #"{"v":1,"id":3,"method":"list","params":{"status":["sleeping"]}}"#,
                #"{"error":{"code":"invalid_argument","message":"bad params for 'list': member 'params.status[0]' has a value that is not allowed here"},"id":3}"#
            )
            await connection.expectReply(
                to: #"{"v":1,"id":4,"method":"secrets_get","params":{}}"#,
                #"{"error":{"code":"bad_request","message":"bad params for 'secrets_get': member 'params.name' is missing"},"id":4}"#
            )
        }
    }

    @Test func aMethodThatNeedsParamsSaysWhichWhenThereAreNone() async throws {
        let expected = [
            "exec": "exec needs params with argv", "stdin": "stdin needs params with data or eof",
            "signal": "signal needs params with a signal", "status": "status needs params with execution_id",
            "logs": "logs needs params with execution_id", "kill": "kill needs params with execution_id",
            "explain": "explain needs params with argv", "secrets_set": "secrets_set needs params with name and value",
            "secrets_rm": "secrets_rm needs params with name", "secrets_get": "secrets_get needs params with name",
        ]
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            for (method, message) in expected.sorted(by: { $0.key < $1.key }) {
                for params in ["", #","params":null"#] {
                    await connection.expectReply(
                        to: #"{"v":1,"id":1,"method":"\#(method)"\#(params)}"#,
                        #"{"error":{"code":"bad_request","message":"\#(message)"},"id":1}"#)
                }
            }
        }
    }

    @Test func methodsThatTakeNoParamsDoNotReadThem() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            for method in ["whoami", "ping", "capabilities", "secrets_list"] {
                let reply = await connection.call(#"{"v":1,"id":1,"method":"\#(method)","params":5}"#)
                #expect(reply.hasPrefix(#"{"id":1,"result":"#), "\(method): \(reply)")
            }
        }
    }

    // MARK: - Refusals

    @Test func aPermissionRefusalIsAuditedOnceWithTheCallersFields() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            let refusal = Authorizer.refusal(Self.nobody, .usersRead, connection.config)
            await connection.expectReply(
                to: #"{"v":1,"id":9,"method":"users"}"#,
                #"{"error":{"code":"permission_denied","message":"\#(refusal.message)"},"id":9}"#)
            let events = connection.auditor.events
            #expect(events.count == 1)
            let event = try #require(events.first)
            #expect(event.kind == .requestDenied)
            #expect(event.priority == 4)
            #expect(event.message == "refused nobody (uid 65534) users: \(refusal.message)")
            #expect(
                event.fields.map { "\($0)=\($1)" } == [
                    "METHOD=users", "CALLER_UID=65534", "CALLER_USER=nobody", "CALLER_PID=4242", "DECISION=deny",
                    "REASON=permission_denied: \(refusal.message)",
                ])
        }
    }

    @Test func aCallerWithNoRoleIsRefusedWhateverTheIDAndAudited() async throws {
        try await InProcessConnection.with(caller: Self.nobody, yaml: Self.noRoleYAML) { connection in
            let refusal = Authorizer.refusal(Self.nobody, .viewOwn, connection.config)
            #expect(refusal.message.contains("has no runvoy role"))
            let id = ExecutionID.make(milliseconds: 1_700_000_000_000)
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"status","params":{"execution_id":"\#(id)"}}"#,
                #"{"error":{"code":"permission_denied","message":"\#(refusal.message)"},"id":1}"#)
            #expect(connection.auditor.events.map(\.kind) == [.requestDenied])
            #expect(connection.auditor.events.first?.fields.first.map { "\($0)=\($1)" } == "METHOD=status")
        }
    }

    @Test func aKillOfNoExecutionIsAuditedAsAKillRefusal() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            let id = ExecutionID.make(milliseconds: 1_700_000_000_000)
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"kill","params":{"execution_id":"\#(id)"}}"#,
                #"{"error":{"code":"no_such_execution","message":"no execution \#(id)"},"id":1}"#)
            let event = try #require(connection.auditor.events.first)
            #expect(connection.auditor.events.count == 1)
            #expect(event.kind == .executionKill)
            #expect(event.message == "refused nobody (uid 65534) kill of \(id): no execution \(id)")
            #expect(
                event.fields.map { "\($0)=\($1)" } == [
                    "EXECUTION_ID=\(id)", "CALLER_UID=65534", "CALLER_USER=nobody", "CALLER_PID=4242", "SIGNAL=TERM",
                    "DECISION=deny", "REASON=no_such_execution: no execution \(id)",
                ])
        }
    }

    @Test func anExecutionTheCallerMayNotSeeIsAnsweredAsMissingAndAuditedWithTheRealReason() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            let id = ExecutionID.make(milliseconds: 1_700_000_000_000)
            try connection.executions.store.insert(
                ExecutionInfo(
                    executionId: id, status: .succeeded, callerUid: 1000, callerUser: "alice", callerPid: 42,
                    executor: "default", runAs: "nobody:nogroup", argv: ["true"], workingDirectory: "/", envKeys: [],
                    pid: nil, exitCode: 0, signal: nil, createdAtMs: 1_700_000_000_000, startedAtMs: nil,
                    finishedAtMs: nil, durationUsec: nil, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0,
                    droppedBytes: 0, outputPruned: false, configDigest: "abc", reason: nil))
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"status","params":{"execution_id":"\#(id)"}}"#,
                #"{"error":{"code":"no_such_execution","message":"no execution \#(id)"},"id":1}"#)
            let event = try #require(connection.auditor.events.first)
            #expect(connection.auditor.events.count == 1)
            #expect(event.kind == .requestDenied)
            #expect(event.message == "refused nobody (uid 65534) status: execution \(id) was started by another user")
            #expect(
                event.fields.map { "\($0)=\($1)" } == [
                    "METHOD=status", "CALLER_UID=65534", "CALLER_USER=nobody", "CALLER_PID=4242", "DECISION=deny",
                    "REASON=permission_denied: execution \(id) was started by another user", "EXECUTION_ID=\(id)",
                    "OWNER_UID=1000",
                ])
        }
    }

    @Test func errorsThatAreNotRefusalsAreNotAudited() async throws {
        try await InProcessConnection.with(caller: Self.nobody) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":1,"method":"list","params":{"limit":0}}"#,
                #"{"error":{"code":"invalid_argument","message":"limit must be between 1 and 1000"},"id":1}"#)
            await connection.expectReply(
                to: #"{"v":1,"id":2,"method":"stdin","params":{"eof":true}}"#,
                #"{"error":{"code":"invalid_state","message":"no execution is attached to this connection"},"id":2}"#)
            #expect(connection.auditor.events.isEmpty)
        }
    }

    // MARK: - ping

    @Test func pingAnswersAnyCaller() async throws {
        try await InProcessConnection.with(caller: Self.nobody, yaml: Self.noRoleYAML) { connection in
            await connection.expectReply(
                to: #"{"v":1,"id":"p","method":"ping"}"#, #"{"id":"p","result":{"pong":true}}"#)
            #expect(connection.auditor.events.isEmpty)
        }
    }

    // MARK: - The table

    @Test func everyMethodOfTheProtocolHasAHandlerUnderItsName() {
        let table = MethodTable.standard
        for method in Method.allCases {
            let handler = table[method.rawValue]
            #expect(handler.map { type(of: $0).method } == method.rawValue, "\(method)")
        }
        #expect(Set(table.handlers.keys) == Set(Method.allCases.map(\.rawValue) + ["ping"]))
    }
}

/// An auditor that keeps what it is given, and refuses the kinds a test tells it to (as a journal that does not
/// take records makes `AuditLog.record` refuse, fail-closed).
final class RecordingAuditor: AuditSink {
    private let recorded = Mutex<[AuditEvent]>([])
    private let refused = Mutex<Set<AuditEvent.Kind>>([])

    var events: [AuditEvent] { recorded.withLock { $0 } }

    /// From now on, records of `kinds` that must be written before an action cannot be written.
    func refuse(_ kinds: Set<AuditEvent.Kind>) { refused.withLock { $0 = kinds } }

    func record(_ event: AuditEvent) async throws(RunvoyError) {
        if refused.withLock({ $0.contains(event.kind) }) {
            throw RunvoyError(.auditUnavailable, "the audit trail cannot be written (test); nothing was done")
        }
        recorded.withLock { $0.append(event) }
    }

    func recordBestEffort(_ event: AuditEvent) { recorded.withLock { $0.append(event) } }
}

/// One `Connection` served over `NIOAsyncTestingChannel`, with the pipeline the server gives every connection.
struct InProcessConnection {
    let channel: NIOAsyncTestingChannel
    let auditor: RecordingAuditor
    let config: DaemonConfig
    let executions: ExecutionManager

    /// Runs `body` against a connection from `caller` to a daemon on the configuration `yaml` (its state in a
    /// temporary directory), then closes the connection and waits for it to end.
    static func with(
        caller: Caller, yaml: String = RouterTests.developerYAML, playbooks: [PlaybookConfig] = [],
        _ body: (InProcessConnection) async throws -> Void
    ) async throws {
        var template = Array("/tmp/runvoyd-router-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(directory) }
        var parsed = try ConfigLoader.parse(
            yaml: yaml.replacingOccurrences(of: "/nonexistent", with: directory), file: "(test)")
        parsed.playbooks = playbooks
        let config = parsed
        let logger = Logger(label: "RouterTests")
        let store = try ExecutionStore(stateDirectory: config.stateDirectory)
        let secrets = try SecretStore(store: store, key: try #require(MasterKey.parse(Array(repeating: 7, count: 32))))
        let refusals = RefusalThrottle(logger: logger)
        let executions = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: store, secrets: secrets,
            refusals: refusals
        ) { _ in }
        let configStore = ConfigStore(config)
        let auditor = RecordingAuditor()
        let context = ServerContext(
            config: configStore, executions: executions,
            reloader: ConfigReloader(path: nil, store: configStore, notifier: SystemdNotifier(), logger: logger),
            refusals: refusals, logger: logger, auditor: { _ in auditor })

        let channel = NIOAsyncTestingChannel()
        let activity = ConnectionTimeoutHandler.Activity()
        let wrapped = try await channel.testingEventLoop.executeInContext {
            try RunvoyServer.wrap(channel, limits: config.limits, activity: activity)
        }
        try await channel.connect(to: SocketAddress(unixDomainSocketPath: "/runvoyd-router-test"))
        let served = Task {
            await Connection(channel: wrapped, caller: caller, activity: activity, context: context).run()
        }
        let connection = InProcessConnection(
            channel: channel, auditor: auditor, config: config, executions: executions)
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

    /// Sends `request` and expects `reply`, byte for byte.
    func expectReply(
        to request: String, _ reply: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        let actual = await call(request)
        #expect(actual == reply, sourceLocation: sourceLocation)
    }

    /// Sends one request frame without waiting for anything.
    func send(_ request: String) async throws {
        var frame = channel.allocator.buffer(capacity: 4 + request.utf8.count)
        frame.writeInteger(UInt32(request.utf8.count))
        frame.writeString(request)
        try await channel.writeInbound(frame)
    }

    /// The next frame the daemon writes, as text (a binary output frame as `binary:` and its payload's size).
    func nextFrame() async throws -> String {
        var reply = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        let length = reply.readInteger(as: UInt32.self) ?? 0
        if length & 0x8000_0000 != 0 { return "binary:\(reply.readableBytes)" }
        return reply.readString(length: reply.readableBytes) ?? ""
    }

    /// Sends one request frame and returns the next frame the daemon writes, as text (or what went wrong).
    func call(_ request: String) async -> String {
        do {
            return try await exchange(request)
        } catch {
            return "no reply: \(error)"
        }
    }

    private func exchange(_ request: String) async throws -> String {
        var frame = channel.allocator.buffer(capacity: 4 + request.utf8.count)
        frame.writeInteger(UInt32(request.utf8.count))
        frame.writeString(request)
        try await channel.writeInbound(frame)
        var reply = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        let length = reply.readInteger(as: UInt32.self)
        #expect(length.map(Int.init) == reply.readableBytes, "the frame's header says how long its payload is")
        return reply.readString(length: reply.readableBytes) ?? ""
    }
}
