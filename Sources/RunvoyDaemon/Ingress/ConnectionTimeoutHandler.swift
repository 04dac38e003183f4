import NIOCore
import RunvoyKit

/// Closes a connection that makes no request counting as activity within the idle timeout, unless an execution
/// is attached to it (the client is then waiting on output, not idle). `Router` marks a request as activity once
/// its frame is complete and names a method that counts (not `hello`, `ping` or `whoami`: a connection that only
/// greets is idle), so a client trickling bytes of one frame gets no more time than one that sends nothing.
///
/// Before closing it writes one `timeout` error frame. A client that reads its output slowly is not cut off:
/// backpressure slows its own command and nothing else.
final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Shared with the connection task, which marks the connection busy while an execution streams on it and
    /// notes when it last made a request that counts as activity.
    final class Activity: Sendable {
        private let state = Mutex((attached: 0, lastRequest: NIODeadline.now()))
        func attach() { state.withLock { $0.attached += 1 } }
        func detach() { state.withLock { $0.attached -= 1 } }
        var isAttached: Bool { state.withLock { $0.attached > 0 } }
        /// A request that counts as activity arrived now.
        func touch() { state.withLock { $0.lastRequest = .now() } }
        var lastRequest: NIODeadline { state.withLock { $0.lastRequest } }
        /// Fired when the connection's input closes.
        let hangup = Hangup()
    }

    private let timeout: TimeAmount
    private let activity: Activity
    private var scheduled: Scheduled<Void>?

    init(timeout: TimeAmount, activity: Activity) {
        self.timeout = timeout
        self.activity = activity
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
        activity.hangup.fire()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .some(ChannelEvent.inputClosed) = event as? ChannelEvent { activity.hangup.fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    private func arm(context: ChannelHandlerContext, at deadline: NIODeadline? = nil) {
        scheduled?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        scheduled = context.eventLoop.scheduleTask(deadline: deadline ?? .now() + timeout) {
            let (handler, context) = loopBound.value
            handler.fire(context: context)
        }
    }

    private func fire(context: ChannelHandlerContext) {
        if activity.isAttached {
            // The client waits on a command; a slow reader only slows its own command through backpressure.
            arm(context: context)
            return
        }
        let deadline = activity.lastRequest + timeout
        if deadline > .now() {
            // A request that counts came since the timer was set: the connection is idle from then on.
            arm(context: context, at: deadline)
            return
        }
        let error = RunvoyError(.timeout, "no complete request within \(timeout.nanoseconds / 1_000_000) ms; closing")
        var buffer = context.channel.allocator.buffer(capacity: 128)
        if let payload = try? Frame.payload(Reply<NoParams>(id: nil, error: error)) {
            buffer.writeInteger(UInt32(payload.count))
            buffer.writeBytes(payload)
        }
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}
