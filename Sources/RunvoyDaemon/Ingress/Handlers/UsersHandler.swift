import RunvoyKit

/// `users`: the role bindings in force, the roles of each user they name (temporary grants included), and the
/// temporary grants in force with their expiry.
struct UsersHandler: MethodHandler {
    static let method = Method.users.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<UsersResult> {
        try context.require(.usersRead)
        let config = context.config
        let bindings = config.roles.map {
            BindingInfo(
                role: $0.role.rawValue, users: $0.users, groups: $0.groups,
                rule: "\(config.sourcePath ?? "(embedded configuration)"):\($0.line)")
        }
        let users = PolicyReport.knownUsers(config).compactMap { name -> UserRoles? in
            guard let subject = Caller.lookup(userName: name) else { return nil }
            return UserRoles(
                user: name, uid: subject.uid, roles: Authorizer.roles(subject, config).sorted().map(\.rawValue))
        }
        var result = UsersResult(bindings: bindings, users: users)
        let now = WallClock.milliseconds()
        result.grants = config.grants.filter { $0.isActive(atMs: now) }.sorted { $0.expiresAtMs < $1.expiresAtMs }
            .map(Grants.info)
        return .result(result)
    }
}
