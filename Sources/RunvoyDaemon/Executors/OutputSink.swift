import NIOCore
import RunvoyKit

/// Where an execution's live output and final event go: the connection that started it, while it listens.
protocol OutputSink: Sendable {
    /// Delivers one chunk. Suspends while the receiver is not ready (backpressure); throws when it is gone.
    func output(_ stream: OutputStreamKind, _ chunk: ByteBuffer) async throws
    /// Delivers the final `exit` event.
    func exit(_ event: ExitEvent) async throws
    /// The daemon gives up on a receiver that took nothing for too long after its command ended: writes waiting
    /// for it must fail (a connection closes itself).
    func abandon()
}

extension OutputSink {
    func abandon() {}
}
