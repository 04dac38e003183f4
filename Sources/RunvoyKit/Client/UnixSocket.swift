import Glibc

/// A connected Unix stream socket using plain blocking system calls, for the command-line client.
public final class UnixSocket {
    public let fd: Int32
    private var closed = false

    /// Connects to `path`. Throws `ClientError` saying plainly when no daemon listens there.
    public init(connectingTo path: String) throws(ClientError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError(.io, "socket: \(SystemError.text())") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            close(fd)
            throw ClientError(
                .io, "socket path is too long (\(path.utf8.count) bytes, at most \(capacity - 1)): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc < 0 {
            let err = errno
            close(fd)
            switch err {
            case ENOENT, ECONNREFUSED:
                throw ClientError(
                    .daemonNotRunning, "runvoyd is not running at \(path) (\(SystemError.text(err)))")
            case EACCES, EPERM:
                throw ClientError(
                    .socketPermission,
                    "no permission to connect to \(path): ask an administrator for access to the runvoyd socket")
            default:
                throw ClientError(.io, "connect to \(path): \(SystemError.text(err))")
            }
        }
        self.fd = fd
    }

    deinit { if !closed { close(fd) } }

    /// Writes all of `bytes`, blocking as needed.
    public func sendAll(_ bytes: UnsafeRawBufferPointer) throws(ClientError) {
        var offset = 0
        while offset < bytes.count {
            let n = SystemCall.retrying {
                send(fd, bytes.baseAddress!.advanced(by: offset), bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EAGAIN {
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&pfd, 1, -1)
                    continue
                }
                throw ClientError(
                    .connectionLost, "lost the connection to runvoyd: \(SystemError.text())")
            }
            offset += n
        }
    }

    public func sendAll(_ bytes: [UInt8]) throws(ClientError) {
        let failure = bytes.withUnsafeBytes { raw -> ClientError? in
            do {
                try sendAll(raw)
                return nil
            } catch {
                return error as? ClientError ?? ClientError(.io, "\(error)")
            }
        }
        if let failure { throw failure }
    }

    /// Reads whatever is available into `reader`; returns 0 at end of stream.
    public func receive(into reader: FrameReader) throws(ClientError) -> Int {
        let n = SystemCall.retrying { reader.fill { buffer in recv(fd, buffer.baseAddress, buffer.count, 0) } }
        if n >= 0 { return n }
        if errno == EAGAIN { return -1 }
        throw ClientError(.connectionLost, "lost the connection to runvoyd: \(SystemError.text())")
    }

    /// Shuts down the writing half, telling the daemon nothing more is coming.
    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}
