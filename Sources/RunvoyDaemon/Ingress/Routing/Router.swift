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
    func respond(
        to frame: ByteBuffer, on connection: Connection, sink: ConnectionSink, attached: Execution?
    ) async throws -> Effect {
        let envelope: RequestEnvelope
        do {
            envelope = try frame.withUnsafeReadableBytes { try Frame.decode(RequestEnvelope.self, from: $0) }
        } catch {
            let reason = "the frame is not a valid request: \(ParamsDecoding.brief(error))"
            try await sink.send(Reply<NoParams>(id: nil, error: RunvoyError(.badRequest, reason)))
            return .none
        }
        let routed: (id: RequestID, handler: any MethodHandler)
        do throws(RunvoyError) {
            routed = try route(envelope)
        } catch {
            try await sink.send(Reply<NoParams>(id: envelope.id, error: error))
            return .none
        }
        let server = connection.context
        let config = server.config.current
        // Only a caller with a role can be active: one without may only greet, and anything else it sends is
        // refused or does nothing, so it must not keep its connections from the idle timeout.
        if type(of: routed.handler).countsAsActivity && !Authorizer.roles(connection.caller, config).isEmpty {
            connection.activity.touch()
        }
        if let limited = server.executions.rates.takeRequest(
            type(of: routed.handler).method, caller: connection.caller, config: config)
        {
            server.refusals.recordRateLimited(
                RateLimiter.record(limited, caller: connection.caller, method: type(of: routed.handler).method),
                caller: connection.caller, audit: server.auditor(config.audit))
            try await sink.send(Reply<NoParams>(id: routed.id, error: limited))
            return .none
        }
        let context = RequestContext(
            id: routed.id, method: type(of: routed.handler).method, caller: connection.caller, config: config,
            logger: server.logger, auditor: server.auditor(config.audit), sink: sink.replying(to: routed.id),
            server: server, attached: attached, activity: connection.activity)
        return try await respond(frame, with: routed.handler, context: context)
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
