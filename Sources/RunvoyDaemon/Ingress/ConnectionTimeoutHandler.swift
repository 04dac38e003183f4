import NIOCore
import RunvoyKit

/// Closes a connection that does not deliver a complete frame within the idle timeout, unless an execution
/// is attached to it (the client is then waiting on output, not idle). Sits after the frame decoder, so a
/// client trickling bytes of one frame gets no more time than one that sends nothing.
///
/// Before closing it writes one `timeout` error frame. A client that reads its output slowly is not cut off:
/// backpressure slows its own command and nothing else.
final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Shared with the connection task, which marks the connection busy while an execution streams on it.
    final class Activity: Sendable {
        private let attached = Mutex(0)
        func attach() { attached.withLock { $0 += 1 } }
        func detach() { attached.withLock { $0 -= 1 } }
        var isAttached: Bool { attached.withLock { $0 > 0 } }
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
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        arm(context: context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    private func arm(context: ChannelHandlerContext) {
        scheduled?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        scheduled = context.eventLoop.scheduleTask(in: timeout) {
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
        let error = RunvoyError(.timeout, "no complete request within \(timeout.nanoseconds / 1_000_000) ms; closing")
        var buffer = context.channel.allocator.buffer(capacity: 128)
        if let payload = try? Frame.payload(Reply<NoParams>(id: nil, error: error)) {
            buffer.writeInteger(UInt32(payload.count))
            buffer.writeBytes(payload)
        }
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}
