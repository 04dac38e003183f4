import Glibc
import NIOPosix
import RunvoyKit

/// `trace`: the daemon's journal records for one execution (by its id, or by the id of the request that
/// started it), for a caller who may view that execution, without journal access of their own.
///
/// By execution id the caller must be able to see that execution (as `status`): another user's is answered as
/// missing. Request ids are the client's own and not unique, so by request id only the caller's own records come
/// back, unless it may view everyone's (`view_all`).
///
/// The journal is read on a thread of trace's own (`pool`), not the pool `backup` and `health` use, and one user
/// has at most one trace in flight, `maxInFlight` in all (`slots`): more are answered `busy`.
struct TraceHandler: MethodHandler {
    static let method = Method.trace.rawValue
    static let params = ParamsRule<TraceParams>.required("trace needs params with execution_id or request_id")

    static let maxInFlight = 4
    static let slots = TraceSlots(total: maxInFlight)
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    func handle(_ params: TraceParams, context: RequestContext) async throws -> Outcome<TraceResult> {
        let limit = params.limit ?? TraceParams.maximumLimit
        guard (1...TraceParams.maximumLimit).contains(limit) else {
            throw RunvoyError(.invalidArgument, "limit must be between 1 and \(TraceParams.maximumLimit)")
        }
        let (matches, owner, hideHashes) = try matches(params, context: context)
        if let busy = Self.slots.take(context.caller.uid) { throw busy }
        defer { Self.slots.give(context.caller.uid) }
        var configured = JournalReader(limit: limit)
        if let owner {
            // Someone else's refused request that named this execution (a `request_denied`, or any record with
            // `DECISION=deny`: a refused `kill` is an `execution_kill`) is theirs, not the execution's story, and
            // anyone could write such records into it, pushing its end out of the limit.
            configured.skip = { record in Self.isOthersRefusal(record, owner: owner) }
        }
        let reader = configured
        do {
            var result = try await Self.pool.runIfActive { try reader.records(matching: matches) }
            if hideHashes { result.records = result.records.map(Self.withoutHashes) }
            return .result(result)
        } catch {
            context.logger.error("trace: cannot read the journal", metadata: ["error": "\(error)"])
            let reason = (error as? JournalReader.Failure)?.reason.map { "trace refused: \($0)" }
            throw RunvoyError(.internalError, reason ?? "the journal cannot be read")
        }
    }

    /// `record` without the SHA-256 hashes of an edited file, for a caller who may not read the edit (review of issue
    /// 16: `file_edited` carries both, and they let anyone test guesses of a file they may not read).
    static func withoutHashes(_ record: TraceRecord) -> TraceRecord {
        var record = record
        record.fields = record.fields.filter { !$0.key.hasPrefix("RUNVOY_SHA256") }
        return record
    }

    /// Whether `record` is a refusal of someone other than the execution's owner (`owner`), whatever its event.
    static func isOthersRefusal(_ record: TraceRecord, owner: UInt32) -> Bool {
        (record.event == "request_denied" || record.fields["RUNVOY_DECISION"] == "deny")
            && record.fields["RUNVOY_CALLER_UID"] != String(owner)
    }

    /// The exact fields the records must hold, once the caller is known to be allowed them; for one execution its
    /// owner's uid, and whether it is an edit whose hashes the caller may not see.
    private func matches(
        _ params: TraceParams, context: RequestContext
    ) throws -> (matches: [(String, String)], owner: UInt32?, hideHashes: Bool) {
        switch (params.executionId, params.requestId) {
        case (let id?, nil):
            let execution = try context.visibleExecution(id)
            let hide = execution.edit != nil && !context.mayReadEdit(execution)
            return ([("RUNVOY_EXECUTION_ID", id)], execution.callerUid, hide)
        case (nil, let id?):
            guard !id.isEmpty, id.utf8.count <= 256, !id.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                throw RunvoyError(.invalidArgument, "request_id must be 1 to 256 bytes with no control characters")
            }
            guard context.permits(.viewOwn) || context.permits(.viewAll) else {
                throw context.denied(Authorizer.refusal(context.caller, .viewOwn, context.config))
            }
            let own = context.permits(.viewAll) ? [] : [("RUNVOY_CALLER_UID", String(context.caller.uid))]
            return ([("RUNVOY_REQUEST_ID", id)] + own, nil, false)
        default:
            throw RunvoyError(.badRequest, "trace needs exactly one of execution_id and request_id")
        }
    }
}

/// The traces being read: one per user at a time, `total` in all.
final class TraceSlots: Sendable {
    let total: Int
    private let readers = Mutex<[uid_t: Int]>([:])

    init(total: Int) { self.total = total }

    /// Takes a slot for `uid`, or says why there is none (and takes nothing).
    func take(_ uid: uid_t) -> RunvoyError? {
        readers.withLock {
            if $0[uid] != nil {
                return RunvoyError(
                    .busy, "a trace of yours is still being read (one at a time per user); wait for it and try again")
            }
            if $0.count >= total {
                return RunvoyError(.busy, "runvoyd is reading \(total) traces already; try again shortly")
            }
            $0[uid] = 1
            return nil
        }
    }

    func give(_ uid: uid_t) { readers.withLock { $0[uid] = nil } }
}
