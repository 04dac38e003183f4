import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// What the secrets methods share. Names, never values, reach the audit trail and messages.
extension RequestContext {
    /// The audit fields of a request about secret `name` (an invalid name is not repeated).
    func secretFields(_ name: String) -> [(String, String)] {
        [("SECRET_NAME", SecretName.isValid(name) ? name : "(invalid name)")] + callerFields
    }

    /// Any change to secrets takes `secrets_manage_own` or `secrets_manage_all`, checked before anything is
    /// looked up, so a caller without them learns nothing about which secrets exist.
    func requireManagePermission() throws(RunvoyError) {
        guard permits(.secretsManageOwn) || permits(.secretsManageAll) else {
            throw Authorizer.refusal(caller, .secretsManageOwn, config)
        }
    }

    /// Setting a new secret takes `secrets_manage_own`; changing or removing one takes ownership with it, or
    /// `secrets_manage_all`.
    /// A refusal names neither the owner nor the executors that use the secret (`notYours`); `auditedReason` gets
    /// the full reason for the audit trail.
    func requireManage(_ existing: SecretStore.Info?, auditedReason: inout RunvoyError?) throws(RunvoyError) {
        if permits(.secretsManageAll) { return }
        guard permits(.secretsManageOwn) else { throw Authorizer.refusal(caller, .secretsManageOwn, config) }
        if let existing, existing.ownerUid != caller.uid {
            auditedReason = RunvoyError(
                .permissionDenied,
                "secret '\(existing.name)' belongs to \(existing.ownerUser); only they or an admin may change it")
            throw notYours(existing.name)
        }
    }

    /// A name an executor injects is the administrators' to create, rotate and remove, since only they can
    /// write an executor's definition: otherwise a user could claim the name before the executor uses it, or keep
    /// its owner's rights afterwards, and so choose or break what a production executor receives. The caller is
    /// told `refusal()` (which names no executor); the audit trail gets the full reason.
    func requireAdminIfInjected(
        _ name: String, auditedReason: inout RunvoyError?, refusal: () -> RunvoyError
    ) throws(RunvoyError) {
        guard !permits(.secretsManageAll) else { return }
        let referencing = config.executors.filter { $0.secretNames.contains(name) }.map(\.name)
        guard !referencing.isEmpty else { return }
        auditedReason = RunvoyError(
            .permissionDenied,
            "secret '\(name)' is injected by executor \(referencing.map { "'\($0)'" }.joined(separator: ", "));"
                + " only an admin may set, rotate or remove it")
        throw refusal()
    }

    /// The refusal to set a secret that is another user's, or that an executor injects: one message for both,
    /// naming neither owner nor executors, so a caller learns only that the name is not theirs to set.
    func notYours(_ name: String) -> RunvoyError {
        var message = "secret '\(name)' is not yours to set; only an admin may"
        if let contact = config.adminContact { message += " (ask \(contact))" }
        return RunvoyError(.permissionDenied, message)
    }

    /// `error` from a change to a secret, as thrown to `Router`: refusals (permission, a missing secret, an
    /// invalid name or value) are audited as `secret_changed`, with `reason` when the caller is told less.
    func secretChangeFailure(_ error: RunvoyError, fields: [(String, String)], reason: RunvoyError?) -> any Error {
        guard error.code == .permissionDenied || error.code == .secretMissing || error.code == .invalidArgument else {
            return error
        }
        let real = reason ?? error
        return Refusal(
            error: error,
            record: AuditEvent(
                .secretChanged, priority: 4,
                message: "refused \(caller.displayName) a change to secret: \(real.message)",
                fields: fields + [("DECISION", "deny"), ("REASON", real.description)]))
    }

    /// Runs `body` on the secrets store; a failure is logged and answered as `internal_error`.
    func secretStore<T>(_ body: (SecretStore) throws(StoreError) -> T) throws(RunvoyError) -> T {
        do {
            return try body(executions.secrets)
        } catch {
            logger.error("secrets store unavailable", metadata: ["error": "\(error)"])
            throw RunvoyError(.internalError, "the secrets store cannot be read or written")
        }
    }
}
