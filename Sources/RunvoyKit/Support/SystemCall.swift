import Glibc

/// A failed system call, with the errno it set.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    /// The call and what it was called on, for example `open /var/lib/runvoy/state.db`.
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(Self.text(errno))" }

    /// What an errno value means, for a person (`strerror`). The one place runvoy turns errno into text.
    public static func text(_ code: Int32 = Glibc.errno) -> String { String(cString: strerror(code)) }
}

/// System calls that may be interrupted by a signal (EINTR) are made through these helpers, so no caller writes its
/// own retry loop (as SwiftNIO's `syscall(blocking:where:_:)`).
public enum SystemCall {
    /// Calls `body` again while it fails with EINTR and returns its last result; on any other failure (a negative
    /// result) `errno` is left as the call set it, for callers that handle some errors (EAGAIN, ENOENT) themselves.
    @inlinable
    public static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}

/// Calls `body` until it does not fail with EINTR; throws `SystemError` named `call` on any other failure.
@discardableResult
public func retryingOnInterrupt<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T {
    let result = SystemCall.retrying(body)
    if result >= 0 { return result }
    throw SystemError(call)
}
