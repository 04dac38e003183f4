import ArgumentParser
import RunvoyKit

/// `runvoyctl status ID`: one execution from the history.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show one execution: who ran what, where, how it ended and its output size.")

    @OptionGroup var global: GlobalOptions

    @Argument(
        help: ArgumentHelp(
            "The execution id (from exec, list or the journal), or a playbook run's id (run-...).", valueName: "id"))
    var id: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        if id.hasPrefix("run-") {
            try remoteCall(
                global, .status, params: ExecutionRef(executionId: id), result: PlaybookRunResult.self, json: json
            ) { for line in Self.describe($0) { printLine(line) } }
            return
        }
        try remoteCall(global, .status, params: ExecutionRef(executionId: id), result: ExecutionInfo.self, json: json) {
            print(Self.describe($0), terminator: "")
        }
    }

    /// A playbook run and its steps, for people.
    static func describe(_ run: PlaybookRunResult) -> [String] {
        var lines = [
            "run          \(run.runId)", "playbook     \(run.playbook)", "state        \(run.state)",
            "caller       \(run.callerUser ?? "?") (uid \(run.callerUid.map(String.init) ?? "?"))",
        ]
        if let params = run.params, !params.isEmpty {
            lines.append(
                "params       " + params.keys.sorted().map { "\($0)=\(params[$0] ?? "")" }.joined(separator: " "))
        }
        if let started = run.startedAtMs { lines.append("started      " + HistoryFormat.localTime(ms: started)) }
        if let ended = run.finishedAtMs { lines.append("finished     " + HistoryFormat.localTime(ms: ended)) }
        for step in run.steps {
            var text = "step \(step.index + 1)       \(step.name.isEmpty ? "" : step.name + ": ")\(step.state)"
            if let id = step.executionId { text += " \(id)" }
            if let code = step.exitCode { text += " (exit \(code))" }
            if let signal = step.signal { text += " (signal \(signal))" }
            if let error = step.error { text += ": \(error.message)" }
            lines.append(text)
        }
        return lines
    }

    static func describe(_ info: ExecutionInfo) -> String {
        var lines: [(String, String)] = [
            ("execution", info.executionId),
            ("status", info.status.rawValue),
            ("command", HistoryFormat.command(info)),
            ("executor", info.executor),
            ("run as", info.runAs),
            ("directory", info.workingDirectory),
            ("caller", "\(info.callerUser) (uid \(info.callerUid), pid \(info.callerPid))"),
        ]
        if !info.envKeys.isEmpty {
            lines.append(
                ("env keys", info.envKeys.joined(separator: ", ") + (info.envKeysTruncated ? ", … (cut)" : "")))
        }
        if info.argvTruncated {
            lines.append(("note", "the reply carries the start of argv; the audit trail has all of it (RUNVOY_ARGV)"))
        }
        if let pid = info.pid { lines.append(("pid", String(pid))) }
        lines.append(("created", HistoryFormat.localTime(ms: info.createdAtMs)))
        if let started = info.startedAtMs { lines.append(("started", HistoryFormat.localTime(ms: started))) }
        if let finished = info.finishedAtMs { lines.append(("finished", HistoryFormat.localTime(ms: finished))) }
        if info.durationUsec != nil { lines.append(("duration", HistoryFormat.duration(usec: info.durationUsec))) }
        if let code = info.exitCode { lines.append(("exit status", String(code))) }
        if let signal = info.signal { lines.append(("signal", String(signal))) }
        var output = "\(HistoryFormat.bytes(info.stdoutBytes)) stdout, \(HistoryFormat.bytes(info.stderrBytes)) stderr"
        if info.droppedBytes > 0 {
            // Past the cap, or could not be written (the reason says why).
            output += "; \(HistoryFormat.bytes(info.droppedBytes)) not stored" + (info.reason == nil ? " (cap)" : "")
        }
        if info.outputPruned { output += "; stored output removed by retention" }
        lines.append(("output", output))
        if let input = info.stdinBytes {
            lines.append(
                ("input", "\(HistoryFormat.bytes(input)) recorded (runvoyctl logs --input \(info.executionId))"))
        }
        if let usage = info.usage { lines.append(("usage", Self.usage(usage))) }
        if let reason = info.reason { lines.append(("reason", reason)) }
        if let window = info.terminal {
            lines.append(("terminal", "\(window.rows) rows x \(window.cols) columns at start"))
        }
        if let edit = info.edit {
            lines.append(("edited file", edit.path + (edit.changed ? "" : " (unchanged: nothing written)")))
            let withheld = "(shown to its editor and administrators)"
            lines.append(("sha256 before", edit.sha256Before ?? withheld))
            lines.append(("sha256 after", edit.sha256After ?? withheld))
        }
        lines.append(("config", info.configDigest))
        lines += (info.hooks ?? []).map { ("hook", Self.hook($0)) }
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map {
            $0.0 + ":" + String(repeating: " ", count: width - $0.0.count + 1) + TerminalText.escape($0.1) + "\n"
        }.joined() + (info.hooks ?? []).map(Self.hookOutput).joined()
    }

    /// `pre_exec window as runvoy-hooks: veto (exit 1, 12ms): outside the change window`.
    static func hook(_ run: HookRunInfo) -> String {
        var how: [String] = []
        if let code = run.exitCode { how.append("exit \(code)") }
        if let signal = run.signal { how.append("signal \(signal)") }
        if run.timedOut { how.append("timed out") }
        how.append(HistoryFormat.duration(usec: run.durationUsec))
        return "\(run.event) \(run.hook) as \(run.user): \(run.outcome) (\(how.joined(separator: ", ")))"
            + (run.reason.map { ": \($0)" } ?? "")
    }

    /// A hook's output under a heading, each line indented, anything a terminal could act on escaped.
    static func hookOutput(_ run: HookRunInfo) -> String {
        guard !run.output.isEmpty || run.outputDropped > 0 else { return "" }
        let dropped = run.outputDropped > 0 ? " (\(HistoryFormat.bytes(run.outputDropped)) more not kept)" : ""
        let body = run.output.split(separator: "\n", omittingEmptySubsequences: false).map {
            "  " + TerminalText.escape(String($0)) + "\n"
        }
        return "\noutput of \(run.event) hook \(TerminalText.escape(run.hook))\(dropped):\n" + body.joined()
    }

    /// `cpu 1.2s user, 30ms system; memory peak 12.0MiB; tasks peak 3; io 4.0KiB read, 0B written (cgroup)`: the
    /// figures the daemon had, and where they came from.
    static func usage(_ usage: ResourceUsage) -> String {
        var parts: [String] = []
        if usage.cpuUserUsec != nil || usage.cpuSystemUsec != nil {
            parts.append(
                "cpu \(HistoryFormat.duration(usec: usage.cpuUserUsec)) user, "
                    + "\(HistoryFormat.duration(usec: usage.cpuSystemUsec)) system")
        }
        if let peak = usage.memoryPeakBytes { parts.append("memory peak \(HistoryFormat.bytes(peak))") }
        if let tasks = usage.tasksPeak { parts.append("tasks peak \(tasks)") }
        if let read = usage.ioReadBytes, let written = usage.ioWriteBytes {
            parts.append("io \(HistoryFormat.bytes(read)) read, \(HistoryFormat.bytes(written)) written")
        }
        return parts.joined(separator: "; ") + " (\(usage.source))"
    }
}
