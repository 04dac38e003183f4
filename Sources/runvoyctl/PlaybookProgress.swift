import RunvoyKit

/// What `playbook run` shows of a run's frames on stderr ("[2/4] plan: started (id …)"), and its exit status
/// from the reply: 0 when the run succeeded; else the last failed step's status (its exit status, 128+N for
/// signal N), or 125 when a step could not start or the run was cancelled.
struct PlaybookProgress {
    let quiet: Bool
    private var count = 0
    private var lastFailure: Int32?

    init(quiet: Bool) {
        self.quiet = quiet
    }

    /// What handling a frame came to: `status` ends the exchange when set.
    struct Handled {
        var status: Int32?
    }

    /// Handles the run's own frames (nil for those `ExecSession` handles: output, queue and approval events).
    mutating func handle(_ frame: JSONValue) -> Handled? {
        switch frame["event"]?.string {
        case "run_started":
            count = frame["steps"]?.int ?? 0
            if !quiet {
                complain("run \(frame["run_id"]?.string ?? "?") of playbook '\(frame["playbook"]?.string ?? "?")'")
            }
            return Handled()
        case "step":
            if let step = frame["step"] { show(step) }
            return Handled()
        case "started", "exit":
            // The step events say it.
            return Handled()
        case nil:
            guard let result = frame["result"], let state = result["state"]?.string else { return nil }
            if !quiet { complain("run \(result["run_id"]?.string ?? "?") \(state)") }
            return Handled(status: state == "succeeded" ? 0 : lastFailure ?? CtlExit.failure)
        default:
            return nil
        }
    }

    private mutating func show(_ step: JSONValue) {
        let index = (step["index"]?.int ?? 0) + 1
        let name = step["name"]?.string ?? "?"
        let state = step["state"]?.string ?? "?"
        var text = "[\(index)/\(count)] \(name): \(state)"
        switch state {
        case "started":
            text += " (id \(step["execution_id"]?.string ?? "?"))"
        case "failed":
            if let code = step["exit_code"]?.int {
                text += " (exit \(code))"
                lastFailure = Int32(truncatingIfNeeded: code)
            } else if let signal = step["signal"]?.int {
                text += " (signal \(signal))"
                lastFailure = 128 + Int32(truncatingIfNeeded: signal)
            } else {
                text += ": " + (step["error"]?["message"]?.string ?? "it did not start")
                lastFailure = CtlExit.failure
            }
        default:
            break
        }
        if !quiet || state == "failed" { complain(text) }
    }
}
