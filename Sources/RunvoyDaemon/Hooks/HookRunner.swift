import Logging
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// Runs the hooks of one event for one execution (or request for one): the global hooks of the event, then its
/// executor's, each list in file order. Each run is judged (`ok`, `veto`, `error`), stored with the execution
/// (`hook_runs`) and audited (`hook_ran`). Where the event may refuse (`pre_exec`, `on_approval_request`), the
/// first hook that refuses stops the others and its refusal (`hook_refused`) is returned.
struct HookRunner: Sendable {
    let spawner: any ProcessSpawner
    /// Where runs are kept; nil keeps them nowhere (tests of the runner alone).
    let store: ExecutionStore?
    let logger: Logger
    var journal: Journal = .shared
    /// Where hook processes are held from the orphan reaper (subreaper containment), nil where none reaps.
    var children: (any ChildHolding)?
    /// Where running hooks are listed for shutdown to kill.
    var running: RunningHooks?

    enum Outcome: String, Sendable {
        case ok, veto, error
    }

    /// One hook's run, judged.
    struct Verdict: Sendable, Equatable {
        var outcome: Outcome
        /// A veto's reason (cleaned) or what went wrong; nil when it was ok.
        var reason: String?
        /// Whether it refuses the request (its event may refuse, and it vetoed or failed under `on_error: deny`).
        var refuses: Bool
    }

    /// The longest reason kept from a hook's output.
    static let maxReason = 200

    /// The hooks of `event` that apply to `executor`: the global ones first.
    static func hooks(_ event: HookEvent, config: DaemonConfig, executor: ExecutorConfig?) -> [HookConfig] {
        (config.hooks + (executor?.hooks ?? [])).filter { $0.event == event }
    }

    /// Runs the hooks of `event` for `subject`; the refusal of the first that refuses, or nil.
    func run(_ event: HookEvent, _ subject: HookSubject, config: DaemonConfig) async -> RunvoyError? {
        await runAll(event, subject, config: config).refusal
    }

    /// Runs the hooks of `event` for `subject`: the refusal of the first that refuses (or nil), and the names of
    /// those that failed (could not start, were killed, timed out) and did not refuse (`on_error: allow`), which
    /// the record that must be written says (`HOOKS_FAILED_OPEN`): `hook_ran` is best-effort.
    func runAll(
        _ event: HookEvent, _ subject: HookSubject, config: DaemonConfig
    ) async -> (refusal: RunvoyError?, failedOpen: [String]) {
        let hooks = Self.hooks(event, config: config, executor: subject.executor)
        guard !hooks.isEmpty else { return (nil, []) }
        let audit = AuditLog(config.audit, logger: logger, journal: journal)
        var failedOpen: [String] = []
        for hook in hooks {
            let startedAtMs = WallClock.milliseconds()
            let input = subject.payload(event, hook: hook.name, timeMs: startedAtMs).bytes
            let ran = await HookProcess(spawner: spawner, children: children, running: running).run(
                hook, input: input, executionID: subject.execution.id)
            let verdict = Self.judge(hook, ran)
            keep(hook, ran, verdict, subject, startedAtMs: startedAtMs)
            audit.recordBestEffort(Self.record(hook, ran, verdict, subject))
            if verdict.refuses { return (Self.refusal(hook, verdict), failedOpen) }
            if verdict.outcome == .error { failedOpen.append(hook.name) }
        }
        return (nil, failedOpen)
    }

    /// What a run means: exit 0 is ok; another exit a veto with the first line of its output as the reason; a
    /// run that could not start, was killed or timed out an error, which refuses under `on_error: deny`.
    static func judge(_ hook: HookConfig, _ ran: HookProcess.Ran) -> Verdict {
        let mayRefuse = hook.event.mayVeto
        let failed = { (reason: String) in
            Verdict(outcome: .error, reason: reason, refuses: mayRefuse && hook.onError == .deny)
        }
        if let error = ran.spawnError { return failed("cannot start: \(error)") }
        if ran.timedOut { return failed("timed out after \(DurationParser.format(hook.timeout))") }
        if ran.statusLost { return failed("exit status lost") }
        switch ran.status {
        case .exited(0): return Verdict(outcome: .ok, reason: nil, refuses: false)
        case .exited(let code):
            return Verdict(
                outcome: .veto, reason: firstLine(of: ran.output) ?? "exited \(code)", refuses: mayRefuse)
        case .signaled(let signal): return failed("killed by signal \(signal)")
        case nil: return failed("no exit status")
        }
    }

