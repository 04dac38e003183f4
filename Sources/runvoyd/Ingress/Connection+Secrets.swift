import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The secrets methods: `secrets_set`, `secrets_list`, `secrets_rm`, `secrets_get`. Values travel only inside
/// `secrets_set` (and `secrets_get` where allowed); names, never values, reach the audit trail and messages.
extension Connection {
    /// Largest value accepted.
    static let maximumSecretBytes = 64 << 10

    func secretsSet(_ params: SecretSetParams, id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        let audit = AuditLog(
            failClosed: config.audit.failClosed, writeTimeout: config.audit.writeTimeout, logger: context.logger)
        var fields = secretFields(params.name)
        // The audit trail's reason when the caller is told less (see `notYours`).
        var auditedReason: RunvoyError?
        let result: SecretSetResult
        do throws(RunvoyError) {
            guard SecretName.isValid(params.name) else {
                throw RunvoyError(
                    .invalidArgument,
                    "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
            }
            guard let value = Base64.decode(params.value) else {
                throw RunvoyError(.badRequest, "the value is not valid base64")
            }
            guard value.count >= config.secrets.minLength else {
                throw RunvoyError(
                    .invalidArgument,
                    "secret values must be at least \(config.secrets.minLength) bytes: shorter ones cannot be redacted from output without mangling it"
                )
            }
            guard value.count <= Self.maximumSecretBytes else {
                throw RunvoyError(.invalidArgument, "secret values are at most \(Self.maximumSecretBytes) bytes")
            }
            try requireManagePermission(config)
            let existing = try secretStore { store throws(StoreError) in try store.info(params.name) }
            try requireManage(existing, config, auditedReason: &auditedReason)
            try requireAdminIfInjected(params.name, config, auditedReason: &auditedReason) {
                notYours(params.name, config)
            }
            // Audited (by name) before the change: fail-closed, as for executions.
            fields.append(("ACTION", existing == nil ? "set" : "rotate"))
            try await audit.record(
                AuditEvent(
                    .secretChanged,
                    message: "\(caller.displayName) \(existing == nil ? "set" : "rotated") secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            let created = try secretStore { store throws(StoreError) in
                try store.set(
                    params.name, value: value, description: params.description, uid: caller.uid,
                    user: caller.displayName, atMs: WallClock.milliseconds(),
                    takeOwnership: Authorizer.permits(caller, .secretsManageAll, config))
            }
            result = SecretSetResult(name: params.name, created: created, version: (existing?.version ?? 0) + 1)
        } catch {
            deniedSecret(error, fields: fields, audit: audit, reason: auditedReason)
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    func secretsList(id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        let all = Authorizer.permits(caller, .secretsManageAll, config)
        guard all || Authorizer.permits(caller, .secretsManageOwn, config) else {
            try await sink.send(
                Reply<NoParams>(id: id, error: refuse(.secretsList, .secretsManageOwn, config)))
            return
        }
        let result: SecretListResult
        do throws(RunvoyError) {
            let infos = try secretStore { store throws(StoreError) in try store.list() }
            let visible = infos.filter { all || $0.ownerUid == caller.uid }
            let set = Set(infos.map(\.name))
            let secrets = visible.map { info in
                SecretDescription(
                    name: info.name, description: info.description, owner: info.ownerUser, updatedBy: info.updatedBy,
                    createdAtMs: info.createdAtMs, updatedAtMs: info.updatedAtMs, version: info.version,
                    executors: config.executors.filter { $0.secretNames.contains(info.name) }.map(\.name))
            }
            let usable = config.executors.filter { all || Authorizer.mayUse(caller, $0, config) }
            let missing = Set(usable.flatMap(\.secretNames)).subtracting(set).sorted()
            result = SecretListResult(secrets: secrets, missing: missing)
        } catch {
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    func secretsRemove(_ params: SecretRef, id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        let audit = AuditLog(
            failClosed: config.audit.failClosed, writeTimeout: config.audit.writeTimeout, logger: context.logger)
        var fields = secretFields(params.name)
        fields.append(("ACTION", "remove"))
        var auditedReason: RunvoyError?
        let result: SecretRemoveResult
        do throws(RunvoyError) {
            try requireManagePermission(config)
            let all = Authorizer.permits(caller, .secretsManageAll, config)
            // Without secrets_manage_all, another user's secret is answered as one that does not exist.
            let missing = RunvoyError(
                .secretMissing, all ? "there is no secret '\(params.name)'" : "you have no secret '\(params.name)'")
            guard let existing = try secretStore({ store throws(StoreError) in try store.info(params.name) }) else {
                throw missing
            }
            if !all && existing.ownerUid != caller.uid {
                auditedReason = RunvoyError(
                    .permissionDenied,
                    "secret '\(existing.name)' belongs to \(existing.ownerUser); only they or an admin may remove it")
                throw missing
            }
            try requireManage(existing, config, auditedReason: &auditedReason)
            try requireAdminIfInjected(params.name, config, auditedReason: &auditedReason) {
                RunvoyError(.permissionDenied, "secret '\(params.name)' is not yours to remove; only an admin may")
            }
            try await audit.record(
                AuditEvent(
                    .secretChanged, message: "\(caller.displayName) removed secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            let removed = try secretStore { store throws(StoreError) in try store.remove(params.name) }
            result = SecretRemoveResult(name: params.name, removed: removed)
        } catch {
            deniedSecret(error, fields: fields, audit: audit, reason: auditedReason)
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    func secretsGet(_ params: SecretRef, id: RequestID, sink: ConnectionSink) async throws {
        let config = context.config.current
        let audit = AuditLog(
            failClosed: config.audit.failClosed, writeTimeout: config.audit.writeTimeout, logger: context.logger)
        let fields = secretFields(params.name)
        let result: SecretValueResult
        do throws(RunvoyError) {
            guard config.secrets.adminRead else {
                throw RunvoyError(
                    .permissionDenied, "reading secret values is turned off (secrets.admin_read in the configuration)")
            }
            guard Authorizer.permits(caller, .secretsManageAll, config) else {
                throw Authorizer.refusal(caller, .secretsManageAll, config)
            }
            guard let value = try secretStore({ store throws(StoreError) in try store.value(params.name) }) else {
                throw RunvoyError(.secretMissing, "there is no secret '\(params.name)'")
            }
            try await audit.record(
                AuditEvent(
                    .secretRead, priority: 4,
                    message: "\(caller.displayName) read the value of secret '\(params.name)'",
                    fields: fields + [("DECISION", "allow")]))
            result = SecretValueResult(name: params.name, value: Base64.encode(value))
        } catch {
            let shown = SecretName.isValid(params.name) ? params.name : "(invalid name)"
            context.refusals.record(
                AuditEvent(
                    .secretRead, priority: 4,
                    message: "refused \(caller.displayName) a read of secret '\(shown)': \(error.message)",
                    fields: fields + [("DECISION", "deny"), ("REASON", error.description)]),
                caller: caller, hasRole: !Authorizer.roles(caller, config).isEmpty, audit: audit)
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    // MARK: - Helpers

    private func secretFields(_ name: String) -> [(String, String)] {
        [
            ("SECRET_NAME", SecretName.isValid(name) ? name : "(invalid name)"), ("CALLER_UID", String(caller.uid)),
            ("CALLER_USER", caller.displayName), ("CALLER_PID", String(caller.pid)),
        ]
    }

    /// Any change to secrets takes `secrets_manage_own` or `secrets_manage_all`, checked before anything is
    /// looked up, so a caller without them learns nothing about which secrets exist.
    private func requireManagePermission(_ config: DaemonConfig) throws(RunvoyError) {
        guard
            Authorizer.permits(caller, .secretsManageOwn, config)
                || Authorizer.permits(caller, .secretsManageAll, config)
        else {
            throw Authorizer.refusal(caller, .secretsManageOwn, config)
        }
    }

    /// Setting a new secret takes `secrets_manage_own`; changing or removing one takes ownership with it, or
    /// `secrets_manage_all`.
    /// A refusal names neither the owner nor the executors that use the secret (`notYours`); `auditedReason` gets
    /// the full reason for the audit trail.
    private func requireManage(
        _ existing: SecretStore.Info?, _ config: DaemonConfig, auditedReason: inout RunvoyError?
    ) throws(RunvoyError) {
        if Authorizer.permits(caller, .secretsManageAll, config) { return }
        guard Authorizer.permits(caller, .secretsManageOwn, config) else {
            throw Authorizer.refusal(caller, .secretsManageOwn, config)
        }
        if let existing, existing.ownerUid != caller.uid {
            auditedReason = RunvoyError(
                .permissionDenied,
                "secret '\(existing.name)' belongs to \(existing.ownerUser); only they or an admin may change it")
            throw notYours(existing.name, config)
        }
    }

    /// A name an executor injects is the administrators' to create, rotate and remove, since only they can
    /// write an executor's definition: otherwise a user could claim the name before the executor uses it, or keep
    /// its owner's rights afterwards, and so choose or break what a production executor receives. The caller is
    /// told `refusal()` (which names no executor); the audit trail gets the full reason.
    private func requireAdminIfInjected(
        _ name: String, _ config: DaemonConfig, auditedReason: inout RunvoyError?, refusal: () -> RunvoyError
    ) throws(RunvoyError) {
        guard !Authorizer.permits(caller, .secretsManageAll, config) else { return }
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
    private func notYours(_ name: String, _ config: DaemonConfig) -> RunvoyError {
        var message = "secret '\(name)' is not yours to set; only an admin may"
        if let contact = config.adminContact { message += " (ask \(contact))" }
        return RunvoyError(.permissionDenied, message)
    }

    private func deniedSecret(
        _ error: RunvoyError, fields: [(String, String)], audit: AuditLog, reason: RunvoyError? = nil
    ) {
        guard error.code == .permissionDenied || error.code == .secretMissing || error.code == .invalidArgument else {
            return
        }
        let real = reason ?? error
        context.refusals.record(
            AuditEvent(
                .secretChanged, priority: 4,
                message: "refused \(caller.displayName) a change to secret: \(real.message)",
                fields: fields + [("DECISION", "deny"), ("REASON", real.description)]),
            caller: caller, hasRole: !Authorizer.roles(caller, context.config.current).isEmpty, audit: audit)
    }

    private func secretStore<T>(_ body: (SecretStore) throws(StoreError) -> T) throws(RunvoyError) -> T {
        do {
            return try body(context.executions.secrets)
        } catch {
            context.logger.error("secrets store unavailable", metadata: ["error": "\(error)"])
            throw RunvoyError(.internalError, "the secrets store cannot be read or written")
        }
    }
}
