import Logging
import NIOCore
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The history methods: `list`, `status`, `logs` and `kill`.
extension Connection {
    func list(_ params: ListParams, id: RequestID, sink: ConnectionSink) async throws {
        var params = params
        if let limit = params.limit, !(1...ListParams.maximumLimit).contains(limit) {
            try await sink.send(
                Reply<NoParams>(
                    id: id,
                    error: RunvoyError(.invalidArgument, "limit must be between 1 and \(ListParams.maximumLimit)")))
            return
        }
        params.limit = params.limit ?? ListParams.defaultLimit
        let config = context.config.current
        guard Authorizer.permits(caller, .viewOwn, config) || Authorizer.permits(caller, .viewAll, config) else {
            try await sink.send(Reply<NoParams>(id: id, error: refuse(.list, .viewOwn, config)))
            return
        }
        let found: [ExecutionInfo]
        do throws(RunvoyError) {
            found = try history { store throws(StoreError) in
                try store.list(params, ownerUid: Authorizer.historyScope(caller, context.config.current))
            }
        } catch {
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: ListResult(executions: found.map(withLiveState))))
    }

    func status(_ ref: ExecutionRef, id: RequestID, sink: ConnectionSink) async throws {
        let info: ExecutionInfo
        do throws(RunvoyError) {
            info = try visibleExecution(ref.executionId, for: .status)
        } catch {
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: withLiveState(info)))
    }

    /// Checks the request and starts streaming in a task of its own, so the connection keeps reading (and
    /// notices a client that goes away). Returns nil when the request was refused.
    func startLogs(
        _ params: LogsParams, id: RequestID, sink: ConnectionSink
    ) async throws -> (@Sendable () async -> Void)? {
        let info: ExecutionInfo
        do throws(RunvoyError) {
            info = try visibleExecution(params.executionId, for: .logs)
            if info.outputPruned {
                throw RunvoyError(
                    .invalidState, "the stored output of execution \(info.executionId) was removed by retention")
            }
        } catch {
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return nil
        }
        let follow = params.follow ?? false
        let store = context.executions.store
        let live = context.executions.running(id: info.executionId)
        let activity = activity
        activity.attach()
        return {
            defer { activity.detach() }
            do {
                // Where the stored output sent ends, once the output has ended (nil while it goes on).
                var end: OutputPosition?
                if let live {
                    let follower = live.recorder.follow()
                    defer { follower.close() }
                    if follow {
                        while let entries = try await follower.next() {
                            try await send(entries, id: id, sink: sink)
                        }
                        // The output has ended; the reply reports the execution once its end is recorded.
                        await live.waitFinished()
                        end = follower.position
                    } else {
                        _ = try await sendStored(
                            live.recorder.reader, upTo: live.recorder.committed, id: id, sink: sink)
                    }
                } else {
                    let reader = OutputLogReader(directory: store.outputDirectory(info.executionId))
                    end = reader.exists ? try await sendStored(reader, upTo: nil, id: id, sink: sink) : .start
                }
                let final = (try? store.get(info.executionId)).flatMap { $0 } ?? info
                // Output that was never stored after the last stored chunk (the disk filled up, say) is marked too.
                if let end, final.status.isFinal {
                    let missing = final.stdoutBytes + final.stderrBytes - end.streamOffset
                    if missing > 0 { try await sink.send(DroppedEvent(id: id, bytes: missing)) }
                }
                try await sink.send(Reply(id: id, result: LogsResult(execution: withLiveState(final))))
            } catch let error as StoreError {
                context.logger.error(
                    "cannot read stored output", metadata: ["execution": "\(info.executionId)", "error": "\(error)"])
                try? await sink.send(
                    Reply<NoParams>(
                        id: id,
                        error: RunvoyError(
                            .internalError, "the stored output of execution \(info.executionId) cannot be read")))
            } catch {
                // The client went away; nothing more to send.
            }
        }
    }

    func kill(_ params: KillParams, id: RequestID, sink: ConnectionSink) async throws {
        let audit = AuditLog(failClosed: false, logger: context.logger)
        var fields: [(String, String)] = [
            ("EXECUTION_ID", params.executionId), ("CALLER_UID", String(caller.uid)),
            ("CALLER_USER", caller.displayName), ("CALLER_PID", String(caller.pid)),
            ("SIGNAL", params.signal ?? "TERM"),
        ]
        let config = context.config.current
        // The audit trail's reason when the caller is told less (an execution it may not see is "no execution").
        var auditedReason: RunvoyError?
        let result: KillResult
        do throws(RunvoyError) {
            guard let number = SignalName.parse(params.signal ?? "TERM") else {
                throw RunvoyError(.invalidArgument, "unknown signal '\(params.signal ?? "")'")
            }
            let info: ExecutionInfo
            switch try lookUpExecution(params.executionId, config) {
            case .missing:
                throw Self.noSuchExecution(params.executionId)
            case .hidden(let ownerUid):
                fields.append(("OWNER_UID", String(ownerUid)))
                auditedReason = RunvoyError(
                    .permissionDenied, "execution \(params.executionId) was started by another user")
                throw Self.noSuchExecution(params.executionId)
            case .visible(let found):
                info = found
            }
            guard let execution = context.executions.running(id: info.executionId) else {
                throw RunvoyError(
                    .invalidState, "execution \(info.executionId) is not running (\(info.status.rawValue))")
            }
            fields.append(("OWNER_UID", String(execution.caller.uid)))
            guard Authorizer.mayKill(caller, ownerUid: execution.caller.uid, config) else {
                throw RunvoyError(.permissionDenied, "execution \(execution.id) was started by another user")
            }
            let delivered = execution.signal(number)
            audit.recordBestEffort(
                AuditEvent(
                    .executionKill,
                    message:
                        "\(caller.displayName) (uid \(caller.uid)) sent signal \(number) to execution \(execution.id)",
                    fields: fields + [("DECISION", "allow"), ("REASON", delivered ? "delivered" : "already ended")]))
            result = KillResult(executionId: execution.id, signal: number, delivered: delivered)
        } catch {
            if error.code == .permissionDenied || error.code == .noSuchExecution {
                let real = auditedReason ?? error
                context.refusals.record(
                    AuditEvent(
                        .executionKill, priority: 4,
                        message:
                            "refused \(caller.displayName) (uid \(caller.uid)) kill of \(params.executionId): \(real.message)",
                        fields: fields + [("DECISION", "deny"), ("REASON", real.description)]),
                    caller: caller, hasRole: !Authorizer.roles(caller, context.config.current).isEmpty, audit: audit)
            }
            try await sink.send(Reply<NoParams>(id: id, error: error))
            return
        }
        try await sink.send(Reply(id: id, result: result))
    }

    // MARK: - Helpers

    /// What the history holds under an id, as far as the caller may know.
    enum ExecutionLookup {
        /// No execution has that id.
        case missing
        /// It exists, but the caller may not see it: it is answered as `missing` (the audit trail has the truth).
        case hidden(ownerUid: UInt32)
        case visible(ExecutionInfo)
    }

    /// Looks an execution up for the caller. A caller that may see no execution at all is refused
    /// (`permission_denied`, not audited here) before anything is looked up, whatever the id.
    func lookUpExecution(_ executionID: String, _ config: DaemonConfig) throws(RunvoyError) -> ExecutionLookup {
        guard ExecutionID.isValid(executionID) else {
            throw RunvoyError(.invalidArgument, "'\(executionID)' is not an execution id (26 characters of base32)")
        }
        guard Authorizer.permits(caller, .viewOwn, config) || Authorizer.permits(caller, .viewAll, config) else {
            throw Authorizer.refusal(caller, .viewOwn, config)
        }
        let found = try history { store throws(StoreError) in try store.get(executionID) }
        guard let info = found else { return .missing }
        guard Authorizer.mayView(caller, ownerUid: info.callerUid, config) else {
            return .hidden(ownerUid: info.callerUid)
        }
        return .visible(info)
    }

    /// The answer for an execution that does not exist, and for one the caller may not see: the same, so that
    /// it cannot tell which.
    static func noSuchExecution(_ executionID: String) -> RunvoyError {
        RunvoyError(.noSuchExecution, "no execution \(executionID)")
    }

    /// The execution's record, when it exists and the caller may see it. Refusals are audited, with the real
    /// reason when the caller is told "no execution".
    func visibleExecution(_ executionID: String, for method: Method) throws(RunvoyError) -> ExecutionInfo {
        let lookup: ExecutionLookup
        do throws(RunvoyError) {
            lookup = try lookUpExecution(executionID, context.config.current)
        } catch {
            if error.code == .permissionDenied { auditDenied(method, error) }
            throw error
        }
        switch lookup {
        case .missing:
            throw Self.noSuchExecution(executionID)
        case .hidden(let ownerUid):
            let real = RunvoyError(.permissionDenied, "execution \(executionID) was started by another user")
            auditDenied(method, real, fields: [("EXECUTION_ID", executionID), ("OWNER_UID", String(ownerUid))])
            throw Self.noSuchExecution(executionID)
        case .visible(let info):
            return info
        }
    }

    /// Fills in what only the running execution knows yet: its pid, start time and output so far.
    func withLiveState(_ info: ExecutionInfo) -> ExecutionInfo {
        guard info.status == .running, let live = context.executions.running(id: info.executionId) else { return info }
        var info = info
        let totals = live.recorder.totals
        info.pid = live.pid
        info.startedAtMs = live.startedAtMs
        info.stdoutBytes = totals.stdoutBytes
        info.stderrBytes = totals.stderrBytes
        info.storedBytes = totals.storedBytes
        info.droppedBytes = totals.droppedBytes
        return info
    }

    private func history<T>(_ body: (ExecutionStore) throws(StoreError) -> T) throws(RunvoyError) -> T {
        do {
            return try body(context.executions.store)
        } catch {
            context.logger.error("execution history unavailable", metadata: ["error": "\(error)"])
            throw RunvoyError(.internalError, "the execution history cannot be read")
        }
    }

    /// Sends the stored output up to `limit` (nil: all of it); returns where it ended.
    private func sendStored(
        _ reader: OutputLogReader, upTo limit: OutputPosition?, id: RequestID, sink: ConnectionSink
    ) async throws -> OutputPosition {
        var position = OutputPosition.start
        while true {
            let (entries, next) = try reader.read(from: position, upTo: limit)
            if entries.isEmpty && next == position { return position }
            position = next
            try await send(entries, id: id, sink: sink)
        }
    }

    private func send(_ entries: [OutputEntry], id: RequestID, sink: ConnectionSink) async throws {
        for entry in entries {
            switch entry {
            case .chunk(let stream, let bytes, let tUsec):
                try await sink.send(LogChunkEvent(id: id, stream: stream, data: Base64.encode(bytes), tUsec: tUsec))
            case .dropped(let count):
                try await sink.send(DroppedEvent(id: id, bytes: count))
            }
        }
    }
}
