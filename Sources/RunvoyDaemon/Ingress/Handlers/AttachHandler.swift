import RunvoyKit
import RunvoyStore

/// `attach`: a running execution, watched live by whoever may see it (as `logs --follow` does: everything stored
/// so far, then live output, then the reply), read from the stored output so that watchers cost the command
/// nothing and a watcher that stops reading holds up no one but itself. With `write`, the user who started it
/// also takes its one writer slot, and `stdin` requests naming it go to the command. Every attach and its end is
/// audited.
struct AttachHandler: MethodHandler {
    static let method = Method.attach.rawValue
    static let params = ParamsRule<AttachParams>.required("attach needs params with execution_id")

    func handle(_ params: AttachParams, context: RequestContext) async throws -> Outcome<NoParams> {
        let info = try context.visibleExecution(params.executionId)
        let id = info.executionId
        guard let live = context.executions.running(id: id), !live.isFinished else {
            throw RunvoyError(.invalidState, "execution \(id) is not running; its output is in `runvoyctl logs \(id)`")
        }
        let session = Session(
            execution: live, attachID: String(UInt64.random(in: 0...UInt64.max), radix: 16),
            connection: context.sink.channel.map { ObjectIdentifier($0) }, write: params.write ?? false,
            binary: params.binaryOutput ?? false)
        if session.write { try claimWriter(session, context) }
        do {
            try await context.auditor.record(session.event(.executionAttached, context, priority: 5))
        } catch {
            session.releaseWriter()
            throw error
        }
        let activity = context.activity
        activity.attach()
        return .watch {
            defer { activity.detach() }
            let started = ContinuousClock.now
            let ended = await Self.stream(session, context)
            session.releaseWriter()
            let usec = (ContinuousClock.now - started).components
            let duration = usec.seconds * 1_000_000 + usec.attoseconds / 1_000_000_000_000
            context.auditor.recordBestEffort(
                session.event(
                    .executionDetached, context, priority: 6,
                    extra: [("DURATION_USEC", String(duration)), ("REASON", ended.rawValue)]))
        }
    }

    /// One attach: what its audit records and its writer slot need.
    struct Session: Sendable {
        let execution: Execution
        let attachID: String
        let connection: ObjectIdentifier?
        let write: Bool
        /// Output goes out as binary frames (`binary_output`), not base64 events.
        let binary: Bool

        func releaseWriter() {
            if write, let connection { execution.writer.release(connection) }
        }

        func event(
            _ kind: AuditEvent.Kind, _ context: RequestContext, priority: Int, extra: [(String, String)] = []
        ) -> AuditEvent {
            let verb = kind == .executionAttached ? "attached to" : "detached from"
            return AuditEvent(
                kind, priority: priority,
                message: "\(context.who) \(verb) execution \(execution.id) (\(write ? "write" : "read"))",
                fields: context.callerFields + [
                    ("EXECUTION_ID", execution.id), ("OWNER_UID", String(execution.caller.uid)),
                    ("MODE", write ? "write" : "read"), ("ATTACH_ID", attachID),
                ] + extra)
        }
    }

    /// Takes the execution's writer slot for this connection: only its owner may, only while it may still use the
    /// executor, only while no other writer holds it, and only when the command has an input to write to.
    private func claimWriter(_ session: Session, _ context: RequestContext) throws {
        let live = session.execution
        guard live.caller.uid == context.caller.uid else {
            throw context.denied(
                RunvoyError(.permissionDenied, "only the user who started execution \(live.id) may write to it"),
                fields: [("EXECUTION_ID", live.id), ("OWNER_UID", String(live.caller.uid))])
        }
        guard live.hasStdin else {
            throw RunvoyError(.invalidState, "execution \(live.id) was started without standard input")
        }
        try context.requireUse(of: live)
        guard let connection = session.connection, live.writer.claim(connection) else {
            throw RunvoyError(
                .invalidState,
                "execution \(live.id) already has a writer attached (one at a time); attach without --write")
        }
    }

    /// How an attach ended, as its `execution_detached` record says.
    enum End: String {
        /// The output ended and the reply was sent.
        case ended
        /// The watcher went away first.
        case clientGone = "client_gone"
        /// The watcher may no longer see the execution (a grant ended, a reload): told `permission_denied`.
        case accessEnded = "access_ended"
    }

    /// Sends the stored output, then live output until it ends, then the reply; each batch only while the caller
    /// may still see the execution under the configuration in force (review 2 of grants, R3).
    private static func stream(_ session: Session, _ context: RequestContext) async -> End {
        let live = session.execution
        let follower = live.recorder.follow()
        defer { follower.close() }
        do {
            try await context.sink.send(
                AttachedEvent(id: context.id, executionId: live.id, terminal: live.isTerminal, write: session.write))
            while let entries = try await follower.next() {
                guard context.stillSees(live) else {
                    try? await context.reply(error: context.accessEnded(live))
                    return .accessEnded
                }
                if session.binary {
                    try await sendBinary(entries, context)
                } else {
                    try await LogsHandler.send(entries, input: false, context)
                }
            }
            // `next` also ends when the stream is cancelled (the connection closed): that is a detach.
            if Task.isCancelled { return .clientGone }
            await live.waitFinished()
            let final = (try? context.executions.store.get(live.id)).flatMap { $0 }
            if let final {
                try await context.reply(LogsResult(execution: context.withLiveState(final).bounded(.single)))
            } else {
                try await context.reply(
                    error: RunvoyError(.internalError, "the record of execution \(live.id) cannot be read"))
            }
            return .ended
        } catch let error as StoreError {
            context.logger.error(
                "cannot read stored output", metadata: ["execution": "\(live.id)", "error": "\(error)"])
            try? await context.reply(
                error: RunvoyError(.internalError, "the stored output of execution \(live.id) cannot be read"))
            return .clientGone
        } catch {
            return .clientGone
        }
    }

    /// Chunks as binary output frames, with no encoding; `dropped` markers stay events.
    private static func sendBinary(_ entries: [OutputEntry], _ context: RequestContext) async throws {
        let sink = context.sink.binaryOutput(true)
        for entry in entries {
            switch entry {
            case .chunk(let stream, let bytes, _):
                // Recorded input is not output: an attach shows what the command printed.
                guard stream.isOutput else { continue }
                var buffer = sink.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                try await sink.output(stream, buffer)
            case .dropped(let count):
                try await sink.send(DroppedEvent(id: context.id, bytes: count))
            }
        }
    }
}
