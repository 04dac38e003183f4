import Glibc
import Logging
import NIOCore
import RunvoyConfig
import RunvoyKit

/// Serves one client connection: decodes requests, answers them, and streams executions started on it.
struct Connection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let caller: Caller
    let activity: ConnectionTimeoutHandler.Activity
    let context: ServerContext

    func run() async {
        let logger = context.logger
        do {
            try await channel.executeThenClose { inbound, outbound in
                let sink = ConnectionSink(outbound: outbound, allocator: channel.channel.allocator, requestID: nil)
                var attached: Execution?
                let streams = StreamTasks()
                var peerGone = false
                defer {
                    // `logs` streams end with the connection unless it was only half-closed (awaited below).
                    streams.cancelAll()
                }
                do {
                    for try await frame in inbound {
                        if let execution = try await handle(
                            frame, outbound: outbound, sink: sink, attached: attached, streams: streams)
                        {
                            attached = execution
                        }
                    }
                } catch let error as FrameDecoder.FrameTooLarge {
                    try? await sink.send(Reply<NoParams>(id: nil, error: error.wireError))
                    logger.warning(
                        "closing connection: oversized frame",
                        metadata: ["uid": "\(caller.uid)", "pid": "\(caller.pid)", "length": "\(error.length)"])
                    attached?.clientGone()
                    return
                } catch is FrameDecoder.TruncatedFrame {
                    logger.debug("connection closed in the middle of a frame", metadata: ["uid": "\(caller.uid)"])
                    peerGone = true
                } catch {
                    logger.debug("connection failed", metadata: ["uid": "\(caller.uid)", "error": "\(error)"])
                    peerGone = true
                }
                // End of input. A client that only half-closed still gets the rest of its execution's output;
                // one that is gone gets nothing more, and its command is killed only if it asked for that.
                if let execution = attached, !execution.isFinished {
                    if execution.killOnDisconnect || peerGone { execution.clientGone() }
                    if !peerGone {
                        // Half-closed: no more input can come, so the command reads EOF after what was sent.
                        await execution.closeStdin()
                        await execution.waitFinished()
                    }
                }
                if !peerGone {
                    await streams.waitAll()
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)", "uid": "\(caller.uid)"])
        }
    }

    /// Handles one request frame. Returns an execution that is now attached to this connection.
    private func handle(
        _ frame: ByteBuffer, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, sink: ConnectionSink,
        attached: Execution?, streams: StreamTasks
    ) async throws -> Execution? {
        let envelope: RequestEnvelope
        do {
            envelope = try frame.withUnsafeReadableBytes { try Frame.decode(RequestEnvelope.self, from: $0) }
        } catch {
            try await sink.send(
                Reply<NoParams>(
                    id: nil, error: RunvoyError(.badRequest, "the frame is not a valid request: \(Self.brief(error))")))
            return nil
        }
        let id = envelope.id
        func fail(_ error: RunvoyError) async throws {
            try await sink.send(Reply<NoParams>(id: id, error: error))
        }
        guard let version = envelope.v else {
            try await fail(RunvoyError(.badRequest, "the request has no \"v\" (protocol version)"))
            return nil
        }
        guard RunvoyProtocol.supportedVersions.contains(version) else {
            try await fail(
                RunvoyError(
                    .unsupportedVersion,
                    "protocol version \(version) is not supported; this daemon speaks \(RunvoyProtocol.supportedVersions)"
                ))
            return nil
        }
        guard let id else {
            try await fail(RunvoyError(.badRequest, "the request has no \"id\""))
            return nil
        }
        guard let name = envelope.method else {
            try await fail(RunvoyError(.badRequest, "the request has no \"method\""))
            return nil
        }
        guard let method = Method(rawValue: name) else {
            try await fail(RunvoyError(.unknownMethod, "unknown method '\(name)'"))
            return nil
        }
        func params<P: Decodable & Sendable>(_ type: P.Type) async throws -> P? {
            do {
                return try frame.withUnsafeReadableBytes { try Frame.decode(ParamsContainer<P>.self, from: $0) }.params
            } catch {
                // A value of the right type that is not one of those allowed (an unknown status, say) is
                // `invalid_argument`; anything else wrong with the JSON is `bad_request`.
                let code: RunvoyError.Code = Self.isUnknownValue(error) ? .invalidArgument : .badRequest
                try await fail(RunvoyError(code, "bad params for '\(name)': \(Self.brief(error))"))
                throw Skip()
            }
        }
        do {
            switch method {
            case .hello:
                let request = try await params(HelloParams.self)
                let offered = request?.versions ?? RunvoyProtocol.supportedVersions
                guard let chosen = offered.filter(RunvoyProtocol.supportedVersions.contains).max() else {
                    try await fail(
                        RunvoyError(
                            .unsupportedVersion,
                            "none of the protocol versions \(offered) is spoken here; this daemon speaks \(RunvoyProtocol.supportedVersions)"
                        ))
                    return nil
                }
                var result = HelloResult(
                    daemon: "runvoyd", version: RunvoyProtocol.softwareVersion,
                    protocols: RunvoyProtocol.supportedVersions,
                    maxFrameBytes: context.config.current.limits.maxFrameBytes)
                result.protocol = chosen
                try await sink.send(Reply(id: id, result: result))
            case .whoami:
                let config = context.config.current
                let usable = config.executors.filter { Authorizer.mayUse(caller, $0, config) }.map(\.name)
                let roles = Authorizer.roles(caller, config)
                var result = WhoamiResult(
                    uid: caller.uid, gid: caller.gid, pid: caller.pid, user: caller.userName, group: caller.groupName,
                    groups: caller.groupNames, admin: roles.contains(.admin), pidfd: caller.hasPidfd,
                    executors: usable,
                    defaultExecutor: usable.contains(config.defaultExecutorName) ? config.defaultExecutorName : nil)
                result.roles = roles.sorted().map(\.rawValue)
                try await sink.send(Reply(id: id, result: result))
            case .exec:
                guard let request = try await params(ExecParams.self) else {
                    try await fail(RunvoyError(.badRequest, "exec needs params with argv"))
                    return nil
                }
                if let attached, !attached.isFinished {
                    try await fail(
                        RunvoyError(.invalidState, "execution \(attached.id) is still attached to this connection"))
                    return nil
                }
                return try await exec(request, id: id, outbound: outbound)
            case .stdin:
                guard let request = try await params(StdinParams.self) else {
                    try await fail(RunvoyError(.badRequest, "stdin needs params with data or eof"))
                    return nil
                }
                guard let attached else {
                    try await fail(RunvoyError(.invalidState, "no execution is attached to this connection"))
                    return nil
                }
                if let data = request.data {
                    guard let bytes = Base64.decode(data) else {
                        try await fail(RunvoyError(.badRequest, "stdin data is not valid base64"))
                        return nil
                    }
                    var buffer = channel.channel.allocator.buffer(capacity: bytes.count)
                    buffer.writeBytes(bytes)
                    do {
                        try await attached.writeStdin(buffer)
                    } catch {
                        try await fail(error)
                    }
                }
                if request.eof == true { await attached.closeStdin() }
            case .signal:
                guard let request = try await params(SignalParams.self) else {
                    try await fail(RunvoyError(.badRequest, "signal needs params with a signal"))
                    return nil
                }
                guard let number = SignalName.parse(request.signal) else {
                    try await fail(RunvoyError(.invalidArgument, "unknown signal '\(request.signal)'"))
                    return nil
                }
                let target: Execution
                if let executionID = request.executionId {
                    let notRunning = RunvoyError(.invalidArgument, "no running execution \(executionID)")
                    guard let found = context.executions.running(id: executionID) else {
                        try await fail(notRunning)
                        return nil
                    }
                    // One the caller may not see is answered as one that does not run; the audit trail has why.
                    guard Authorizer.mayView(caller, ownerUid: found.caller.uid, context.config.current) else {
                        let error = RunvoyError(
                            .permissionDenied, "execution \(executionID) was started by another user")
                        auditDenied(
                            .signal, error,
                            fields: [("EXECUTION_ID", executionID), ("OWNER_UID", String(found.caller.uid))])
                        try await fail(notRunning)
                        return nil
                    }
                    guard Authorizer.mayKill(caller, ownerUid: found.caller.uid, context.config.current) else {
                        let error = RunvoyError(
                            .permissionDenied, "execution \(executionID) was started by another user")
                        auditDenied(.signal, error, fields: [("EXECUTION_ID", executionID)])
                        try await fail(error)
                        return nil
                    }
                    target = found
                } else {
                    guard let attached else {
                        try await fail(RunvoyError(.invalidState, "no execution is attached to this connection"))
                        return nil
                    }
                    target = attached
                }
                let delivered = target.signal(number)
                if !delivered && request.executionId == nil && target.isFinished {
                    try await fail(RunvoyError(.invalidState, "execution \(target.id) has ended"))
                    return nil
                }
                try await sink.send(Reply(id: id, result: SignalResult(signal: number, delivered: delivered)))
            case .list:
                try await list(try await params(ListParams.self) ?? ListParams(), id: id, sink: sink.replying(to: id))
            case .status:
                guard let ref = try await params(ExecutionRef.self) else {
                    try await fail(RunvoyError(.badRequest, "status needs params with execution_id"))
                    return nil
                }
                try await status(ref, id: id, sink: sink.replying(to: id))
            case .logs:
                guard let request = try await params(LogsParams.self) else {
                    try await fail(RunvoyError(.badRequest, "logs needs params with execution_id"))
                    return nil
                }
                if let stream = try await startLogs(request, id: id, sink: sink.replying(to: id)) {
                    streams.start(stream)
                }
            case .kill:
                guard let request = try await params(KillParams.self) else {
                    try await fail(RunvoyError(.badRequest, "kill needs params with execution_id"))
                    return nil
                }
                try await kill(request, id: id, sink: sink.replying(to: id))
            case .explain:
                guard let request = try await params(ExplainParams.self) else {
                    try await fail(RunvoyError(.badRequest, "explain needs params with argv"))
                    return nil
                }
                try await explain(request, id: id, sink: sink.replying(to: id))
            case .capabilities:
                try await capabilities(id: id, sink: sink.replying(to: id))
            case .users:
                try await users(id: id, sink: sink.replying(to: id))
            case .reload:
                try await reload(id: id, sink: sink.replying(to: id))
            case .secretsSet:
                guard let request = try await params(SecretSetParams.self) else {
                    try await fail(RunvoyError(.badRequest, "secrets_set needs params with name and value"))
                    return nil
                }
                try await secretsSet(request, id: id, sink: sink.replying(to: id))
            case .secretsList:
                try await secretsList(id: id, sink: sink.replying(to: id))
            case .secretsRemove, .secretsGet:
                guard let request = try await params(SecretRef.self) else {
                    try await fail(RunvoyError(.badRequest, "\(name) needs params with name"))
                    return nil
                }
                if method == .secretsRemove {
                    try await secretsRemove(request, id: id, sink: sink.replying(to: id))
                } else {
                    try await secretsGet(request, id: id, sink: sink.replying(to: id))
                }
            case .backup:
                let request = try await params(BackupParams.self) ?? BackupParams()
                if let stream = try await startBackup(request, id: id, sink: sink.replying(to: id)) {
                    streams.start(stream)
                }
            case .export:
                let request = try await params(ExportParams.self) ?? ExportParams()
                if let stream = try await startExport(request, id: id, sink: sink.replying(to: id)) {
                    streams.start(stream)
                }
            }
        } catch is Skip {
            return nil
        }
        return nil
    }

    private func exec(
        _ request: ExecParams, id: RequestID, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> Execution? {
        let sink = ConnectionSink(
            outbound: outbound, allocator: channel.channel.allocator, requestID: id,
            binary: request.binaryOutput ?? false)
        let detach = request.detach ?? false
        let config = context.config.current
        activity.attach()
        do {
            let execution = try await context.executions.start(
                request, requestID: id, caller: caller, config: config, sink: detach ? nil : sink
            ) { execution in
                try await sink.send(
                    StartedEvent(
                        id: id, executionId: execution.id, executor: execution.executorName, runAs: execution.runAs,
                        pid: execution.pid))
            }
            if detach {
                activity.detach()
                try await sink.send(
                    Reply(id: id, result: DetachedResult(executionId: execution.id, pid: execution.pid)))
                return nil
            }
            let activity = activity
            Task {
                await execution.waitFinished()
                activity.detach()
            }
            return execution
        } catch let error as RunvoyError {
            activity.detach()
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return nil
        } catch {
            activity.detach()
            throw error
        }
    }

    private struct Skip: Error {}

    /// What is wrong with a request's JSON, for a person: which member, and what it should be.
    static func brief(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "it is not valid JSON" }
        func member(_ path: [any CodingKey], _ last: String? = nil) -> String {
            var text = ""
            for key in path {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += (text.isEmpty ? "" : ".") + key.stringValue
                }
            }
            if let last { text += (text.isEmpty ? "" : ".") + last }
            return text
        }
        switch decoding {
        case .typeMismatch(let type, let context):
            return "member '\(member(context.codingPath))' must be \(Self.describe(type))"
        case .valueNotFound(let type, let context):
            return "member '\(member(context.codingPath))' must be \(Self.describe(type)), not null"
        case .keyNotFound(let key, let context):
            return "member '\(member(context.codingPath, key.stringValue))' is missing"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "it is not valid JSON" }
            return "member '\(member(context.codingPath))' has a value that is not allowed here"
        @unknown default:
            return "it does not have the members this method takes"
        }
    }

    /// Whether a decoding failure is a well-typed value outside the allowed set (an unknown enum case).
    static func isUnknownValue(_ error: any Error) -> Bool {
        guard case .dataCorrupted(let context)? = error as? DecodingError else { return false }
        return !context.codingPath.isEmpty
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt32.Type, is UInt64.Type, is UInt.Type:
            return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is RequestID.Type: return "a string or a whole number within the signed 64-bit range"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") || (name.hasPrefix("[") && name.contains(":")) { return "an object" }
            return "of another type"
        }
    }

}
