import RunvoyKit

/// `playbook_run`: checks the whole run (access, parameters, every step's plan) before anything runs, writes its
/// start, then runs its steps in order on this connection (`PlaybookRunner`); the reply is the run's outcome.
struct PlaybookRunHandler: MethodHandler {
    static let method = Method.playbookRun.rawValue
    static let params = ParamsRule<PlaybookRunParams>.required("playbook_run needs params with name")

    func handle(_ request: PlaybookRunParams, context: RequestContext) async throws -> Outcome<PlaybookRunResult> {
        let run = try PlaybookRun.prepare(request, context: context)
        let activity = context.activity
        activity.attach()
        let runner: PlaybookRunner
        do {
            try await Self.approve(run, context: context)
            let prepaid: [RateBuckets.Key]
            do throws(RunvoyError) {
                prepaid = try context.executions.meterRun(run)
            } catch {
                throw context.denied(error, fields: [("PLAYBOOK", run.playbook.name)])
            }
            runner = PlaybookRunner(run: run, context: context, prepaid: prepaid)
            try await runner.begin()
        } catch {
            activity.detach()
            throw error
        }
        return .stream {
            // A task of its own: the connection's streams are cancelled when it closes, and the run must still
            // end its steps and record its end then.
            await Task {
                defer { activity.detach() }
                let result = await runner.execute()
                try? await context.reply(result)
            }.value
        }
    }

    /// The playbook's own approval, before anything runs: the request is made and this waits for it, sending
    /// `approval` events as `exec` does, then spends it. Nothing when the playbook needs none.
    static func approve(_ run: PlaybookRun, context: RequestContext) async throws {
        guard let policy = run.playbook.approval, policy.requiresApproval else { return }
        let approvals = context.executions.approvals
        let record = try await PlaybookApproval.request(
            run, policy: policy, approvals: approvals, store: context.executions.store)
        let (events, activity) = (context.sink, context.activity)
        let client = ExecutionManager.QueueClient(
            send: { _ in }, onHangup: { activity.hangup.on($0) }, isGone: { activity.hangup.isClosed },
            sendApproval: { try await events.send($0) })
        let ticket = try await approvals.awaitDecision(
            record, requestID: context.id, client: client, config: run.config)
        try await PlaybookApproval.spend(
            ticket, run, approvals: approvals, current: context.server.config.current)
        // The approval binds the file's digest, not the grants: every step is judged again as things are now.
        try run.replannedAll(context: context)
    }
}
