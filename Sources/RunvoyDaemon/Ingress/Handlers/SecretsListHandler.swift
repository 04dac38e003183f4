import RunvoyKit
import RunvoyStore

/// `secrets_list`: the secrets the caller may manage (names and descriptions, never values), which executors
/// use them, and the names its executors need that are not set.
struct SecretsListHandler: MethodHandler {
    static let method = Method.secretsList.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<SecretListResult> {
        let (caller, config) = (context.caller, context.config)
        let all = context.permits(.secretsManageAll)
        if !all { try context.require(.secretsManageOwn) }
        let infos = try context.secretStore { store throws(StoreError) in try store.list() }
        let visible = infos.filter { all || $0.ownerUid == caller.uid }
        let set = Set(infos.map(\.name))
        let secrets = visible.map { info in
            SecretDescription(
                name: info.name, description: info.description, owner: info.ownerUser, updatedBy: info.updatedBy,
                createdAtMs: info.createdAtMs, updatedAtMs: info.updatedAtMs, version: info.version,
                executors: config.executors.filter { $0.secretNames.contains(info.name) }.map(\.name))
        }
        let usable = config.executors.filter { all || Authorizer.mayUse(caller, $0, config) }
        let missing = Set(usable.flatMap(\.secretNames)).subtracting(set).sorted()
        return .result(SecretListResult(secrets: secrets, missing: missing))
    }
}
