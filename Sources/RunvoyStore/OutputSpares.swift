import Foundation
import Glibc
import RunvoyKit

/// A few output folders made ahead of time, each with its head segment already created and open.
///
/// Creating a directory or a file can cost half a millisecond on some disks (measured on the machines this
/// project is built on), while renaming one costs tens of microseconds. An execution's first chunk of output
/// therefore takes a spare and renames it into place, and the pool is refilled in the background.
public final class OutputSpares: Sendable {
    /// A prepared folder: its path and the open head segment.
    struct Spare: Sendable {
        var path: String
        var headFD: Int32
    }

    private struct State {
        var ready: [Spare] = []
        var refilling = false
        var closed = false
    }

    private let root: String
    private let target: Int
    private let state = Mutex(State())

    /// Keeps up to `count` spares under `root` (as `.spare-*` folders).
    public init(root: String, count: Int = 4) {
        self.root = root
        self.target = count
    }

    /// A spare, if one is ready; starts a refill either way.
    func take() -> Spare? {
        let spare = state.withLock { $0.ready.popLast() }
        refill()
        return spare
    }

    /// Fills the pool in the background (at start, and after each `take`).
    public func refill() {
        let start = state.withLock { state -> Bool in
            guard !state.refilling, !state.closed, state.ready.count < target else { return false }
            state.refilling = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in
            while true {
                let more = state.withLock { !$0.closed && $0.ready.count < target }
                guard more, let spare = make() else { break }
                let kept = state.withLock { state -> Bool in
                    guard !state.closed else { return false }
                    state.ready.append(spare)
                    return true
                }
                if !kept { discard(spare) }
            }
            state.withLock { $0.refilling = false }
        }
        thread.start()
    }

    /// Removes the spares (at shutdown).
    public func close() {
        let spares = state.withLock { state -> [Spare] in
            state.closed = true
            defer { state.ready = [] }
            return state.ready
        }
        for spare in spares { discard(spare) }
    }

    private func make() -> Spare? {
        var random = SystemRandomNumberGenerator()
        let path = root + "/.spare-" + String(random.next() as UInt64, radix: 36)
        guard mkdir(path, 0o700) == 0 else { return nil }
        do {
            let fd = try OutputLogWriter.createSegment(directory: path, index: 0, startOffset: 0)
            return Spare(path: path, headFD: fd)
        } catch {
            rmdir(path)
            return nil
        }
    }

    private func discard(_ spare: Spare) {
        Glibc.close(spare.headFD)
        FileSystem.removeTree(spare.path)
    }
}
