import Foundation
import RunvoyConfig
import RunvoyKit

/// What a hook reads on its stdin: one JSON object, version 1, about one execution (or request for one). It
/// holds names and metadata only: environment variables by name, secrets by name, never a value of either.
struct HookPayload: Sendable, Encodable, Equatable {
    struct Execution: Sendable, Encodable, Equatable {
        var id: String
        var executor: String
        var runAs: String
        var command: String
        var argv: [String]
        var cwd: String
        var envKeys: [String]
        var secrets: [String]
        var terminal: Bool
        var timeoutMs: Int64?

        enum CodingKeys: String, CodingKey {
            case id, executor
            case runAs = "run_as"
            case command, argv, cwd
            case envKeys = "env_keys"
            case secrets, terminal
            case timeoutMs = "timeout_ms"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(executor, forKey: .executor)
            try container.encode(runAs, forKey: .runAs)
            try container.encode(command, forKey: .command)
            try container.encode(argv, forKey: .argv)
            try container.encode(cwd, forKey: .cwd)
            try container.encode(envKeys, forKey: .envKeys)
            try container.encode(secrets, forKey: .secrets)
            try container.encode(terminal, forKey: .terminal)
            try container.encode(timeoutMs, forKey: .timeoutMs)
        }
    }

    struct Caller: Sendable, Encodable, Equatable {
        var uid: UInt32
        var user: String
        var pid: Int32
    }

    struct Approver: Sendable, Encodable, Equatable {
        var user: String
        var uid: UInt32
        var comment: String?
    }

    struct Approval: Sendable, Encodable, Equatable {
        var id: String
        var state: String
        var required: Int
        var approvedBy: [Approver]
        var digest: String

        enum CodingKeys: String, CodingKey {
            case id, state, required
            case approvedBy = "approved_by"
            case digest
        }
    }

    /// How a finished execution ended (`post_exec` only).
    struct Result: Sendable, Encodable, Equatable {
        var status: String
        var exitCode: Int32?
        var signal: Int32?
        var durationUsec: Int64?

        enum CodingKeys: String, CodingKey {
            case status
            case exitCode = "exit_code"
            case signal
            case durationUsec = "duration_usec"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(exitCode, forKey: .exitCode)
            try container.encode(signal, forKey: .signal)
            try container.encode(durationUsec, forKey: .durationUsec)
        }
    }

    var version = 1
    var event: HookEvent
    var hook: String
    var timeMs: Int64
    var execution: Execution
    var caller: Caller
    var reason: String?
    var approval: Approval?
    var breakGlass: Bool
    var result: Result?

    enum CodingKeys: String, CodingKey {
        case version, event, hook
        case timeMs = "time_ms"
        case execution, caller, reason, approval
        case breakGlass = "break_glass"
        case result
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(event.rawValue, forKey: .event)
        try container.encode(hook, forKey: .hook)
        try container.encode(timeMs, forKey: .timeMs)
        try container.encode(execution, forKey: .execution)
        try container.encode(caller, forKey: .caller)
        try container.encode(reason, forKey: .reason)
        try container.encode(approval, forKey: .approval)
        try container.encode(breakGlass, forKey: .breakGlass)
        if event == .postExec { try container.encode(result, forKey: .result) }
    }

    /// The JSON a hook reads: keys sorted, one line, then a newline.
    var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every field is a string, number, boolean, array or null: encoding cannot fail.
        return ((try? encoder.encode(self)).map(Array.init) ?? Array("{}".utf8)) + [0x0A]
    }
}

/// What the hooks of one event are told: the payload without the hook's own name and time.
struct HookSubject: Sendable {
    var execution: HookPayload.Execution
    var caller: HookPayload.Caller
    var reason: String?
    var approval: HookPayload.Approval?
    var breakGlass = false
    var result: HookPayload.Result?
    /// The executor whose hooks run after the global ones; nil runs the global ones only.
    var executor: ExecutorConfig?

    init(execution: HookPayload.Execution, caller: HookPayload.Caller, executor: ExecutorConfig?) {
        self.execution = execution
        self.caller = caller
        self.executor = executor
    }

    /// The subject of `plan`'s execution `id`.
    init(_ plan: ExecPlan, id: String) {
        execution = HookPayload.Execution(
            id: id, executor: plan.executor.name, runAs: plan.runAs, command: plan.command, argv: plan.argv,
            cwd: plan.workingDirectory, envKeys: plan.envKeys, secrets: plan.executor.secretNames.sorted(),
            terminal: plan.terminal != nil, timeoutMs: plan.timeout.map { ExecPlan.micros($0) / 1000 })
        caller = HookPayload.Caller(uid: plan.caller.uid, user: plan.caller.displayName, pid: plan.caller.pid)
        reason = plan.reason
        executor = plan.executor
        (approval, breakGlass) = Self.approval(of: plan)
    }

    /// The approval a plan started with, from the fields its ticket added to its launch records (`ApprovalTicket`):
    /// approved (with its approvers) or broken glass; nil for a plan that needed none.
    static func approval(of plan: ExecPlan) -> (HookPayload.Approval?, Bool) {
        let fields = Dictionary(plan.auditFields, uniquingKeysWith: { _, last in last })
        guard let id = fields["APPROVAL_ID"], let digest = fields["APPROVAL_DIGEST"] else { return (nil, false) }
        if fields["BREAK_GLASS"] == "1" {
            return (
                HookPayload.Approval(id: id, state: "break_glass", required: 0, approvedBy: [], digest: digest), true
            )
        }
        let approvers = (fields["APPROVED_BY"] ?? "").split(separator: ",").compactMap { UInt32($0) }.map { uid in
            HookPayload.Approver(user: UserDatabase.user(uid: uid)?.name ?? "#\(uid)", uid: uid, comment: nil)
        }
        let approval = HookPayload.Approval(
            id: id, state: "approved", required: approvers.count, approvedBy: approvers, digest: digest)
        return (approval, false)
    }

    func payload(_ event: HookEvent, hook: String, timeMs: Int64) -> HookPayload {
        HookPayload(
            event: event, hook: hook, timeMs: timeMs, execution: execution, caller: caller, reason: reason,
            approval: approval, breakGlass: breakGlass, result: result)
    }
}
