import RunvoyConfig
import RunvoyKit

extension PlaybookStepContext {
    /// Why this step may no longer run under `config` (the configuration in force when it starts, or when it
    /// leaves the queue): its playbook was removed or changed by a reload, or `caller` may no longer run it (a
    /// reload or a change of grants). Nil when it may: a run never goes on under a configuration that is gone.
    func staleness(caller: Caller, in config: DaemonConfig) -> String? {
        guard let current = config.playbook(named: playbook), current == definition else {
            return "playbook '\(playbook)' was changed or removed by a reload during its run, so step '\(step)' "
                + "did not run: start the run again"
        }
        guard PlaybookAccess.mayRun(caller, current, config) else {
            return "user \(caller.displayName) may no longer run playbook '\(playbook)' (the configuration or the "
                + "grants changed during its run), so step '\(step)' did not run"
        }
        return nil
    }
}
