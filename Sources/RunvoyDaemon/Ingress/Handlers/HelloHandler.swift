import RunvoyKit

/// `hello`: the daemon's version and the protocol versions it speaks, and the one agreed for the connection.
struct HelloHandler: MethodHandler {
    static let method = Method.hello.rawValue
    /// A greeting keeps no connection from being idle.
    static let countsAsActivity = false
    static let params = ParamsRule.optional(default: HelloParams(client: nil, versions: nil))

    func handle(_ params: HelloParams, context: RequestContext) async throws -> Outcome<HelloResult> {
        let offered = params.versions ?? RunvoyProtocol.supportedVersions
        guard let chosen = offered.filter(RunvoyProtocol.supportedVersions.contains).max() else {
            throw RunvoyError(
                .unsupportedVersion,
                "none of the protocol versions \(offered) is spoken here; this daemon speaks \(RunvoyProtocol.supportedVersions)"
            )
        }
        var result = HelloResult(
            daemon: "runvoyd", version: RunvoyProtocol.softwareVersion, protocols: RunvoyProtocol.supportedVersions,
            maxFrameBytes: context.config.limits.maxFrameBytes)
        result.protocol = chosen
        return .result(result)
    }
}
