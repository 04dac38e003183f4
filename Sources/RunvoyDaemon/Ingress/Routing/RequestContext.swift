import Logging
import RunvoyConfig
import RunvoyKit

/// Everything one request is handled with, built once by `Router` before its handler runs: who asks, the one
/// configuration snapshot the whole request is decided under, where records and replies go, and what the
/// connection holds.
struct RequestContext: Sendable {
    /// The request's id, echoed in every frame sent for it.
    let id: RequestID
    /// The method's name, as the request spelled it.
    let method: String
    let caller: Caller
    /// The configuration in force when the request arrived. A reload during the request does not change it.
    let config: DaemonConfig
    let logger: Logger
    /// Where the request's audit records go (built from `config.audit`).
    let auditor: any AuditSink
    /// The connection, for the frames of this request.
    let sink: ConnectionSink
    /// The daemon's parts.
    let server: ServerContext
    /// The execution attached to the connection, if any (for `exec`, `stdin` and `signal`).
    let attached: Execution?
    /// Marks the connection busy while an execution or a stream runs on it (no idle timeout then).
    let activity: ConnectionTimeoutHandler.Activity

    var executions: ExecutionManager { server.executions }

    /// The temporary grants service; `store_unavailable` where none is kept.
    func grants() throws(RunvoyError) -> Grants {
        guard let grants = server.grants else {
            throw RunvoyError(.storeUnavailable, "temporary grants are not kept here")
        }
        return grants
    }

    /// "alice (uid 1000)", as audit messages name the caller.
    var who: String { "\(caller.displayName) (uid \(caller.uid))" }

    /// The caller's fields, in every audit record about its requests.
    var callerFields: [(String, String)] {
        [("CALLER_UID", String(caller.uid)), ("CALLER_USER", caller.displayName), ("CALLER_PID", String(caller.pid))]
    }

    /// Whether the caller holds any role: it decides how many of its refusals are recorded in full.
    var callerHasRole: Bool { !Authorizer.roles(caller, config).isEmpty }

    func permits(_ permission: Permission) -> Bool { Authorizer.permits(caller, permission, config) }

    /// Goes on when the caller has `permission`, or one of `alternatives`; otherwise throws the refusal for
    /// `permission`, audited as `request_denied`.
    func require(_ permission: Permission, or alternatives: Permission...) throws(Refusal) {
        guard permits(permission) || alternatives.contains(where: permits) else {
            throw denied(Authorizer.refusal(caller, permission, config))
        }
    }

    /// The refusal of this request for `reason`, audited as `request_denied` (with `fields` besides the caller's);
    /// the caller is told `told`, or `reason` itself. Methods whose refusals have records of their own (`exec`,
    /// `kill`, the secrets methods) build their `Refusal` themselves.
    func denied(_ reason: RunvoyError, told: RunvoyError? = nil, fields: [(String, String)] = []) -> Refusal {
        Refusal(
            error: told ?? reason,
            record: AuditEvent(
                .requestDenied, priority: 4, message: "refused \(who) \(method): \(reason.message)",
                fields: [("METHOD", method)] + callerFields + [("DECISION", "deny"), ("REASON", reason.description)]
                    + fields))
    }

    /// Sends `result` as a reply to this request now (for handlers that stream; others return it).
    func reply<Result: Codable & Sendable>(_ result: Result) async throws {
        try await sink.send(Reply(id: id, result: result))
    }

    /// Sends `error` as the reply to this request now (for handlers that stream; others throw it).
    func reply(error: RunvoyError) async throws {
        try await sink.send(Reply<NoParams>(id: id, error: error))
    }
}
