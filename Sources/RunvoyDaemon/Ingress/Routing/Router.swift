import NIOCore
import RunvoyKit

/// The layer around every handler: reads the request's envelope, finds the method in the table, builds the
/// request's context, decodes the params, runs the handler, and sends its reply, or its error, or audits and sends
/// its refusal. Each of these is written once, here, for every method.
struct Router: Sendable {
    let table: MethodTable

    /// What the connection does after a request.
    enum Effect: Sendable {
        case none
        /// Start this stream in a task of its own.
        case stream(@Sendable () async -> Void)
        /// Start this stream in a task of its own, ended when the client's input ends.
        case watch(@Sendable () async -> Void)
        /// Attach this execution to the connection.
        case attach(Execution)
    }

    /// Answers one request frame. Errors thrown are the connection's (the client went away), not the request's.
    /// Every frame takes from the caller's request bucket before anything else is done or answered (a frame that
    /// is not a request, or names no method, too), but for greetings and what goes to the execution attached to
    /// the connection (`RateLimiter.unmetered`).
    func respond(
        to frame: ByteBuffer, on connection: Connection, sink: ConnectionSink, attached: Execution?
    ) async throws -> Effect {
        let server = connection.context
        let config = server.config.current
        var envelope: RequestEnvelope?
        let routed: Result<(id: RequestID, handler: any MethodHandler), RunvoyError>
        do {
            let decoded = try frame.withUnsafeReadableBytes { try Frame.decode(RequestEnvelope.self, from: $0) }
            envelope = decoded
            do throws(RunvoyError) { routed = .success(try route(decoded)) } catch { routed = .failure(error) }
        } catch {
            let reason = "the frame is not a valid request: \(ParamsDecoding.brief(error))"
            routed = .failure(RunvoyError(.badRequest, reason))
        }
        let handler = try? routed.get().handler
        let writes: (String) -> Bool = { id in
            guard let channel = sink.channel else { return false }
            return server.executions.running(id: id)?.writer.isHeld(by: ObjectIdentifier(channel)) == true
        }
        if !Self.isUnmetered(handler, frame, attached: attached, writes: writes),
            let limited = server.executions.rates.takeFrame(caller: connection.caller, config: config)
        {
            let method = handler.map { type(of: $0).method } ?? envelope?.method.map { String($0.prefix(64)) }
            server.refusals.recordRateLimited(
                RateLimiter.record(limited, caller: connection.caller, method: method ?? "(not a request)"),
                caller: connection.caller, audit: server.auditor(config.audit))
            try await sink.send(Reply<NoParams>(id: envelope?.id, error: limited))
            return .none
        }
        return try await respond(frame, envelope?.id, routed, on: connection, sink: sink, attached: attached)
    }

    /// Whether `frame` goes free of the request bucket: a greeting, or input, a signal or a window size for the
    /// execution attached to the connection (a `signal` or `resize` by id is metered), or input for an execution
    /// this connection is the attached writer of (`writes`). With no execution attached, `stdin`, `signal` and
    /// `resize` are metered like any request: they would only be refused, and a refusal is not free.
    static func isUnmetered(
        _ handler: (any MethodHandler)?, _ frame: ByteBuffer, attached: Execution?,
        writes: (String) -> Bool = { _ in false }
    ) -> Bool {
        guard let handler else { return false }
        let method = type(of: handler).method
        guard RateLimiter.unmetered.contains(method) else { return false }
        let isStdin = method == Method.stdin.rawValue
        guard isStdin || method == Method.signal.rawValue || method == Method.resize.rawValue else { return true }
        // Input on the connection that started the execution: not decoded twice.
        if isStdin && attached != nil { return true }
        let target = try? frame.withUnsafeReadableBytes { try Frame.decode(ParamsContainer<Target>.self, from: $0) }
        guard let target else { return false }
        if let id = target.params?.executionId { return isStdin && writes(id) }
        return attached != nil
    }

    /// The execution a `signal` or `resize` is for.
    private struct Target: Decodable, Sendable {
        var executionId: String?
        enum CodingKeys: String, CodingKey { case executionId = "execution_id" }
    }

    /// Answers a frame that passed the rate limit.
    private func respond(
        _ frame: ByteBuffer, _ id: RequestID?,
        _ routed: Result<(id: RequestID, handler: any MethodHandler), RunvoyError>, on connection: Connection,
        sink: ConnectionSink, attached: Execution?
    ) async throws -> Effect {
        let route: (id: RequestID, handler: any MethodHandler)
        switch routed {
        case .success(let found): route = found
        case .failure(let error):
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return .none
        }
        let server = connection.context
        let config = server.config.current
        // Only a caller with a role can be active: one without may only greet, and anything else it sends is
        // refused or does nothing, so it must not keep its connections from the idle timeout.
        if type(of: route.handler).countsAsActivity && !Authorizer.roles(connection.caller, config).isEmpty {
            connection.activity.touch()
        }
        let context = RequestContext(
            id: route.id, method: type(of: route.handler).method, caller: connection.caller, config: config,
            logger: server.logger, auditor: server.auditor(config.audit), sink: sink.replying(to: route.id),
            server: server, attached: attached, activity: connection.activity)
        return try await respond(frame, with: route.handler, context: context)
    }

    /// The request's id and handler, or why there are none.
    private func route(_ envelope: RequestEnvelope) throws(RunvoyError) -> (RequestID, any MethodHandler) {
        guard let version = envelope.v else {
            throw RunvoyError(.badRequest, "the request has no \"v\" (protocol version)")
        }
        guard RunvoyProtocol.supportedVersions.contains(version) else {
            throw RunvoyError(
                .unsupportedVersion,
                "protocol version \(version) is not supported; this daemon speaks \(RunvoyProtocol.supportedVersions)")
        }
        guard let id = envelope.id else { throw RunvoyError(.badRequest, "the request has no \"id\"") }
        guard let name = envelope.method else { throw RunvoyError(.badRequest, "the request has no \"method\"") }
        guard let handler = table[name] else { throw RunvoyError(.unknownMethod, "unknown method '\(name)'") }
        return (id, handler)
    }

    private func respond<Handler: MethodHandler>(
        _ frame: ByteBuffer, with handler: Handler, context: RequestContext
    ) async throws -> Effect {
        let outcome: Outcome<Handler.Result>
        do {
            let params = try ParamsDecoding.params(of: Handler.self, from: frame)
            outcome = try await handler.handle(params, context: context)
        } catch let refusal as Refusal {
            DaemonMetrics.shared.refused(refusal.error.code)
            context.server.refusals.record(
                refusal.record, caller: context.caller, hasRole: context.callerHasRole, audit: context.auditor)
            try await context.reply(error: refusal.error)
            return .none
        } catch let error as RunvoyError {
            try await context.reply(error: error)
            return .none
        }
        switch outcome {
        case .result(let result):
            try await context.reply(result)
            return .none
        case .done:
            return .none
        case .stream(let body):
            return .stream(body)
        case .watch(let body):
            return .watch(body)
        case .attach(let execution):
            return .attach(execution)
        }
    }
}
