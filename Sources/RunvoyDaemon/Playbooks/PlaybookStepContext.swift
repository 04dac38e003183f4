import RunvoyConfig

/// What a playbook's step adds to its execution's plan: the run it belongs to, the locks its run holds (the
/// playbook's, taken once by the run before its first step and held until after its last: the step does not take
/// them again) and the administrator's trust. It is built by the run engine from the configuration only: no
/// request can carry it.
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

    /// `executor`'s locks but those its run holds: a lock both name is the run's (held exclusively when any of them
    /// names it so, `PlaybookRun.runLocks`), so the step never waits for its own run.
    func locks(with executor: [ExecutorLock]) -> [ExecutorLock] {
        let held = Set(locks.map(\.name))
        return executor.filter { !held.contains($0.name) }
    }
}
