import Logging
import NIOCore
import RunvoyKit

/// Serves one client connection: reads request frames, has `Router` answer each, and streams executions started
/// on it.
struct Connection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let caller: Caller
    let activity: ConnectionTimeoutHandler.Activity
    let context: ServerContext
    var router = Router(table: .standard)

    func run() async {
        do {
            try await channel.executeThenClose { inbound, outbound in
                try await serve(
                    inbound,
                    ConnectionSink(
                        outbound: outbound, allocator: channel.channel.allocator, requestID: nil,
                        channel: channel.channel))
            }
        } catch {
            context.logger.debug("connection ended", metadata: ["error": "\(error)", "uid": "\(caller.uid)"])
        }
    }

    private func serve(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, _ sink: ConnectionSink) async throws {
        let logger = context.logger
        var attached: Execution?
        let streams = StreamTasks()
        // `attach` streams: they end with the client's input, half-closed or not.
        let watches = StreamTasks()
        var peerGone = false
        defer {
            // `logs` streams end with the connection unless it was only half-closed (awaited below).
            streams.cancelAll()
            watches.cancelAll()
        }
        do {
            for try await frame in inbound {
                switch try await router.respond(to: frame, on: self, sink: sink, attached: attached) {
                case .none: break
                case .stream(let body): streams.start(body)
                case .watch(let body): watches.start(body)
                case .attach(let execution): attached = execution
                }
            }
        } catch let error as FrameDecoder.FrameTooLarge {
            try? await sink.send(Reply<NoParams>(id: nil, error: error.wireError))
            logger.warning(
                "closing connection: oversized frame",
                metadata: ["uid": "\(caller.uid)", "pid": "\(caller.pid)", "length": "\(error.length)"])
            attached?.clientGone()
            return
        } catch let error as FrameDecoder.PendingBudgetExceeded {
            try? await sink.send(Reply<NoParams>(id: nil, error: error.wireError))
            logger.warning(
                "closing connection: its user's unfinished requests are over their budget",
                metadata: ["uid": "\(caller.uid)", "pid": "\(caller.pid)", "limit": "\(error.limit)"])
            attached?.clientGone()
            return
        } catch is FrameDecoder.TruncatedFrame {
            logger.debug("connection closed in the middle of a frame", metadata: ["uid": "\(caller.uid)"])
            peerGone = true
        } catch {
            logger.debug("connection failed", metadata: ["uid": "\(caller.uid)", "error": "\(error)"])
            peerGone = true
        }
        watches.cancelAll()
        await endOfInput(attached: attached, streams: streams, peerGone: peerGone)
    }

    /// A client that only half-closed still gets the rest of its execution's output and of its streams; one that
    /// is gone gets nothing more, and its command is killed only if it asked for that.
    private func endOfInput(attached: Execution?, streams: StreamTasks, peerGone: Bool) async {
        if let execution = attached, !execution.isFinished {
            if execution.killOnDisconnect || peerGone { execution.clientGone() }
            if !peerGone {
                // Half-closed: no more input can come, so the command reads EOF after what was sent.
                await execution.closeStdin()
                await execution.waitFinished()
            }
        }
        if !peerGone {
            await streams.waitAll()
        }
    }
}
