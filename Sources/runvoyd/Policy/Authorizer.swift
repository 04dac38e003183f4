import RunvoyConfig
import RunvoyKit

/// The one place that decides whether a caller may use an executor and run a command on it.
enum Authorizer {
    /// An allow or deny with the reason the audit trail records.
    struct Decision: Sendable, Equatable {
        var allowed: Bool
        var reason: String
        /// The wire error for a denial.
        var error: RunvoyError?

        static func allow(_ reason: String) -> Decision { Decision(allowed: true, reason: reason, error: nil) }
        static func deny(_ code: RunvoyError.Code, _ reason: String) -> Decision {
            Decision(allowed: false, reason: reason, error: RunvoyError(code, reason))
        }
    }

    /// Whose executions `caller` may see in the history: nil for everyone's (administrators), else the uid whose
    /// own executions are visible. Used by `list`, `status` and `logs`.
    static func historyScope(_ caller: Caller) -> UInt32? {
        caller.isAdmin ? nil : caller.uid
    }

    /// Whether `caller` may see an execution started by `ownerUid` (its record and its output).
    static func mayView(_ caller: Caller, ownerUid: UInt32) -> Bool {
        historyScope(caller).map { $0 == ownerUid } ?? true
    }

    /// Whether `caller` may signal or kill an execution started by `ownerUid`.
    static func mayKill(_ caller: Caller, ownerUid: UInt32) -> Bool {
        caller.isAdmin || caller.uid == ownerUid
    }

    /// Whether `caller` may use `executor` at all. Root always may.
    static func mayUse(_ caller: Caller, _ executor: ExecutorConfig) -> Bool {
        if caller.isAdmin { return true }
        guard let name = caller.userName else { return false }
        return executor.access.admits(userName: name, groupNames: caller.groupNames)
    }

    /// Decides an `exec` request: executor access first, then the command rules.
    static func decide(
        caller: Caller, executor: ExecutorConfig, argv: [String], resolvedPath: String?, adminContact: String?
    ) -> Decision {
        guard mayUse(caller, executor) else {
            var reason = "user \(caller.displayName) may not use executor '\(executor.name)'"
            if let adminContact { reason += "; ask \(adminContact) for access" }
            return .deny(.permissionDenied, reason)
        }
        switch executor.commands {
        case .any:
            return .allow(caller.isAdmin ? "root; executor accepts any command" : "executor accepts any command")
        case .patterns(let patterns):
            for pattern in patterns where pattern.matches(argv: argv, resolvedPath: resolvedPath) {
                return .allow("matches command pattern at line \(pattern.line)")
            }
            return .deny(
                .commandNotAllowed,
                "executor '\(executor.name)' does not accept this command; `runvoyctl whoami` lists the executors you may use"
            )
        }
    }
}
