import Logging
import RunvoyConfig
import RunvoyKit

/// An `exec` request checked and decided before anything exists: what will run, as whom, with what, for how long,
/// and why it was allowed. `ExecPlan.make` builds it from one configuration snapshot; nothing in it changes
/// afterwards. The command rules were checked against `command`, the very path `ExecLaunch` executes.
struct ExecPlan: Sendable {
    let requestID: RequestID?
    let caller: Caller
    let argv: [String]
    let executor: ExecutorConfig
    /// Who the command runs as: nil keeps the daemon's identity (a daemon that is not root runs commands as itself).
    let identity: SpawnRequest.Identity?
    /// `user:group`, for the audit trail, the history and the `started` event.
    let runAs: String
    /// The program that runs: `argv[0]` found once, as the run-as user, directories resolved, file name kept.
    let command: String

    /// The argv the program is started with: its real path (`command`) as `argv[0]`, since programs find their own
    /// files from `argv[0]` (CPython a virtual environment, and the code in its `.pth` files): a path typed through
    /// folders the caller can change, or a name the program would look up in a `PATH` the caller set (`allow_env`)
    /// or in relative `PATH` entries, must not point it at the caller's files. The file name is kept, so programs
    /// that act on their name still do. `argv` stays as typed for the audit trail and the history.
    var launchArgv: [String] {
        argv.isEmpty ? argv : [command] + argv.dropFirst()
    }
    /// The executor's environment with the variables the caller added (secrets are added at launch).
    let environment: [String: String]
    /// The names of the variables the caller added, sorted.
    let envKeys: [String]
    let timeout: Duration?
    let decision: Authorizer.Decision
    /// Why it runs (`exec --reason`), checked: shown to approvers, bound by the approval's digest, audited.
    let reason: String?
    /// Whether the command reads a pipe the client feeds (`stdin`, not detached); otherwise /dev/null.
    let wantsStdin: Bool
    let killOnDisconnect: Bool
    /// The pseudo-terminal the command runs on, or nil for pipes.
    let terminal: TerminalSize?
    /// The configuration the request was decided under; the launch and the execution use the same snapshot.
    let config: DaemonConfig
    /// What every audit record of this execution begins with: the request, the caller, the executor, argv, the
    /// caller's environment names, the rule that decided and the injected secrets' names.
    var auditFields: [(String, String)]
    /// The playbook run and step it is, if it is one.
    var playbookStep: PlaybookStepContext?

    var workingDirectory: String { executor.workingDirectory }

    /// The audit log of this request's configuration (fail-closed or not, and its write timeout).
    func auditLog(logger: Logger, journal: Journal = .shared) -> AuditLog {
        AuditLog(config.audit, logger: logger, journal: journal)
    }

    /// The fields of the `execution_started` record (and, with more, of `execution_finished`).
    func startedFields(executionID: String) -> [(String, String)] {
        var fields = [("EXECUTION_ID", executionID)] + auditFields
        fields.append(("RUN_AS", runAs))
        fields.append(("COMMAND_PATH", command))
        fields.append(("CWD", workingDirectory))
        if let terminal { fields.append(("TTY", "\(terminal.cols)x\(terminal.rows)")) }
        if let timeout { fields.append(("TIMEOUT_USEC", String(Self.micros(timeout)))) }
        return fields
    }

    /// The `decision` record that allows it, written before anything runs.
    func allowedRecord(executionID: String) -> AuditEvent {
        var fields = startedFields(executionID: executionID)
        fields.append(("DECISION", "allow"))
        fields.append(("REASON", decision.reason))
        return AuditEvent(
            .decision,
            message:
                "allowed \(caller.displayName) (uid \(caller.uid)) exec on '\(executor.name)' as \(runAs): \(JSONText.array(argv))",
            fields: fields)
    }

    /// The `execution_started` record, the last one written before the command exists.
    func startedRecord(executionID: String) -> AuditEvent {
        AuditEvent(
            .executionStarted,
            message: "execution \(executionID) starting for \(caller.displayName) on '\(executor.name)' as \(runAs)",
            fields: startedFields(executionID: executionID))
    }

    /// This plan refused after it was made (admission, the history, the secrets): its audit fields are complete.
    func refusal(_ error: RunvoyError) -> ExecRefusal {
        ExecRefusal(error: error, fields: auditFields, argv: argv, executorName: executor.name)
    }

    /// The history row of this plan's execution, before its process exists.
    func historyRow(id: String, status: ExecutionStatus, createdAtMs: Int64) -> ExecutionInfo {
        ExecutionInfo(
            executionId: id, status: status, callerUid: caller.uid, callerUser: caller.displayName,
            callerPid: caller.pid, executor: executor.name, runAs: runAs, argv: argv,
            workingDirectory: workingDirectory, envKeys: envKeys, pid: nil, exitCode: nil, signal: nil,
            createdAtMs: createdAtMs, startedAtMs: nil, finishedAtMs: nil, durationUsec: nil, stdoutBytes: 0,
            stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false, configDigest: config.digest,
            reason: nil, terminal: terminal.map { TerminalWindow(rows: Int($0.rows), cols: Int($0.cols)) },
            stdinBytes: executor.recordInput ? 0 : nil, runId: playbookStep?.runID)
    }

    /// `duration` in whole microseconds, saturating at the 64-bit bounds (requests are bounded well below them).
    static func micros(_ duration: Duration) -> Int64 {
        let (seconds, overflow) = duration.components.seconds.multipliedReportingOverflow(by: 1_000_000)
        if overflow { return duration.components.seconds < 0 ? .min : .max }
        let (total, carry) = seconds.addingReportingOverflow(duration.components.attoseconds / 1_000_000_000_000)
        return carry ? (seconds < 0 ? .min : .max) : total
    }
}
