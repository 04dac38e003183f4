import Glibc

/// A failed system call, with the errno it set.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(Self.text(errno: errno))" }

    /// What `strerror` says of `errno`.
    public static func text(errno: Int32) -> String { String(cString: strerror(errno)) }
}

/// Calls `body` until it does not fail with EINTR; throws `SystemError` on any other failure.
@discardableResult
public func retryingOnInterrupt<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno == EINTR { continue }
        throw SystemError(call)
    }
}
