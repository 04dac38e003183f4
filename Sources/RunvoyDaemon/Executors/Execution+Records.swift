import Logging
import RunvoyKit
import RunvoyStore

extension Execution {
    /// Where an execution records itself: its history row, and the audit trail with the fields of its
    /// `execution_started` record, which its `execution_finished` record repeats.
    struct Records: Sendable {
        let store: ExecutionStore
        let audit: AuditLog
        let fields: [(String, String)]
        let logger: Logger
    }

    /// The pid and start time reach the history as soon as the process exists (off the request's path), so a
    /// daemon that dies now still finds, and ends, the process at its next start.
    func recordStarted() {
        let began = ContinuousClock.now
        defer { DaemonMetrics.shared.storeWrite(.now - began) }
        do throws(StoreError) {
            try records.store.started(
                id, pid: pid, atMs: startedAtMs, startTicks: LostProcess.read(pid)?.startTicks,
                bootID: LostProcess.bootID)
        } catch {
            records.logger.warning(
                "cannot record an execution's pid", metadata: ["execution": "\(id)", "error": "\(error)"])
        }
    }

    /// Ends what the execution holds and records how it ended: the stored output, the secret files, the history
    /// row and the `execution_finished` audit record.
    func recordFinished(_ event: ExitEvent) {
        inputRecording?.finish()
        recorder.finish()
        secrets.cleanUp()
        let totals = recorder.totals
        let status: ExecutionStatus =
            event.timedOut ? .timedOut : event.signal != nil ? .killed : event.exitCode == 0 ? .succeeded : .failed
        DaemonMetrics.shared.executionFinished(
            executor: executorName, outcome: status.rawValue, durationUsec: event.durationUsec,
            stdout: totals.stdoutBytes, stderr: totals.stderrBytes)
        let began = ContinuousClock.now
        do throws(StoreError) {
            try records.store.finish(
                id,
                ExecutionStore.Outcome(
                    status: status, pid: pid, exitCode: event.exitCode, signal: event.signal,
                    startedAtMs: startedAtMs, finishedAtMs: WallClock.milliseconds(),
                    durationUsec: event.durationUsec, totals: totals, reason: nil, usage: containmentReport.usage))
        } catch {
            records.logger.error(
                "cannot record the end of an execution in the history",
                metadata: ["execution": "\(id)", "error": "\(error)"])
        }
        DaemonMetrics.shared.storeWrite(.now - began)
        records.audit.recordBestEffort(finishedRecord(event, totals: totals))
    }

    /// The `execution_finished` record of an execution that ran.
    func finishedRecord(_ event: ExitEvent, totals: OutputRecorder.Totals) -> AuditEvent {
        var record = records.fields
        record.append(("PID", String(pid)))
        var outcome: String
        if let code = event.exitCode {
            record.append(("EXIT_STATUS", String(code)))
            outcome = "exited with status \(code)"
        } else {
            outcome = "killed by signal \(event.signal ?? 0)"
        }
        if let signal = event.signal { record.append(("SIGNAL", String(signal))) }
        if event.timedOut {
            record.append(("TIMED_OUT", "1"))
            outcome += " after timing out"
        }
        record.append(("DURATION_USEC", String(event.durationUsec)))
        record.append(("STDOUT_BYTES", String(totals.stdoutBytes)))
        record.append(("STDERR_BYTES", String(totals.stderrBytes)))
        if inputRecording != nil { record.append(("STDIN_BYTES", String(totals.stdinBytes))) }
        let (leftoversKilled, usage) = containmentReport
        if leftoversKilled > 0 { record.append(("LEFTOVERS_KILLED", String(leftoversKilled))) }
        if let usage { record += usage.auditFields }
        return AuditEvent(
            .executionFinished, priority: event.exitCode == 0 ? 6 : 5, message: "execution \(id) \(outcome)",
            fields: record)
    }
}
