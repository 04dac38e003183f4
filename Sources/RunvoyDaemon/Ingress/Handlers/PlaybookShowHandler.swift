import RunvoyKit

/// `playbook_show`: one playbook the caller may run: parameters, steps (argv templates as written, conditions,
/// trust), locks, approval and schedule.
struct PlaybookShowHandler: MethodHandler {
    static let method = Method.playbookShow.rawValue
    static let params = ParamsRule<PlaybookRef>.required("playbook_show needs params with name")

    func handle(_ ref: PlaybookRef, context: RequestContext) async throws -> Outcome<PlaybookInfo> {
        let playbook = try context.runnablePlaybook(ref.name)
        return .result(playbook.info(defaultExecutor: context.config.defaultExecutorName))
    }
}
