import Glibc
import RunvoyKit

/// Thin wrappers over the file system calls stored output needs; they retry on EINTR and throw with errno.
enum PosixFile {
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> Int32 {
        try retryingOnInterrupt("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// Writes every byte of `parts` in one `writev` where possible, continuing after short writes.
    static func writeAll(_ fd: Int32, _ parts: [UnsafeRawBufferPointer]) throws(SystemError) {
        var remaining = parts.filter { $0.count > 0 }
        while !remaining.isEmpty {
            var vectors = remaining.map {
                iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
            }
            let written = try retryingOnInterrupt("writev") { writev(fd, &vectors, Int32(vectors.count)) }
            var left = written
            while left > 0, let first = remaining.first {
                if left >= first.count {
                    left -= first.count
                    remaining.removeFirst()
                } else {
                    remaining[0] = UnsafeRawBufferPointer(rebasing: first[left...])
                    left = 0
                }
            }
        }
    }

    /// Writes `header` then `body` with as few calls as possible.
    static func writeAll(_ fd: Int32, header: [UInt8], body: UnsafeRawBufferPointer) throws(SystemError) {
        let result = header.withUnsafeBytes { headerBytes -> Result<Void, SystemError> in
            do throws(SystemError) {
                try writeAll(fd, [headerBytes, body])
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    static func read(_ fd: Int32, at offset: Int64, count: Int) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = buffer.withUnsafeMutableBytes { bytes in
                SystemCall.retrying {
                    pread(fd, bytes.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled))
                }
            }
            if n < 0 { throw SystemError("pread") }
            if n == 0 { break }
            filled += n
        }
        buffer.removeLast(count - filled)
        return buffer
    }

    static func size(_ fd: Int32) throws(SystemError) -> Int64 {
        var info = stat()
        try retryingOnInterrupt("fstat") { fstat(fd, &info) }
        return Int64(info.st_size)
    }
}
