import RunvoyKit
import RunvoyStore

/// `logs`: an execution's stored output, optionally followed live until it ends (an edit's diff only to its
/// editor and administrators). It streams in a task of its
/// own, so the connection keeps reading (and notices a client that goes away).
struct LogsHandler: MethodHandler {
    static let method = Method.logs.rawValue
    static let params = ParamsRule<LogsParams>.required("logs needs params with execution_id")

    func handle(_ params: LogsParams, context: RequestContext) async throws -> Outcome<NoParams> {
        let info = try context.visibleExecution(params.executionId)
        try Self.checkDiffReader(info, context)
        if info.outputPruned {
            throw RunvoyError(
                .invalidState, "the stored output of execution \(info.executionId) was removed by retention")
        }
        let follow = params.follow ?? false
        let input = params.input ?? false
        let activity = context.activity
        activity.attach()
        return .stream {
            defer { activity.detach() }
            do {
                var info = info
                if follow, info.status == .awaitingApproval {
                    // `approval` events until its command starts (or it ends without running); then as usual.
                    let sink = context.sink
                    await context.executions.approvals.follow(
                        info.executionId, requestID: context.id, hangup: activity.hangup
                    ) { try? await sink.send($0) }
                    info = (try? context.executions.store.get(info.executionId)).flatMap { $0 } ?? info
                }
                let live = context.executions.running(id: info.executionId)
                try await Self.stream(info, live: live, follow: follow, input: input, context: context)
            } catch let error as StoreError {
                context.logger.error(
                    "cannot read stored output", metadata: ["execution": "\(info.executionId)", "error": "\(error)"])
                try? await context.reply(
                    error: RunvoyError(
                        .internalError, "the stored output of execution \(info.executionId) cannot be read"))
            } catch {
                // The client went away; nothing more to send.
            }
        }
    }

    /// The stored output of an edit is its diff, with lines of a file that only the executor's user may read
    /// (unchanged context lines too): only the editor, who read the whole file, and administrators may read it.
    /// Everyone else who may see the record (`view_all`) gets its path and sizes from `status`, and this refusal,
    /// audited (review of issue 16: a viewer read a root-only file's password line from a diff's context).
    static func checkDiffReader(_ info: ExecutionInfo, _ context: RequestContext) throws {
        guard info.edit != nil, !context.mayReadEdit(info) else { return }
        throw context.denied(
            RunvoyError(
                .permissionDenied,
                "the diff of edit \(info.executionId) is shown only to the user who made it and to administrators (it holds lines of a file you may not read); `runvoyctl status \(info.executionId)` shows its path and sizes"
            ), fields: [("EXECUTION_ID", info.executionId), ("OWNER_UID", String(info.callerUid))])
    }

    /// Sends the output (stored, then live with `follow`; recorded input too with `input`), then the reply with the
    /// execution's record.
    private static func stream(
        _ info: ExecutionInfo, live: Execution?, follow: Bool, input: Bool, context: RequestContext
    ) async throws {
        // Where the stored output sent ends, once the output has ended (nil while it goes on).
        var end: OutputPosition?
        if let live {
            let follower = live.recorder.follow()
            defer { follower.close() }
            if follow {
                while let entries = try await follower.next() {
                    // Only while the caller may still see it (review 2 of grants, R3).
                    guard context.stillSees(live) else {
                        let refusal = context.denied(
                            context.accessEnded(live),
                            fields: [("EXECUTION_ID", live.id), ("OWNER_UID", String(live.caller.uid))])
                        context.auditor.recordBestEffort(refusal.record)
                        try await context.reply(error: refusal.error)
                        return
                    }
                    try await send(entries, input: input, context)
                }
                // The output has ended; the reply reports the execution once its end is recorded.
                await live.waitFinished()
                end = follower.position
            } else {
                _ = try await sendStored(live.recorder.reader, upTo: live.recorder.committed, input: input, context)
            }
        } else {
            let reader = OutputLogReader(directory: context.executions.store.outputDirectory(info.executionId))
            end = reader.exists ? try await sendStored(reader, upTo: nil, input: input, context) : .start
        }
        let final = (try? context.executions.store.get(info.executionId)).flatMap { $0 } ?? info
        // Output that was never stored after the last stored chunk (the disk filled up, say) is marked too.
        if let end, final.status.isFinal {
            // The counts come from the history, which a damaged or hand-made database can fill with anything:
            // counts that overflow say nothing about what is missing.
            let (output, overflow) = final.stdoutBytes.addingReportingOverflow(final.stderrBytes)
            let (total, overflowed) = output.addingReportingOverflow(final.stdinBytes ?? 0)
            let (missing, underflow) = total.subtractingReportingOverflow(end.streamOffset)
            if !overflow, !overflowed, !underflow, missing > 0 {
                try await context.sink.send(DroppedEvent(id: context.id, bytes: missing))
            }
        }
        try await context.reply(LogsResult(execution: context.withLiveState(final).bounded(.single)))
    }

    /// Sends the stored output up to `limit` (nil: all of it); returns where it ended.
    private static func sendStored(
        _ reader: OutputLogReader, upTo limit: OutputPosition?, input: Bool, _ context: RequestContext
    ) async throws -> OutputPosition {
        var position = OutputPosition.start
        while true {
            let (entries, next) = try reader.read(from: position, upTo: limit)
            if entries.isEmpty && next == position { return position }
            position = next
            try await send(entries, input: input, context)
        }
    }

    /// Sends stored entries as events; recorded input (stream `stdin`) only to a client that asked for it with
    /// `input`, so that a client written before input was recorded never sees a stream it does not know.
    static func send(_ entries: [OutputEntry], input: Bool, _ context: RequestContext) async throws {
        let id = context.id
        for entry in entries {
            switch entry {
            case .chunk(let stream, let bytes, let tUsec):
                if !input && !stream.isOutput { continue }
                try await context.sink.send(
                    LogChunkEvent(id: id, stream: stream, data: Base64.encode(bytes), tUsec: tUsec))
            case .dropped(let count):
                try await context.sink.send(DroppedEvent(id: id, bytes: count))
            }
        }
    }
}
