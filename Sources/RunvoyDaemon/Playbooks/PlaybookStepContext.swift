import RunvoyConfig

/// What a playbook's step adds to its execution's plan: the run it belongs to, the playbook's locks (held by each
/// step's execution besides its executor's own) and the administrator's trust. It is built by the run engine
/// from the configuration only: no request can carry it.
struct PlaybookStepContext: Sendable, Equatable {
    let runID: String
    let playbook: String
    let step: String
    /// The step is `trusted:` in the playbook's file.
    let trusted: Bool
    let locks: [ExecutorLock]
    /// The playbook as the run was checked against it: a step is decided again only under the same definition.
    let definition: PlaybookConfig

    /// How a trusted step is named in the decision's reason.
    var trustLabel: String? { trusted ? "step '\(step)' of playbook '\(playbook)'" : nil }

    /// The audit fields each record of the step's execution carries.
    var auditFields: [(String, String)] {
        var fields = [("RUN_ID", runID), ("PLAYBOOK", playbook), ("STEP", step)]
        if trusted { fields.append(("TRUSTED", "1")) }
        return fields
    }

    /// `executor`'s locks and the playbook's, sorted by name; a lock both name is shared only when both share it.
    func locks(with executor: [ExecutorLock]) -> [ExecutorLock] {
        var byName: [String: ExecutorLock] = [:]
        for lock in executor + locks {
            if let held = byName[lock.name] {
                byName[lock.name] = ExecutorLock(name: lock.name, shared: held.shared && lock.shared)
            } else {
                byName[lock.name] = lock
            }
        }
        return byName.values.sorted { $0.name < $1.name }
    }
}
