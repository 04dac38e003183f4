import RunvoyKit

extension ExecutionManager {
    /// An ended execution's `post_exec` hooks, told its result; in the manager's task group, so shutdown waits
    /// for them (each bounded by its timeout). Their outcome changes nothing: the command has run.
    func runPostExecHooks(_ execution: Execution) async {
        guard let (planned, config) = execution.postExec else { return }
        var subject = planned
        let event = await execution.waitFinished()
        subject.result = HookPayload.Result(
            status: Self.hookStatus(event).rawValue, exitCode: event.exitCode,
            signal: event.signal, durationUsec: event.durationUsec)
        _ = await launcher.hooks.run(.postExec, subject, config: config)
    }

    /// The history's status for an ended execution's `exit` event.
    static func hookStatus(_ event: ExitEvent) -> ExecutionStatus {
        if event.timedOut { return .timedOut }
        if event.signal != nil { return .killed }
        return event.exitCode == 0 ? .succeeded : .failed
    }
}
