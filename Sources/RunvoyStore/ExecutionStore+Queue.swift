import GRDB

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
}
