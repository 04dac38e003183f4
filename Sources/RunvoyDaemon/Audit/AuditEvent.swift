/// One audit record: a decision, an execution's start or end, or a change to the daemon's configuration.
struct AuditEvent: Sendable {
    /// The kinds of record, each with a fixed journal MESSAGE_ID (see packaging/systemd/runvoyd.catalog).
    enum Kind: String, Sendable, CaseIterable {
        case decision
        case executionStarted = "execution_started"
        case executionFinished = "execution_finished"
        case daemonStarted = "daemon_started"
        case daemonStopping = "daemon_stopping"
        case configReloaded = "config_reloaded"
        case configRejected = "config_rejected"
        case executionLost = "execution_lost"
        case executionKill = "execution_kill"
        case policyLoaded = "policy_loaded"
        case secretChanged = "secret_changed"
        case secretRead = "secret_read"
        case requestDenied = "request_denied"
        case refusalsSuppressed = "refusals_suppressed"
        case backup
        case backupKeyExported = "backup_key_exported"
        case recordsLost = "records_lost"
        case rateLimited = "rate_limited"
        case executionQueued = "execution_queued"
        case executionDequeued = "execution_dequeued"
        case executionCancelled = "execution_cancelled"
        case executionAttached = "execution_attached"
        case executionDetached = "execution_detached"
        case connectionRefused = "connection_refused"
        case executionProcessesEnded = "execution_processes_ended"
        case fileOpened = "file_opened"
        case fileEdited = "file_edited"
        case approvalRequested = "approval_requested"
        case approvalAnswered = "approval_answered"
        case approvalDecided = "approval_decided"
        case breakGlass = "break_glass"
        case grantChanged = "grant_changed"
        case hookRan = "hook_ran"
        case playbookRunStarted = "playbook_run_started"
        case playbookRunFinished = "playbook_run_finished"

        /// The journal MESSAGE_ID of this kind. Never change one: auditors filter on them.
        var messageID: String {
            switch self {
            case .decision: "787f0a272bf243ed98b3018cc90a184e"
            case .executionStarted: "1d048f66969c4a758be0048c50380029"
            case .executionFinished: "e8390f8c07ed424c9272b23a12e6357f"
            case .daemonStarted: "cd740a772e90431f99e29d0ec34dea66"
            case .daemonStopping: "b10de4b05d2b4a6d8ba19f7ac43549c2"
            case .configReloaded: "1a58a1d24d0f423d8ccb5c57b2a74873"
            case .configRejected: "722a7af473324b1e808d0966d85db679"
            case .executionLost: "7ddf4ba46ed14d34ba0d1941f593f0e6"
            case .executionKill: "71db77fb25744895a917ce519c3c3ffa"
            case .policyLoaded: "cab3d64133b74c5c95343846040b66bc"
            case .secretChanged: "c7ecc37320ae42a697d6392cf08decea"
            case .secretRead: "e3a4b52beeca498e8edae99d5e58a173"
            case .requestDenied: "80d9452da2e74550b465d167dc9ac6ec"
            case .refusalsSuppressed: "74908db65f524c76b01fee0972835f78"
            case .backup: "d965ed6f760a4c9ea627dfa41313777a"
            case .backupKeyExported: "850cfdcb7ac3432f9ad2d52c56bd15b4"
            case .recordsLost: "e9453f9583f64e16a11b23ac07d87d90"
            case .rateLimited: "9ce2c0d305154cff9c1e799bd27c9ce2"
            case .executionQueued: "b5e099880d314ddc8cc34004d72678f3"
            case .executionDequeued: "a97ce768d52440ecac3cc57a86ba8a8c"
            case .executionCancelled: "ffbb9b1a9b90496184bfdb042d5804ab"
            case .executionAttached: "be54e9df1fb846fe9523f7184eb3a8bd"
            case .executionDetached: "a5cdb2d1166846cabd70b54a5d00d393"
            case .connectionRefused: "195bace4d778400ab3932aa7cedec38c"
            case .executionProcessesEnded: "3f0c2a9d5b6e4e1c8a7d2b4f6e9c1a35"
            case .fileOpened: "6e2292a0e51a43c0b18d665818659b30"
            case .fileEdited: "8b7c70da326d498da9aaca97e404e7dd"
            case .approvalRequested: "885037e8c8384c5784fdad1c03b59bf0"
            case .approvalAnswered: "dad52764109d4db29aad6b392d23c5ed"
            case .approvalDecided: "228dc49094a24624951d6a7cc5bf9445"
            case .breakGlass: "db5006d2383842eda54aa60c49524a39"
            case .grantChanged: "854e8e351e8a479a83c315bca97cf176"
            case .hookRan: "9c7ab93ff8e643af8c47c42f3af9e55f"
            case .playbookRunStarted: "37ab2571e1914ce79111ffc2a202f5a3"
            case .playbookRunFinished: "0f12874282e146118c5c7ab4dae73e86"
            }
        }
    }

    var kind: Kind
    var message: String
    /// Syslog priority: 4 warning for denials and failures, 5 notice for decisions and executions, 6 info otherwise.
    var priority: Int
    /// `RUNVOY_*` fields, without the prefix.
    var fields: [(String, String)]

    init(_ kind: Kind, priority: Int = 5, message: String, fields: [(String, String)] = []) {
        self.kind = kind
        self.message = message
        self.priority = priority
        self.fields = fields
    }

    /// The complete journal entry.
    var journalFields: [(String, String)] {
        var all: [(String, String)] = [
            ("MESSAGE", message),
            ("MESSAGE_ID", kind.messageID),
            ("PRIORITY", String(priority)),
            ("SYSLOG_IDENTIFIER", "runvoyd"),
            ("RUNVOY_EVENT", kind.rawValue),
        ]
        all.reserveCapacity(all.count + fields.count)
        for (name, value) in fields { all.append(("RUNVOY_" + name, value)) }
        return all
    }
}
