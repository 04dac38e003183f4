import RunvoyKit

/// `ping`: whether the daemon answers. Any caller that can connect may ask, as for `hello`; params are not read.
struct PingHandler: MethodHandler {
    static let method = "ping"
    /// A greeting keeps no connection from being idle.
    static let countsAsActivity = false
    static let params = ParamsRule.ignored(NoParams())

    struct Pong: Codable, Sendable, Equatable {
        var pong = true
    }

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<Pong> {
        .result(Pong())
    }
}
