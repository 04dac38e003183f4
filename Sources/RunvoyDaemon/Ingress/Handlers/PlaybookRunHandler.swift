import RunvoyKit

/// `playbook_run`: checks the whole run (access, parameters, every step's plan) before anything runs, writes its
/// start, then runs its steps in order on this connection (`PlaybookRunner`); the reply is the run's outcome.
struct PlaybookRunHandler: MethodHandler {
    static let method = Method.playbookRun.rawValue
    static let params = ParamsRule<PlaybookRunParams>.required("playbook_run needs params with name")

    func handle(_ request: PlaybookRunParams, context: RequestContext) async throws -> Outcome<PlaybookRunResult> {
        let run = try PlaybookRun.prepare(request, context: context)
        let runner = PlaybookRunner(run: run, context: context)
        try await runner.begin()
        let activity = context.activity
        activity.attach()
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
}
