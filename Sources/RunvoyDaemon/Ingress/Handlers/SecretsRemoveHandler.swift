import RunvoyKit
import RunvoyStore

/// `secrets_rm`: removes a secret, audited (by name) before it is removed. Another user's secret reads like a
/// missing one to a caller without `secrets_manage_all`.
struct SecretsRemoveHandler: MethodHandler {
    static let method = Method.secretsRemove.rawValue
    static let params = ParamsRule<SecretRef>.required("secrets_rm needs params with name")

    func handle(_ params: SecretRef, context: RequestContext) async throws -> Outcome<SecretRemoveResult> {
        let fields = context.secretFields(params.name) + [("ACTION", "remove")]
        var auditedReason: RunvoyError?
        do throws(RunvoyError) {
            try context.requireManagePermission()
            let all = context.permits(.secretsManageAll)
            // Without secrets_manage_all, another user's secret is answered as one that does not exist.
            let missing = RunvoyError(
                .secretMissing, all ? "there is no secret '\(params.name)'" : "you have no secret '\(params.name)'")
            let found = try context.secretStore { store throws(StoreError) in try store.info(params.name) }
            guard let existing = found else { throw missing }
            if !all && existing.ownerUid != context.caller.uid {
                auditedReason = RunvoyError(
                    .permissionDenied,
                    "secret '\(existing.name)' belongs to \(existing.ownerUser); only they or an admin may remove it")
                throw missing
            }
            try context.requireManage(existing, auditedReason: &auditedReason)
            try context.requireAdminIfInjected(params.name, auditedReason: &auditedReason) {
                RunvoyError(.permissionDenied, "secret '\(params.name)' is not yours to remove; only an admin may")
            }
            try await context.auditor.record(
                AuditEvent(
                    .secretChanged, message: "\(context.caller.displayName) removed secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            let removed = try context.secretStore { store throws(StoreError) in try store.remove(params.name) }
            return .result(SecretRemoveResult(name: params.name, removed: removed))
        } catch {
            throw context.secretChangeFailure(error, fields: fields, reason: auditedReason)
        }
    }
}
