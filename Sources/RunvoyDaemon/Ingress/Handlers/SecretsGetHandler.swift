import RunvoyKit
import RunvoyStore

/// `secrets_get`: a secret's value, for administrators, only while `secrets.admin_read` is on. Every read and
/// every refusal is audited as `secret_read`.
struct SecretsGetHandler: MethodHandler {
    static let method = Method.secretsGet.rawValue
    static let params = ParamsRule<SecretRef>.required("secrets_get needs params with name")

    func handle(_ params: SecretRef, context: RequestContext) async throws -> Outcome<SecretValueResult> {
        let fields = context.secretFields(params.name)
        do throws(RunvoyError) {
            guard context.config.secrets.adminRead else {
                throw RunvoyError(
                    .permissionDenied, "reading secret values is turned off (secrets.admin_read in the configuration)")
            }
            guard context.permits(.secretsManageAll) else {
                throw Authorizer.refusal(context.caller, .secretsManageAll, context.config)
            }
            let found = try context.secretStore { store throws(StoreError) in try store.value(params.name) }
            guard let value = found else { throw RunvoyError(.secretMissing, "there is no secret '\(params.name)'") }
            try await context.auditor.record(
                AuditEvent(
                    .secretRead, priority: 4,
                    message: "\(context.caller.displayName) read the value of secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            return .result(SecretValueResult(name: params.name, value: Base64.encode(value)))
        } catch {
            let shown = SecretName.isValid(params.name) ? params.name : "(invalid name)"
            throw Refusal(
                error: error,
                record: AuditEvent(
                    .secretRead, priority: 4,
                    message: "refused \(context.caller.displayName) a read of secret '\(shown)': \(error.message)",
                    fields: fields + [("DECISION", "deny"), ("REASON", error.description)]))
        }
    }
}
