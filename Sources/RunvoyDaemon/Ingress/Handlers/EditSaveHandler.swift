import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `edit_save`: the second half of `runvoyctl edit`. Checks the edit again under the configuration in force now,
/// reads the file again as the executor's user and refuses (`conflict`) unless it still has the hash `edit_open`
/// reported; then writes the new content atomically as that user (`FileEditor.write`). The edit is audited
/// (`file_edited`, with both hashes, before the new file replaces the old one: fail-closed) and kept in the
/// history as a record of its own, with the diff (redacted of the executor's secrets, at most
/// `EditLimits.maxDiffBytes`) as its output. Unchanged content writes nothing and is recorded as unchanged.
struct EditSaveHandler: MethodHandler {
    static let method = Method.editSave.rawValue
    static let params = ParamsRule<EditSaveParams>.required("edit_save needs params with token and base_sha256")

    func handle(_ params: EditSaveParams, context: RequestContext) async throws -> Outcome<EditSaveResult> {
        guard let session = EditSessions.shared.find(params.token, uid: context.caller.uid) else {
            throw context.denied(
                RunvoyError(
                    .invalidState,
                    "no open edit has this token (it was saved, it expired, or runvoyd restarted); start the edit again"
                ))
        }
        let target = try context.editTarget(executor: session.executor, path: session.path)
        let fields = [("EXECUTOR", target.executor.name), ("PATH", target.path)]
        let maxBytes = context.config.limits.maxEditBytes
        let content = try Self.content(params, maxBytes: maxBytes)
        let current: FileEditor.Snapshot
        do {
            current = try target.editor.read(target.path, maxBytes: maxBytes)
        } catch {
            throw context.denied(error, fields: fields)
        }
        guard current.sha256 == params.baseSha256, session.sha256 == params.baseSha256 else {
            throw context.denied(
                RunvoyError(
                    .conflict,
                    "\(target.path) changed since it was opened for editing; nothing was written (your copy is kept)"),
                fields: fields + [("SHA256_BEFORE", params.baseSha256), ("SHA256_NOW", current.sha256)])
        }
        let after = content ?? current.content
        let afterSHA256 = FileEditor.sha256(after)
        let edit = EditSummary(path: target.path, sha256Before: current.sha256, sha256After: afterSHA256)
        let id = ExecutionID.make(milliseconds: UInt64(WallClock.milliseconds()))
        let record = Self.record(edit, id: id, target, context)
        if edit.changed {
            do {
                try await target.editor.write(target.path, content: after, over: current) {
                    try await context.auditor.record(record)
                }
            } catch let error as RunvoyError where error.code != .auditUnavailable {
                throw context.denied(error, fields: fields)
            }
        } else {
            try await context.auditor.record(record)
        }
        EditSessions.shared.remove(params.token)
        try Self.keep(edit, id: id, target, old: current.content, new: after, context)
        return .result(
            EditSaveResult(
                executionId: id, path: target.path, sha256Before: current.sha256,
                sha256After: afterSHA256, changed: edit.changed))
    }

    /// The new bytes, nil when the caller sent none (nothing changed).
    private static func content(_ params: EditSaveParams, maxBytes: Int) throws(RunvoyError) -> [UInt8]? {
        guard let text = params.content else { return nil }
        guard let bytes = Base64.decode(text) else { throw RunvoyError(.badRequest, "content is not valid base64") }
        guard bytes.count <= maxBytes else {
            throw RunvoyError(.invalidArgument, "the new content is larger than limits.max_edit_bytes (\(maxBytes))")
        }
        return bytes
    }

    private static func record(
        _ edit: EditSummary, id: String, _ target: RequestContext.EditTarget, _ context: RequestContext
    ) -> AuditEvent {
        AuditEvent(
            .fileEdited, priority: 5,
            message:
                "\(context.who) \(edit.changed ? "edited" : "left unchanged") \(target.path) as \(target.runAs.label)",
            fields: context.editFields(target) + [
                ("EXECUTION_ID", id), ("SHA256_BEFORE", edit.sha256Before ?? ""),
                ("SHA256_AFTER", edit.sha256After ?? ""), ("CHANGED", edit.changed ? "true" : "false"),
            ])
    }

    /// The history record of the edit, with its diff as stored output.
    private static func keep(
        _ edit: EditSummary, id: String, _ target: RequestContext.EditTarget, old: [UInt8], new: [UInt8],
        _ context: RequestContext
    ) throws(RunvoyError) {
        var diff = LineDiff.unified(old, new, label: target.path)
        if let redaction = context.editRedaction(target.executor), !redaction.isEmpty {
            diff = redaction.redact(diff)
        }
        if diff.count > EditLimits.maxDiffBytes {
            diff =
                Array(diff.prefix(EditLimits.maxDiffBytes))
                + Array("\n[diff cut at \(EditLimits.maxDiffBytes) bytes]\n".utf8)
        }
        let store = context.executions.store
        let recorder = store.makeRecorder(id, cap: context.config.history.maxOutputBytes)
        diff.withUnsafeBytes { recorder.append(.stdout, $0) }
        recorder.finish()
        let totals = recorder.totals
        let now = WallClock.milliseconds()
        let info = ExecutionInfo(
            executionId: id, status: .succeeded, callerUid: context.caller.uid, callerUser: context.caller.displayName,
            callerPid: context.caller.pid, executor: target.executor.name, runAs: target.runAs.label,
            argv: ["edit", target.path], workingDirectory: target.executor.workingDirectory, envKeys: [], pid: nil,
            exitCode: 0, signal: nil, createdAtMs: now, startedAtMs: now, finishedAtMs: now, durationUsec: 0,
            stdoutBytes: totals.stdoutBytes, stderrBytes: 0, storedBytes: totals.storedBytes,
            droppedBytes: totals.droppedBytes, outputPruned: false, configDigest: context.config.digest, reason: nil,
            edit: edit)
        do {
            try store.insert(info)
        } catch {
            context.logger.error(
                "cannot store an edit's record", metadata: ["execution": "\(id)", "error": "\(error)"])
            throw RunvoyError(
                .storeUnavailable,
                "\(target.path) was \(edit.changed ? "written" : "left as it was") (sha256 \(edit.sha256After ?? "")), but its history record could not be stored"
            )
        }
    }
}