    /// The first line of `output` with anything in it once control and format characters (escapes, bidi
    /// overrides) are taken out, at most `maxReason` characters; nil when there is none.
    static func firstLine(of output: [UInt8]) -> String? {
        let text = String(decoding: output, as: UTF8.self)
        // By `isNewline`: "\r\n" is one Character, which a split on "\n" would not cut.
        for line in text.split(whereSeparator: \.isNewline) {
            var scalars = String.UnicodeScalarView()
            for scalar in line.unicodeScalars {
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse,
                    .unassigned:
                    continue
                default: scalars.append(scalar)
                }
            }
            let cleaned = String(scalars).trimmingSpaces
            if !cleaned.isEmpty { return String(cleaned.prefix(maxReason)) }
        }
        return nil
    }

    /// The error a refusing hook gives the client.
    static func refusal(_ hook: HookConfig, _ verdict: Verdict) -> RunvoyError {
        let what = verdict.outcome == .veto ? "refused" : "failed (on_error: deny)"
        return RunvoyError(
            .hookRefused, "\(hook.event.rawValue) hook '\(hook.name)' \(what): \(verdict.reason ?? "")",
            reason: hook.name)
    }

    /// Stores the run with its execution; a run that cannot be stored is logged (the audit record has it).
    private func keep(
        _ hook: HookConfig, _ ran: HookProcess.Ran, _ verdict: Verdict, _ subject: HookSubject, startedAtMs: Int64
    ) {
        guard let store else { return }
        var exitCode: Int32?
        var signal: Int32?
        switch ran.status {
        case .exited(let code): exitCode = code
        case .signaled(let number): signal = number
        case nil: break
        }
        let info = HookRunInfo(
            hook: hook.name, event: hook.event.rawValue, user: hook.user, startedAtMs: startedAtMs,
            durationUsec: ran.durationUsec, exitCode: exitCode, signal: signal, timedOut: ran.timedOut,
            outcome: verdict.outcome.rawValue, reason: verdict.reason, output: "", outputDropped: Int64(ran.dropped),
            approvalId: subject.approval?.id)
        do throws(StoreError) {
            try store.insertHookRun(
                HookRunRecord(
                    executionId: subject.execution.id, approvalId: subject.approval?.id, info: info,
                    output: ran.output))
        } catch {
            logger.error(
                "cannot store a hook's run", metadata: ["hook": "\(hook.name)", "error": "\(error)"])
        }
    }

    /// The `hook_ran` record.
    static func record(
        _ hook: HookConfig, _ ran: HookProcess.Ran, _ verdict: Verdict, _ subject: HookSubject
    ) -> AuditEvent {
        var fields: [(String, String)] = [
            ("HOOK", hook.name), ("HOOK_EVENT", hook.event.rawValue), ("EXECUTION_ID", subject.execution.id),
            ("EXECUTOR", subject.execution.executor), ("CALLER_UID", String(subject.caller.uid)),
            ("CALLER_USER", subject.caller.user), ("HOOK_USER", hook.user), ("HOOK_PID", String(ran.pid)),
            ("TIMED_OUT", ran.timedOut ? "1" : "0"), ("DURATION_USEC", String(ran.durationUsec)),
            ("OUTCOME", verdict.outcome.rawValue), ("ON_ERROR", hook.onError.rawValue),
            ("REFUSED", verdict.refuses ? "1" : "0"), ("OUTPUT_BYTES", String(ran.output.count)),
            ("OUTPUT_DROPPED", String(ran.dropped)),
        ]
        if let id = subject.approval?.id { fields.append(("APPROVAL_ID", id)) }
        switch ran.status {
        case .exited(let code): fields.append(("EXIT_CODE", String(code)))
        case .signaled(let signal): fields.append(("SIGNAL", String(signal)))
        case nil: break
        }
        if let reason = verdict.reason { fields.append(("REASON", reason)) }
        let message =
            "\(hook.event.rawValue) hook '\(hook.name)' for execution \(subject.execution.id): \(verdict.outcome.rawValue)"
            + (verdict.reason.map { ": \($0)" } ?? "")
        return AuditEvent(.hookRan, priority: verdict.outcome == .ok ? 5 : 4, message: message, fields: fields)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
