import RunvoyKit

/// `playbook_list`: the playbooks the caller may run (administrators: all), with their parameters. A playbook the
/// caller may not run is not listed. A caller without the exec permission is refused.
struct PlaybookListHandler: MethodHandler {
    static let method = Method.playbookList.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<PlaybookListResult> {
        try context.require(.exec)
        let playbooks = PlaybookAccess.runnable(context.caller, context.config).map(\.summary)
        return .result(PlaybookListResult(playbooks: playbooks))
    }
}
