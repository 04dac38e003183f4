import RunvoyKit

/// `edit_open`: the first half of `runvoyctl edit` (what sudoedit does). Reads a file the executor's `editable`
/// paths admit, as the executor's user, and hands its content to the caller with a token for `edit_save`. The read
/// is audited (`file_opened`, fail-closed: the content goes out only once the record is written); refusals are
/// `request_denied`.
struct EditOpenHandler: MethodHandler {
    static let method = Method.editOpen.rawValue
    static let params = ParamsRule<EditOpenParams>.required("edit_open needs params with path")

    func handle(_ params: EditOpenParams, context: RequestContext) async throws -> Outcome<EditOpenResult> {
        let target = try context.editTarget(executor: params.executor, path: params.path)
        let snapshot: FileEditor.Snapshot
        do {
            snapshot = try target.editor.read(target.path, maxBytes: context.config.limits.maxEditBytes)
        } catch {
            throw context.denied(error, fields: [("EXECUTOR", target.executor.name), ("PATH", target.path)])
        }
        try await context.auditor.record(
            AuditEvent(
                .fileOpened, priority: 5,
                message: "\(context.who) opened \(target.path) for editing as \(target.runAs.label)",
                fields: context.editFields(target) + [
                    ("SHA256", snapshot.sha256), ("SIZE", String(snapshot.content.count)),
                ]))
        let token = EditSessions.shared.add(
            EditSessions.Open(
                uid: context.caller.uid, executor: target.executor.name, path: target.path, sha256: snapshot.sha256,
                openedAt: .now))
        return .result(
            EditOpenResult(
                path: target.path, executor: target.executor.name, content: Base64.encode(snapshot.content),
                sha256: snapshot.sha256, size: snapshot.content.count, mode: snapshot.mode, token: token))
    }
}
