import RunvoyKit

/// An `exec` refused before its command existed: by the checks and the decision (`ExecPlan.make`), by admission,
/// or because its history row or secrets could not be made. It is recorded as a denied `decision`.
struct ExecRefusal: Error {
    /// What the client is told.
    var error: RunvoyError
    /// The audit fields known when it was refused (the rule and the secrets only once decided).
    var fields: [(String, String)]
    var argv: [String]
    var executorName: String

    /// The denial's `decision` record. A refused argv is recorded within a bound (a prefix, its length and
    /// SHA-256), the smaller one for callers who hold no role: a refusal costs its caller nothing, and must not
    /// flood the journal (`RefusalThrottle` bounds how many there are).
    func record(caller: Caller, hasRole: Bool) -> AuditEvent {
        let bound = hasRole ? RefusalThrottle.argvBytesWithRole : RefusalThrottle.argvBytesWithoutRole
        var denial = fields.filter { $0.0 != "ARGV" && $0.0 != "ENV_KEYS" }
        denial += RefusalThrottle.boundedArgv(argv, limit: bound)
        if let keys = fields.first(where: { $0.0 == "ENV_KEYS" })?.1 {
            denial.append(("ENV_KEYS", keys.utf8.count <= bound ? keys : String(keys.prefix(bound)) + "…"))
        }
        denial.append(("DECISION", "deny"))
        denial.append(("REASON", "\(error.code.rawValue): \(error.message)"))
        return AuditEvent(
            .decision, priority: 4,
            message: "denied \(caller.displayName) (uid \(caller.uid)) exec on '\(executorName)': \(error.message)",
            fields: denial)
    }
}
