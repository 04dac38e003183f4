import RunvoyKit
import RunvoyStore

/// `logs`: an execution's stored output, optionally followed live until it ends. It streams in a task of its
/// own, so the connection keeps reading (and notices a client that goes away).
struct LogsHandler: MethodHandler {
    static let method = Method.logs.rawValue
    static let params = ParamsRule<LogsParams>.required("logs needs params with execution_id")

    func handle(_ params: LogsParams, context: RequestContext) async throws -> Outcome<NoParams> {
        let info = try context.visibleExecution(params.executionId)
        if info.outputPruned {
            throw RunvoyError(
                .invalidState, "the stored output of execution \(info.executionId) was removed by retention")
        }
        let follow = params.follow ?? false
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
                try await Self.stream(info, live: live, follow: follow, context: context)
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

    /// Sends the output (stored, then live with `follow`), then the reply with the execution's record.
    private static func stream(
        _ info: ExecutionInfo, live: Execution?, follow: Bool, context: RequestContext
    ) async throws {
        // Where the stored output sent ends, once the output has ended (nil while it goes on).
        var end: OutputPosition?
        if let live {
            let follower = live.recorder.follow()
            defer { follower.close() }
            if follow {
                while let entries = try await follower.next() {
                    try await send(entries, context)
                }
                // The output has ended; the reply reports the execution once its end is recorded.
                await live.waitFinished()
                end = follower.position
            } else {
                _ = try await sendStored(live.recorder.reader, upTo: live.recorder.committed, context)
            }
        } else {
            let reader = OutputLogReader(directory: context.executions.store.outputDirectory(info.executionId))
            end = reader.exists ? try await sendStored(reader, upTo: nil, context) : .start
        }
        let final = (try? context.executions.store.get(info.executionId)).flatMap { $0 } ?? info
        // Output that was never stored after the last stored chunk (the disk filled up, say) is marked too.
        if let end, final.status.isFinal {
            // The counts come from the history, which a damaged or hand-made database can fill with anything:
            // counts that overflow say nothing about what is missing.
            let (total, overflow) = final.stdoutBytes.addingReportingOverflow(final.stderrBytes)
            let (missing, underflow) = total.subtractingReportingOverflow(end.streamOffset)
            if !overflow, !underflow, missing > 0 {
                try await context.sink.send(DroppedEvent(id: context.id, bytes: missing))
            }
        }
        try await context.reply(LogsResult(execution: context.withLiveState(final)))
    }

    /// Sends the stored output up to `limit` (nil: all of it); returns where it ended.
    private static func sendStored(
        _ reader: OutputLogReader, upTo limit: OutputPosition?, _ context: RequestContext
    ) async throws -> OutputPosition {
        var position = OutputPosition.start
        while true {
            let (entries, next) = try reader.read(from: position, upTo: limit)
            if entries.isEmpty && next == position { return position }
            position = next
            try await send(entries, context)
        }
    }

    static func send(_ entries: [OutputEntry], _ context: RequestContext) async throws {
        let id = context.id
        for entry in entries {
            switch entry {
            case .chunk(let stream, let bytes, let tUsec):
                try await context.sink.send(
                    LogChunkEvent(id: id, stream: stream, data: Base64.encode(bytes), tUsec: tUsec))
            case .dropped(let count):
                try await context.sink.send(DroppedEvent(id: id, bytes: count))
            }
        }
    }
}
