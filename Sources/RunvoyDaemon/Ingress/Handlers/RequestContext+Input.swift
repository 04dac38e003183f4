import RunvoyKit

extension RequestContext {
    /// Goes on when the caller may use the executor of `live` now (`Authorizer.mayUse` with the configuration in
    /// force, temporary grants included), as input to a running command is access to that executor: a revoked or
    /// expired grant, or a reload that took the access away, ends it for `attach --write` and `stdin` too.
    /// Otherwise throws the refusal, audited as `request_denied`.
    func requireUse(of live: Execution) throws(Refusal) {
        if let executor = config.executor(named: live.executorName), Authorizer.mayUse(caller, executor, config) {
            return
        }
        throw denied(
            RunvoyError(
                .permissionDenied,
                "user \(caller.displayName) may no longer use executor '\(live.executorName)'; no input goes to execution \(live.id)"
            ),
            fields: [("EXECUTION_ID", live.id), ("EXECUTOR", live.executorName)])
    }
}
