import RunvoyConfig
import RunvoyKit

/// `grant`: gives a user a role or the use of an executor for a limited time (at most `grants.max_duration`),
/// with a reason. Administrators only (`grants_manage`, held by the configuration: one held only through a temporary
/// grant makes no grants); audited (`grant_changed`) before it counts.
struct GrantHandler: MethodHandler {
    static let method = Method.grant.rawValue
    static let params = ParamsRule<GrantParams>.required(
        "grant needs params with user, role or executor, for_ms, reason")

    func handle(_ params: GrantParams, context: RequestContext) async throws -> Outcome<GrantResult> {
        try context.require(.grantsManage)
        let config = context.config
        // A temporary administrator could renew their own grant, or pass it on to outlast it (review 3 of grants).
        var standing = config
        standing.grants = []
        guard Authorizer.permits(context.caller.refreshed, .grantsManage, standing) else {
            throw context.denied(
                RunvoyError(
                    .permissionDenied,
                    "user \(context.caller.displayName) holds grants_manage only through a temporary grant, which makes no grants"
                ))
        }
        let subject = try Self.subject(role: params.role, executor: params.executor, config)
        try Self.check(forMs: params.forMs, reason: params.reason, config)
        guard let user = Caller.lookup(userName: params.user) else {
            throw RunvoyError(.invalidArgument, "no user '\(params.user)'")
        }
        let grants = try context.grants()
        let grant = try await grants.create(
            user: user, subject: subject, forMs: params.forMs, reason: params.reason, by: context.caller)
        return .result(GrantResult(grant: Grants.info(grant)))
    }

    /// What a grant (or a request for one) gives: exactly one of a known role and a defined executor.
    static func subject(
        role: String?, executor: String?, _ config: DaemonConfig
    ) throws(RunvoyError) -> TemporaryGrant.Subject {
        switch (role, executor) {
        case (let role?, nil):
            guard let known = Role(rawValue: role) else {
                let names = Role.allCases.map(\.rawValue).joined(separator: ", ")
                throw RunvoyError(.invalidArgument, "no role '\(role)' (roles: \(names))")
            }
            return .role(known)
        case (nil, let executor?):
            guard config.executor(named: executor) != nil else {
                throw RunvoyError(.noSuchExecutor, "no executor '\(executor)'")
            }
            return .executor(executor)
        default:
            throw RunvoyError(.invalidArgument, "a grant gives a role or an executor: exactly one of them")
        }
    }

    /// A duration of at least 1 s and at most `grants.max_duration`, and a reason (1-1024 bytes, no controls).
    static func check(forMs: Int64, reason: String, _ config: DaemonConfig) throws(RunvoyError) {
        let maximum = ExecPlan.micros(config.grantSettings.maxDuration) / 1000
        guard forMs >= 1000, forMs <= maximum else {
            throw RunvoyError(
                .invalidArgument,
                "a grant lasts from 1s to grants.max_duration (\(DurationParser.format(config.grantSettings.maxDuration)))"
            )
        }
        guard !reason.allSatisfy(\.isWhitespace) else {
            throw RunvoyError(.invalidArgument, "a grant needs a reason")
        }
        if let invalid = Approvals.textRefusal(reason, what: "a reason") { throw invalid }
    }
}
