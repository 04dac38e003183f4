/// Where an execution is in its life, as `list` and `status` report it.
public enum ExecutionStatus: String, Codable, Sendable, CaseIterable {
    /// Accepted and waiting in the queue (`exec` with `wait`): not started yet.
    case queued
    /// The command is running.
    case running
    /// The command exited with status 0.
    case succeeded
    /// The command exited with a non-zero status, or could not be started.
    case failed
    /// A signal ended the command (including `runvoyctl kill`).
    case killed
    /// The daemon ended the command because its timeout expired.
    case timedOut = "timed_out"
    /// The daemon stopped (crashed, was killed) while the command ran; the command's end is unknown.
    case lost
    /// Left the queue before it started (`cancel`, its wait timeout, its client went away, or the daemon
    /// stopped): it never ran.
    case cancelled
    /// Waits for approval (`approval` on its executor or rule): not started, not in the queue yet.
    case awaitingApproval = "awaiting_approval"

    /// Whether the execution has ended.
    public var isFinal: Bool { self != .queued && self != .running && self != .awaitingApproval }

    /// Parses a comma-separated list such as `running,failed`. Nil when any name is unknown.
    public static func parseList(_ text: String) -> [ExecutionStatus]? {
        var result: [ExecutionStatus] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            guard let status = ExecutionStatus(rawValue: part.trimmingSpaces) else { return nil }
            result.append(status)
        }
        return result.isEmpty ? nil : result
    }
}
