import NIOCore
import RunvoyKit
import RunvoyStore

/// The input an execution is given (typed into its terminal, or piped through `stdin`), stored with its output as
/// stream `stdin` where its executor has `record_input` (issue 16: input is "not recorded unless the executor says
/// so, and then redacted like output"). The same secrets are taken out as from its output, so a secret typed or
/// piped in is not stored; it counts against the same `history.max_output_bytes`.
///
/// Unlike output, held bytes are never released on a timer: a secret typed one key at a time, however slowly,
/// stays held until input that cannot continue it arrives, or the input ends; held bytes are stored with the time
/// they are released.
final class InputRecording: Sendable {
    private struct State {
        /// nil when the execution has no secrets to take out.
        var redactor: StreamRedactor?
        var finished = false
        /// Replacements already added to the metrics.
        var counted = 0
    }

    private let recorder: OutputRecorder
    private let state: Mutex<State>

    init(recorder: OutputRecorder, redaction: RedactionSet?) {
        self.recorder = recorder
        let redactor = redaction.flatMap { $0.isEmpty ? nil : StreamRedactor($0) }
        self.state = Mutex(State(redactor: redactor))
    }

    /// Stores `bytes` as given to the command, redacted (in order: writers are serialized by the lock).
    func record(_ bytes: ByteBuffer) {
        state.withLock { state in
            guard !state.finished else { return }
            guard let redactor = state.redactor else {
                bytes.withUnsafeReadableBytes { recorder.append(.stdin, $0) }
                return
            }
            let clean = bytes.withUnsafeReadableBytes { redactor.feed($0) }
            if !clean.isEmpty { clean.withUnsafeBytes { recorder.append(.stdin, $0) } }
        }
    }

    /// Stores what is still held; input after this is not stored. Runs before the recorder finishes.
    func finish() {
        let replaced = state.withLock { state -> Int in
            guard !state.finished else { return 0 }
            state.finished = true
            guard let redactor = state.redactor else { return 0 }
            let rest = redactor.finish()
            if !rest.isEmpty { rest.withUnsafeBytes { recorder.append(.stdin, $0) } }
            defer { state.counted = redactor.replaced }
            return redactor.replaced - state.counted
        }
        if replaced > 0 { DaemonMetrics.shared.redacted(replaced) }
    }
}
