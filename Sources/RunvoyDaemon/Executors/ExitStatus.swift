/// How a process ended.
enum ExitStatus: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
}
