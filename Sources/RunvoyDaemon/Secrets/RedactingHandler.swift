import NIOCore
import RunvoyStore

/// Takes secret values out of a command's output pipe before anything reads it: the client, the stored output
/// and every follower see only what this handler passes on.
///
/// It carries out what its `StreamRedactor` decides: every read passes on all but a fixed-length tail, and the
/// tail follows once the pipe has been quiet for the redactor's idle delay, or at the end of the stream. The timer
/// runs on the channel's event loop, so released bytes stay in order with later reads.
///
/// With `storage`, the stored copy of the stream is redacted apart, by a redactor without the timer (see
/// `StoredOutputRedaction`): what this handler passes on then goes to the live stream only.
final class RedactingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let redactor: StreamRedactor
    private let idleFlush: TimeAmount
    private let storage: StoredOutputRedaction?
    private var timer: Scheduled<Void>?
    /// Replacements already added to the metrics.
    private var counted = 0

    init(
        _ set: RedactionSet, idleFlush: Duration = StreamRedactor.defaultIdleFlush,
        storage: StoredOutputRedaction? = nil
    ) {
        self.redactor = StreamRedactor(set, idleFlush: idleFlush)
        self.idleFlush = TimeAmount(idleFlush)
        self.storage = storage
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let chunk = unwrapInboundIn(data)
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        storage?.feed(chunk)
        let clean = chunk.withUnsafeReadableBytes { redactor.feed($0, now: now) }
        pass(clean, context: context, complete: false)
        timer?.cancel()
        timer = nil
        if redactor.deadline != nil {
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: idleFlush) { [self] in
                self.timer = nil
                self.pass(self.redactor.expire(now: Int64(NIODeadline.now().uptimeNanoseconds)), context: context)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        endOfStream(context: context)
        context.fireChannelInactive()
    }

    /// A read error also ends the stream, and comes before `channelInactive`: a terminal's master reads EIO once
    /// the last process holding its slave is gone, and the async channel reading this one ends its stream at the
    /// error, so the held tail (a session's last line) goes out first or not at all.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        endOfStream(context: context)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent {
            endOfStream(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func endOfStream(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        storage?.finish()
        pass(redactor.finish(), context: context)
        // (The end can be seen twice, input closed then inactive: each replacement is counted once.)
        DaemonMetrics.shared.redacted(redactor.replaced - counted)
        counted = redactor.replaced
    }

    /// Passes `bytes` on; `complete` ends the batch when this is not inside a read (timer, end of stream).
    private func pass(_ bytes: [UInt8], context: ChannelHandlerContext, complete: Bool = true) {
        guard !bytes.isEmpty else { return }
        context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: bytes)))
        if complete { context.fireChannelReadComplete() }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        self = .nanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}
