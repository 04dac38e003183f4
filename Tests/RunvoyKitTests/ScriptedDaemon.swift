import Glibc
import RunvoyKit
import Testing

/// A listening Unix socket in a fresh temporary folder that plays runvoyd's part by hand: a test accepts the
/// client's connection and writes whatever bytes (well-formed or not) it wants the client to meet.
final class ScriptedDaemon {
    let path: String
    let listener: Int32

    init() throws {
        var template = Array("/tmp/runvoy-scripted-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        path = directory + "/sock"
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0 && listen(listener, 4) == 0)
    }

    deinit {
        close(listener)
        unlink(path)
        rmdir(String(path.dropLast(5)))
    }

    /// The server end of the connection a client has made.
    func accept() throws -> Int32 {
        let fd = Glibc.accept(listener, nil, nil)
        try #require(fd >= 0)
        return fd
    }

    /// Writes all of `bytes` to `fd`.
    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        #expect(written == bytes.count)
    }

    /// A frame of `payload` as written (its header claims `length`, the payload's own by default).
    static func frame(_ payload: String, length: Int? = nil) -> [UInt8] {
        Frame.header(length: length ?? payload.utf8.count) + Array(payload.utf8)
    }

    /// Reads from `fd` until the end of the stream; the number of bytes read.
    static func drain(_ fd: Int32) -> Int {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return total }
            total += n
        }
    }
}
