import CRunvoyPosix
import Foundation
import Glibc
import RunvoyKit

/// Waits for child processes through their pidfds on one dedicated thread, so no async task blocks in `waitid`
/// and no other code's children are reaped by accident.
final class Reaper: Sendable {
    static let shared = Reaper()

    private struct State: ~Copyable {
        var waiters: [Int32: CheckedContinuation<ExitStatus, Never>] = [:]
        var started = false
    }

    private let state = Mutex(State())
    /// An eventfd the registering side writes to, so the poll loop picks up new pidfds.
    private let wakeFD: Int32

    private init() {
        wakeFD = runvoy_eventfd()
        precondition(wakeFD >= 0, "eventfd failed: \(SystemError.text(errno))")
    }

    /// Suspends until the process behind `pidfd` exits, and leaves it a zombie: the caller reaps it (with
    /// `runvoy_pidfd_wait`) when it is done signalling the process group, and keeps ownership of `pidfd`.
    func wait(pidfd: Int32) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.waiters[pidfd] = continuation
                defer { state.started = true }
                return !state.started
            }
            if start {
                let thread = Thread { [self] in self.loop() }
                thread.name = "runvoyd-reaper"
                thread.start()
            }
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    private func loop() {
        // One buffer for the life of the thread, grown when needed: this loop runs twice per execution. A Swift
        // array here (emptied with `removeAll(keepingCapacity:)`, then filled under the lock) left one 70-byte
        // buffer behind per pass in release builds, never freed: about 140 bytes per execution (heaptrack).
        var capacity = 64
        var pollfds = UnsafeMutablePointer<pollfd>.allocate(capacity: capacity)
        while true {
            var count = 1
            pollfds[0] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            let waiting = state.withLock { state in Array(state.waiters.keys) }
            if waiting.count + 1 > capacity {
                pollfds.deallocate()
                capacity = max(capacity * 2, waiting.count + 1)
                pollfds = UnsafeMutablePointer<pollfd>.allocate(capacity: capacity)
                pollfds[0] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            }
            for fd in waiting {
                pollfds[count] = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                count += 1
            }
            // A failed poll (interrupted, or out of memory for a moment) is tried again.
            let polled = pollfds
            guard (try? retryingOnInterrupt("poll") { poll(polled, nfds_t(count), -1) }) != nil else {
                continue
            }
            if pollfds[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
            for entry in UnsafeBufferPointer(start: pollfds + 1, count: count - 1) where entry.revents != 0 {
                var exited: Int32 = 0
                var status: Int32 = 0
                let outcome: ExitStatus
                // The exit is seen but the process is left a zombie: its owner reaps it once nothing can signal
                // its process group any more (see `Execution.run`), so the pid cannot be reused before that.
                if runvoy_pidfd_wait_keeping(entry.fd, &exited, &status) == 0 {
                    outcome = exited != 0 ? .exited(status) : .signaled(status)
                } else {
                    // Already reaped or not our child: report it as lost rather than hang its execution.
                    outcome = .signaled(SIGKILL)
                }
                let continuation = state.withLock { $0.waiters.removeValue(forKey: entry.fd) }
                continuation?.resume(returning: outcome)
            }
        }
    }
}
