import GRDB
import RunvoyKit

extension ExecutionStore {
    /// A queued execution's turn came: its row becomes `running` (its process is recorded by `started`). False
    /// when it no longer waits (cancelled meanwhile): it must not run.
    public func dequeue(_ id: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: "UPDATE executions SET status = 'running' WHERE id = ? AND status = 'queued'", arguments: [id])
            return db.changesCount > 0
        }
    }

    /// A break-glass execution starts (`running`) or waits in the queue (`queued`): its row leaves
    /// `awaiting_approval`. False when it no longer waits for that.
    public func startAwaiting(_ id: String, as status: ExecutionStatus) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: "UPDATE executions SET status = ? WHERE id = ? AND status = 'awaiting_approval'",
                arguments: [status.rawValue, id])
            return db.changesCount > 0
        }
    }
}
