import Foundation
import Glibc
import RunvoyKit

/// A raw client socket for sending arbitrary bytes to the daemon and reading what comes back.
final class RawConnection {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw HarnessError("connect: \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The daemon's side of a connection a `ScriptedDaemon` accepted.
    init(accepted fd: Int32) {
        self.fd = fd
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    private var isClosed = false

    deinit { closeNow() }

    /// Closes the socket now, as a client that vanishes would.
    func closeNow() {
        guard !isClosed else { return }
        isClosed = true
        close(fd)
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw HarnessError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Sends one frame holding `json`.
    func sendFrame(_ json: String) throws {
        let payload = Array(json.utf8)
        try send(Frame.header(length: payload.count) + payload)
    }

    /// Reads one frame and returns its JSON object; nil at end of stream.
    func readFrame() throws -> [String: Any]? {
        guard let header = try readExactly(4) else { return nil }
        let length = Int(header.withUnsafeBytes { Frame.length(from: $0) })
        guard let payload = try readExactly(length) else { throw HarnessError("stream ended inside a frame") }
        return try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
    }

    /// Reads one frame as it is: whether the binary flag is set, and the payload bytes.
    func readRawFrame() throws -> (binary: Bool, payload: [UInt8])? {
        guard let header = try readExactly(4) else { return nil }
        let value = header.withUnsafeBytes { Frame.length(from: $0) }
        let binary = value & BinaryOutputFrame.flag != 0
        guard let payload = try readExactly(Int(value & ~BinaryOutputFrame.flag)) else {
            throw HarnessError("stream ended inside a frame")
        }
        return (binary, payload)
    }

    /// Reads frames until one carries `id`, collecting the events before it.
    func readReply(id: Int) throws -> [String: Any]? {
        while let frame = try readFrame() {
            if frame["id"] as? Int == id && frame["event"] == nil { return frame }
        }
        return nil
    }

    /// Whether the daemon closed the connection (reads EOF within the receive timeout).
    func readsEOF() -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// Reads until the other end closes (or the receive timeout passes), and returns everything read.
    func readToEnd() -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return all }
            all += buffer[..<n]
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, count - offset, 0) }
            if n == 0 { return offset == 0 ? nil : nil }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("recv: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return buffer
    }
}
