import GRDB
import RunvoyKit

/// Who asked a request for approval and who may answer it: all a listing needs to decide whether its caller may
/// see the request, without reading what it would run.
public struct ApprovalHead: Sendable, Equatable {
    public var id: String
    public var requesterUid: UInt32
    public var approvers: ApproverList
}

extension ExecutionStore {
    /// The heads of the requests in `states` (all when empty), newest first, at most `limit`; only
    /// `requesterUid`'s when given; only those after `before` (a creation time and id, as a listing orders them)
    /// when given. The filter is SQL's: nothing else of a request is read.
    public func approvalHeads(
        states: [ApprovalState], requesterUid: UInt32? = nil, before: (createdAtMs: Int64, id: String)? = nil,
        limit: Int
    ) throws(StoreError) -> [ApprovalHead] {
        var (filter, final) = Self.approvalFilter(states: states, requesterUid: requesterUid)
        if let before {
            filter += (filter.isEmpty ? "WHERE " : " AND ") + "(created_at < ? OR (created_at = ? AND id < ?))"
            _ = final.append(contentsOf: [before.createdAtMs, before.createdAtMs, before.id])
        }
        let sql = """
            SELECT id, requester_uid, approvers FROM approval_requests \(filter)
            ORDER BY created_at DESC, id DESC LIMIT \(max(1, limit))
            """
        return try read { db in
            try Row.fetchAll(db, sql: sql, arguments: final).map { row in
                ApprovalHead(
                    id: row["id"], requesterUid: UInt32(truncatingIfNeeded: row["requester_uid"] as Int64),
                    approvers: Self.decode(ApproverList.self, row["approvers"]) ?? ApproverList())
            }
        }
    }

    /// When the request `id` was made (milliseconds), if there is one.
    public func approvalCreatedAt(_ id: String) throws(StoreError) -> Int64? {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT created_at FROM approval_requests WHERE id = ?", arguments: [id])
        }
    }

    /// The requests `ids`, in that order, as a listing shows them: everything but their stored parameters
    /// (`params` is empty), and only as many as fit in `maxBytes` of what approvers are shown (the first always).
    public func listedApprovals(_ ids: [String], maxBytes: Int) throws(StoreError) -> [ApprovalRecord] {
        try read { db in
            var records: [ApprovalRecord] = []
            var bytes = 0
            for id in ids {
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT id, kind, state, requester_uid, requester_user, executor, digest, '' AS params,
                                summary, reason, required, approvers, needs_client, created_at, expires_at, decided_at,
                                decided_by_uid, decision_comment, config_digest, version, recorded
                            FROM approval_requests WHERE id = ?
                            """, arguments: [id])
                else { continue }
                let record = try Self.approvalRecord(db, row)
                bytes += record.summary.utf8.count + (record.reason?.utf8.count ?? 0)
                if bytes > maxBytes, !records.isEmpty { break }
                records.append(record)
            }
            return records
        }
    }
}
