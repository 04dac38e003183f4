import RunvoyConfig

/// What a playbook's step adds to its execution's plan: the run it belongs to, the locks its run holds (taken
/// once by the run before its first step and held until after its last: the step does not take them again) and
/// the administrator's trust. It is built by the run engine from the configuration only: no
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

    /// `executor`'s locks that its run's hold does not cover: a lock the run holds covers the step's claim on it,
    /// unless the step needs it alone and the run holds it shared. Empty as the run was planned (a run that holds
    /// locks holds every lock its steps' executors name, `PlaybookRun.runLocks`), so a step never waits for its
    /// own run; not empty only when a reload changed an executor's locks during the run (the step is then refused).
    func locks(with executor: [ExecutorLock]) -> [ExecutorLock] {
        guard !locks.isEmpty else { return executor }
        let held = Dictionary(locks.map { ($0.name, $0.shared) }) { first, second in first && second }
        return executor.filter { lock in
            guard let shared = held[lock.name] else { return true }
            return shared && !lock.shared
        }
    }
}
