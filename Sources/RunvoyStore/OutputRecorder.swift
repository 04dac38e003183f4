import Glibc
import RunvoyKit

/// Stores a running execution's output as it streams and lets any number of followers read it live.
///
/// Followers read the segment files, never an in-memory queue, so a slow follower costs disk reads, not daemon
/// memory, and never slows the command. Every follower sees the stored stream from its start: the backlog and
/// then live output, with no gap and no duplicate, because both come from the same files, read up to the
/// position the writer has completed.
public final class OutputRecorder: Sendable {
    /// What has been recorded so far.
    public struct Totals: Sendable, Equatable {
        public var stdoutBytes: Int64
        public var stderrBytes: Int64
        /// Recorded input (executors with `record_input`): stored in the same files, within the same cap.
        public var stdinBytes: Int64
        public var storedBytes: Int64
        public var droppedBytes: Int64
        /// Why storing stopped early (the disk filled up, say); live output went on regardless.
        public var failure: String?

        public init(
            stdoutBytes: Int64 = 0, stderrBytes: Int64 = 0, storedBytes: Int64 = 0, droppedBytes: Int64 = 0,
            failure: String? = nil, stdinBytes: Int64 = 0
        ) {
            self.stdoutBytes = stdoutBytes
            self.stderrBytes = stderrBytes
            self.stdinBytes = stdinBytes
            self.storedBytes = storedBytes
            self.droppedBytes = droppedBytes
            self.failure = failure
        }
    }

    private struct State: ~Copyable {
        /// Created with the first chunk: creating files is slow on some file systems, and most short commands
        /// print little or nothing, so an execution without output costs no file at all.
        var writer: OutputLogWriter?
        var failure: String?
        var stdoutBytes: Int64 = 0
        var stderrBytes: Int64 = 0
        var stdinBytes: Int64 = 0
        var committed = OutputPosition.start
        var finished = false
        /// Follower id → the segment it is reading, which must not be deleted under it.
        var followers: [Int: Int] = [:]
        var nextFollower = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]

        var oldestInUse: Int? { followers.values.min() }

        mutating func collect() { writer?.collect(oldestInUse: oldestInUse) }
    }

    public let reader: OutputLogReader
    private let cap: Int64
    private let spares: OutputSpares?
    private let state: Mutex<State>
    private let started: ContinuousClock.Instant

    /// A recorder for output stored in `directory` (created with the first chunk, from `spares` when one is
    /// ready). `cap` is the stored-output budget in bytes.
    public init(directory: String, cap: Int64, spares: OutputSpares? = nil) {
        self.reader = OutputLogReader(directory: directory)
        self.cap = cap
        self.spares = spares
        self.state = Mutex(State())
        self.started = .now
    }

    /// Records one chunk (output, or recorded input: the same files, the same cap). A write failure stops storing (see `Totals.failure`) but never throws: the command and
    /// its live stream go on.
    public func append(_ stream: OutputStreamKind, _ bytes: UnsafeRawBufferPointer) {
        let elapsed = ContinuousClock.now - started
        let tUsec = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            switch stream {
            case .stdout: state.stdoutBytes += Int64(bytes.count)
            case .stderr: state.stderrBytes += Int64(bytes.count)
            case .stdin: state.stdinBytes += Int64(bytes.count)
            }
            guard state.failure == nil, !state.finished else { return [] }
            do {
                if state.writer == nil { state.writer = try makeWriter() }
                let writer = state.writer!
                try writer.append(stream, bytes, tUsec: tUsec)
                state.committed = writer.committed
                state.collect()
            } catch {
                state.failure = "cannot store output in \(reader.directory): \(error)"
                state.writer?.close()
            }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    private func makeWriter() throws(SystemError) -> OutputLogWriter {
        if let spare = spares?.take() {
            if rename(spare.path, reader.directory) == 0 {
                return OutputLogWriter(directory: reader.directory, headFD: spare.headFD, cap: cap)
            }
            close(spare.headFD)
            FileSystem.removeTree(spare.path)
        }
        return try OutputLogWriter(directory: reader.directory, cap: cap)
    }

    /// Closes the files once the command's output has ended and wakes every follower.
    public func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            state.writer?.close()
            state.collect()
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    public var totals: Totals {
        state.withLock { state in
            let stored = state.writer?.storedBytes ?? 0
            return Totals(
                stdoutBytes: state.stdoutBytes, stderrBytes: state.stderrBytes, storedBytes: stored,
                droppedBytes: state.stdoutBytes + state.stderrBytes + state.stdinBytes - stored, failure: state.failure,
                stdinBytes: state.stdinBytes)
        }
    }

    /// A new follower, reading from the start of the stored output.
    public func follow() -> OutputFollower {
        let id = state.withLock { state -> Int in
            defer { state.nextFollower += 1 }
            state.followers[state.nextFollower] = 0
            return state.nextFollower
        }
        return OutputFollower(recorder: self, id: id)
    }

    /// Where the stored output ends now: everything before it is complete on disk.
    public var committed: OutputPosition { state.withLock { $0.committed } }

    var snapshot: (committed: OutputPosition, finished: Bool) {
        state.withLock { ($0.committed, $0.finished) }
    }

    func moved(_ id: Int, to segment: Int) {
        state.withLock { state in
            guard state.followers[id] != nil, state.followers[id] != segment else { return }
            state.followers[id] = segment
            state.collect()
        }
    }

    func leave(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.followers[id] = nil
            state.collect()
            return state.waiters.removeValue(forKey: id)
        }
        waiter?.resume()
    }

    /// Suspends until something past `position` is committed, the recording ends, or the task is cancelled.
    func wait(_ id: Int, beyond position: OutputPosition) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.finished || state.committed != position || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

/// One reader of a live recording. Use it from one task; `close()` it when done.
public final class OutputFollower {
    let recorder: OutputRecorder
    let id: Int
    public private(set) var position = OutputPosition.start
    private var closed = false

    init(recorder: OutputRecorder, id: Int) {
        self.recorder = recorder
        self.id = id
    }

    deinit { close() }

    /// The next entries, waiting for live output when all stored output has been read; nil once the
    /// recording has ended and everything has been read.
    public func next(maxBytes: Int = 1 << 20) async throws(StoreError) -> [OutputEntry]? {
        while !closed {
            let (committed, finished) = recorder.snapshot
            let (entries, next) = try recorder.reader.read(from: position, upTo: committed, maxBytes: maxBytes)
            if entries.isEmpty && next == position && position != committed {
                throw StoreError(
                    .corrupt, "stored output in \(recorder.reader.directory) cannot be read past \(position)")
            }
            position = next
            recorder.moved(id, to: next.segment)
            if !entries.isEmpty { return entries }
            if finished { return nil }
            if Task.isCancelled { return nil }
            await recorder.wait(id, beyond: position)
        }
        return nil
    }

    public func close() {
        guard !closed else { return }
        closed = true
        recorder.leave(id)
    }
}
