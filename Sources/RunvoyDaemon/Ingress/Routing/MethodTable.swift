/// The methods the daemon answers, by name: routing is this table, not code.
struct MethodTable: Sendable {
    private(set) var handlers: [String: any MethodHandler] = [:]

    init(_ handlers: [any MethodHandler]) {
        for handler in handlers { add(handler) }
    }

    mutating func add(_ handler: some MethodHandler) {
        let name = type(of: handler).method
        precondition(handlers[name] == nil, "method '\(name)' has two handlers")
        handlers[name] = handler
    }

    subscript(name: String) -> (any MethodHandler)? { handlers[name] }

    /// Every method of the protocol. A name that is not here is `unknown_method`.
    static let standard = MethodTable([
        HelloHandler(),
        PingHandler(),
        WhoamiHandler(),
        ExecHandler(),
        StdinHandler(),
        SignalHandler(),
        ResizeHandler(),
        ListHandler(),
        StatusHandler(),
        LogsHandler(),
        AttachHandler(),
        KillHandler(),
        LocksHandler(),
        CancelHandler(),
        ExplainHandler(),
        CapabilitiesHandler(),
        UsersHandler(),
        ReloadHandler(),
        SecretsSetHandler(),
        SecretsListHandler(),
        SecretsRemoveHandler(),
        SecretsGetHandler(),
        BackupHandler(),
        ExportHandler(),
        HealthHandler(),
        TraceHandler(),
        EditOpenHandler(),
        EditSaveHandler(),
        ApprovalsHandler(),
        ApproveHandler(),
        DenyHandler(),
        GrantHandler(),
        RevokeHandler(),
        RequestGrantHandler(),
        PlaybookListHandler(),
        PlaybookShowHandler(),
        PlaybookRunHandler(),
        SchedulesHandler(),
    ])
}
