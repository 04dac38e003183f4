import RunvoyKit
import Testing

@testable import runvoyctl

/// How `runvoyctl status` shows an execution's hook runs: one line each, then their output indented, and
/// nothing a terminal could act on printed as it is.
struct HookStatusFormatTests {
    @Test func hookRunsAreListedAndTheirOutputEscaped() {
        var info = ListCommandFormatTests.info("a")
        info.hooks = [
            HookRunInfo(
                hook: "window", event: "pre_exec", user: "runvoy-hooks", startedAtMs: 1, durationUsec: 12_000,
                exitCode: 1, signal: nil, timedOut: false, outcome: "veto", reason: "outside the change window",
                output: "outside the change window\n\u{1B}]0;pwned\u{07}tail", outputDropped: 10, approvalId: nil),
            HookRunInfo(
                hook: "slow", event: "post_exec", user: "nobody", startedAtMs: 1, durationUsec: 1_000_000,
                exitCode: nil, signal: 9, timedOut: true, outcome: "error", reason: "timed out after 1s", output: "",
                outputDropped: 0, approvalId: nil),
        ]
        let text = StatusCommand.describe(info)
        #expect(text.contains("hook:"), "\(text)")
        #expect(text.contains("pre_exec window as runvoy-hooks: veto (exit 1, "), "\(text)")
        #expect(text.contains("): outside the change window\n"), "\(text)")
        #expect(text.contains("post_exec slow as nobody: error (signal 9, timed out, "), "\(text)")
        #expect(text.contains("output of pre_exec hook window (10B more not kept):\n  outside the change window\n"))
        #expect(!text.contains("\u{1B}") && !text.contains("\u{07}"), "\(text)")
        #expect(!text.contains("output of post_exec hook slow"))
    }
}
