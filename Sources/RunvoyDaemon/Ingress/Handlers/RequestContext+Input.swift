import RunvoyKit

extension RequestContext {
    /// Goes on when the caller may use the executor of `live` now (`Authorizer.mayUse` with the configuration in
    /// force, temporary grants included), as input to a running command is access to that executor: a revoked or
    /// expired grant, or a reload that took the access away, ends it for `attach --write` and `stdin` too.
    /// A break-glass run also needs its user to be still allowed to break glass, where its command needs approval
    /// (review 2 of grants, R4). Otherwise throws the refusal, audited as `request_denied`.
    func requireUse(of live: Execution) throws(Refusal) {
        if let executor = config.executor(named: live.executorName), Authorizer.mayUse(caller, executor, config),
            live.admitted != .breakGlass || Grants.stillAllowed(live, config)
        {
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

extension RequestContext {
    /// Whether the caller may still see `live` under the configuration in force now, not the request's snapshot:
    /// an `attach` or `logs --follow` opened under a role grant stops when the grant ends (review 2 of grants, R3).
    func stillSees(_ live: Execution) -> Bool {
        Authorizer.mayView(caller, ownerUid: live.caller.uid, server.config.current)
    }

    /// Why a stream of `live`'s output ended before the output did: its caller may no longer see it.
    func accessEnded(_ live: Execution) -> RunvoyError {
        RunvoyError(
            .permissionDenied,
            "user \(caller.displayName) may no longer see execution \(live.id) (a grant or a reload took it away); its output stops here"
        )
    }
}
