import RunvoyKit

/// `users`: the role bindings in force and the roles of each user they name.
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
        return .result(UsersResult(bindings: bindings, users: users))
    }
}
