import RunvoyConfig
import RunvoyKit

/// A playbook run checked before anything ran: the caller may run the playbook, its parameters are bound, and
/// every step's argv was rendered and planned as `exec` plans a request (`ExecPlan.make`), so a step its executor
/// refuses refuses the whole run. Built by `prepare` (`PlaybookRun+Prepare`); run by `PlaybookRunner`.
struct PlaybookRun: Sendable {
    /// `run-` and an execution id's shape (26 characters of base32, sorting by start time).
    let id: String
    let playbook: PlaybookConfig
    /// The validated values (given, or defaults).
    let values: [String: String]
    let steps: [Step]
    /// The locks the run holds from before its first step until its last step's `post_exec` hooks have ended
    /// (`runLocks`: when the playbook names any, every lock of every step's executor too); its steps take none.
    let locks: [ExecutorLock]
    let caller: Caller
    /// The configuration the run was checked under.
    let config: DaemonConfig
    let requestID: RequestID
    let reason: String?
    /// The playbook's name, when its schedule fired the run.
    let schedule: String?

    /// One step: what its execution is asked with.
    struct Step: Sendable {
        let config: PlaybookStep
        let params: ExecParams
        let context: PlaybookStepContext
    }

    /// Whether `text` has the shape of a run id.
    static func isRunID(_ text: String) -> Bool {
        text.hasPrefix("run-") && ExecutionID.isValid(String(text.dropFirst(4)))
    }

    /// The validated values as a JSON object, names sorted (for the audit trail and the history).
    var valuesJSON: String {
        "{"
            + values.keys.sorted().map { JSONText.quoted($0) + ":" + JSONText.quoted(values[$0] ?? "") }
            .joined(separator: ",") + "}"
    }
}
