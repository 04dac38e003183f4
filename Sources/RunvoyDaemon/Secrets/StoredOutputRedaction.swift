import NIOCore
import RunvoyKit
import RunvoyStore

/// The stored copy of one output stream of an executor with `record_input`, redacted by a redactor of its own that
/// never releases held bytes on a timer.
///
/// The live stream's redactor releases what it holds after 20 ms of quiet, so that a prompt shows. A terminal
/// echoes what is typed, one key at a time, and each echoed key would go out, and into the stored output, on its
/// own: a secret typed at a prompt that echoes would be stored whole. This copy holds the same number of bytes
/// (whatever they are, so what is stored and when still does not depend on the secret) until more output comes
/// or the stream ends, so the typed value is stored as `[secret:NAME]`, as its input is. The caller, who typed it,
/// sees the echo live; the stored output, `logs`, `attach` and replays do not.
///
/// `RedactingHandler` feeds it every read, on the pipe's event loop; the pump that stores the output takes what
/// it has released after each live chunk and at the end of the stream. (The live redactor holds bytes whenever
/// this one has released some, and releases them within its idle delay, so the pump never waits long.)
final class StoredOutputRedaction: Sendable {
    private struct State {
        let redactor: StreamRedactor
        var released: [UInt8] = []
        var ended = false
    }

    private let state: Mutex<State>

    init(_ set: RedactionSet) {
        state = Mutex(State(redactor: StreamRedactor(set)))
    }

    /// Takes one read of the stream, as the command wrote it.
    func feed(_ bytes: ByteBuffer) {
        state.withLock { state in
            guard !state.ended else { return }
            state.released += bytes.withUnsafeReadableBytes { state.redactor.feed($0) }
        }
    }

    /// The stream ended: what is still held is released (redacted).
    func finish() {
        state.withLock { state in
            guard !state.ended else { return }
            state.ended = true
            state.released += state.redactor.finish()
        }
    }

    /// What has been released since the last call, in order.
    func take() -> [UInt8] {
        state.withLock { state in
            defer { state.released = [] }
            return state.released
        }
    }
}
