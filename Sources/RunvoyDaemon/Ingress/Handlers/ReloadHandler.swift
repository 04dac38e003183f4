import RunvoyKit

/// `reload`: applies the configuration file now, as SIGHUP does, and reports the outcome.
struct ReloadHandler: MethodHandler {
    static let method = Method.reload.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<ReloadResult> {
        try context.require(.configReload)
        switch context.server.reloader.reload() {
        case .reloaded(let new):
            return .result(
                ReloadResult(
                    configDigest: new.digest, policyDigest: PolicyReport.digest(new),
                    executors: new.executors.map(\.name)))
        case .rejected(let reason):
            throw RunvoyError(
                .invalidArgument, "the configuration was rejected; the previous one stays in force:\n\(reason)")
        case .noFile:
            throw RunvoyError(.invalidState, "runvoyd runs on its embedded configuration; there is no file to reload")
        }
    }
}
