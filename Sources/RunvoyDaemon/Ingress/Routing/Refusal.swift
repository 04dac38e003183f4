import RunvoyKit

/// A refused request: what the caller is told, and the record the audit trail gets, which has the real reason
/// when the caller is told less (an execution it may not see is "no execution"). Handlers throw it; `Router`
/// records it (within the caller's rate, see `RefusalThrottle`) and sends `error`, once, for every method.
struct Refusal: Error {
    /// The reply's error.
    var error: RunvoyError
    /// The audit record, with the caller's fields.
    var record: AuditEvent
}
