import RunvoyKit
import RunvoyStore

/// `secrets_set`: sets or rotates a secret; the value travels in the request, never on a command line. The
/// change is audited, by name, before it is made (fail-closed).
struct SecretsSetHandler: MethodHandler {
    static let method = Method.secretsSet.rawValue
    static let params = ParamsRule<SecretSetParams>.required("secrets_set needs params with name and value")
    /// Largest value accepted.
    static let maximumSecretBytes = 64 << 10

    func handle(_ params: SecretSetParams, context: RequestContext) async throws -> Outcome<SecretSetResult> {
        var fields = context.secretFields(params.name)
        // The audit trail's reason when the caller is told less (see `notYours`).
        var auditedReason: RunvoyError?
        do throws(RunvoyError) {
            let value = try Self.value(params, context)
            try context.requireManagePermission()
            let existing = try context.secretStore { store throws(StoreError) in try store.info(params.name) }
            try context.requireManage(existing, auditedReason: &auditedReason)
            try context.requireAdminIfInjected(params.name, auditedReason: &auditedReason) {
                context.notYours(params.name)
            }
            // Audited (by name) before the change: fail-closed, as for executions.
            fields.append(("ACTION", existing == nil ? "set" : "rotate"))
            try await context.auditor.record(
                AuditEvent(
                    .secretChanged,
                    message:
                        "\(context.caller.displayName) \(existing == nil ? "set" : "rotated") secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            let (caller, takeOwnership) = (context.caller, context.permits(.secretsManageAll))
            let created = try context.secretStore { store throws(StoreError) in
                try store.set(
                    params.name, value: value, description: params.description, uid: caller.uid,
                    user: caller.displayName, atMs: WallClock.milliseconds(), takeOwnership: takeOwnership)
            }
            return .result(
                SecretSetResult(name: params.name, created: created, version: (existing?.version ?? 0) + 1))
        } catch {
            throw context.secretChangeFailure(error, fields: fields, reason: auditedReason)
        }
    }

    /// The value to store, once the name and the value are valid.
    private static func value(_ params: SecretSetParams, _ context: RequestContext) throws(RunvoyError) -> [UInt8] {
        guard SecretName.isValid(params.name) else {
            throw RunvoyError(
                .invalidArgument,
                "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
        }
        guard let value = Base64.decode(params.value) else {
            throw RunvoyError(.badRequest, "the value is not valid base64")
        }
        let minimum = context.config.secrets.minLength
        guard value.count >= minimum else {
            throw RunvoyError(
                .invalidArgument,
                "secret values must be at least \(minimum) bytes: shorter ones cannot be redacted from output without mangling it"
            )
        }
        guard value.count <= maximumSecretBytes else {
            throw RunvoyError(.invalidArgument, "secret values are at most \(maximumSecretBytes) bytes")
        }
        return value
    }
}
