import RunvoyKit

/// Answers one method. A handler neither decodes its params nor encodes its reply, and it audits no refusal
/// itself: `Router` does all three around it, the same way for every method. It returns what to send (or what the
/// connection should do next), throws a `RunvoyError` to have it sent as the reply, or throws a `Refusal` to have
/// it audited and sent.
///
/// Adding a method takes one handler (a file in `Handlers/`) and one entry in `MethodTable.standard`.
protocol MethodHandler: Sendable {
    associatedtype Params: Decodable & Sendable
    associatedtype Result: Codable & Sendable = NoParams

    /// The method's name on the wire.
    static var method: String { get }
    /// How `params` is read.
    static var params: ParamsRule<Params> { get }

    /// Whether a request for this method keeps its connection from being idle (`limits.idle_timeout`). Greetings
    /// do not: a connection that only says `hello` holds a slot for nothing.
    static var countsAsActivity: Bool { get }

    func handle(_ params: Params, context: RequestContext) async throws -> Outcome<Result>
}

extension MethodHandler {
    static var countsAsActivity: Bool { true }
}

/// How a method reads the `params` member of its request.
enum ParamsRule<Params: Sendable>: Sendable {
    /// The method takes none, and `params` is not read at all (whatever it holds); the handler gets `value`.
    case ignored(Params)
    /// Absent or null, the handler gets `default`.
    case optional(default: Params)
    /// Absent or null, the request is `bad_request` with this message.
    case required(String)
}

/// What a handler's request comes to.
enum Outcome<Result: Codable & Sendable>: Sendable {
    /// Send `result` as the reply.
    case result(Result)
    /// Nothing more to send for this request (`stdin` has no reply; `exec` sent its frames as they happened).
    case done
    /// Run `body` in a task of its own, so that the connection keeps reading requests; it sends the reply.
    case stream(@Sendable () async -> Void)
    /// Like `stream`, but the client's end of input ends it too (`attach`: closing, or half-closing, detaches).
    case watch(@Sendable () async -> Void)
    /// Attach the execution to the connection: its output and its end go out on it, and `stdin` and `signal`
    /// go to it.
    case attach(Execution)
}
