import Glibc
import RunvoyKit

/// Appends an execution's output to its segment files, keeping the head and the tail once the output is larger
/// than the cap: the head segment takes up to half the cap, then tail segments of a quarter each rotate, so
/// stored output stays near the cap however much the command prints.
///
/// Not thread-safe by itself: it is `@unchecked Sendable` because its only owner, `OutputRecorder`, keeps it
/// inside a `Mutex` and makes every call under that lock.
final class OutputLogWriter: @unchecked Sendable {
    let directory: String
    let headLimit: Int64
    let segmentLimit: Int64
    private var fd: Int32
    private(set) var segment = 0
    private var segmentPayload: Int64 = 0
    private var fileSize = Int64(OutputLogFormat.segmentHeaderSize)
    /// Output bytes seen, stored or not.
    private(set) var totalBytes: Int64 = 0
    /// Payload bytes in each retained segment.
    private var retained: [Int: Int64] = [0: 0]
    /// Full tail segments waiting to be deleted (while a follower may still read them), oldest first.
    private var pendingDeletion: [Int] = []
    /// A follower may hold deletion back for at most this many segments; past that the oldest go anyway.
    static let maximumPending = 4

    /// Creates the directory and the head segment. `cap` is the stored-output budget in bytes.
    init(directory: String, cap: Int64) throws(SystemError) {
        self.directory = directory
        self.headLimit = max(1, cap / 2)
        self.segmentLimit = max(1, cap / 4)
        try FileSystem.makeDirectories(directory, mode: 0o700)
        fd = try Self.createSegment(directory: directory, index: 0, startOffset: 0)
    }

    /// Takes over a head segment that already exists at `directory`/head, open as `headFD`, header written.
    init(directory: String, headFD: Int32, cap: Int64) {
        self.directory = directory
        self.headLimit = max(1, cap / 2)
        self.segmentLimit = max(1, cap / 4)
        fd = headFD
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Where the next record will go: everything before it is complete on disk.
    var committed: OutputPosition {
        OutputPosition(segment: segment, fileOffset: fileSize, streamOffset: totalBytes)
    }

    /// Output bytes currently kept in segment files.
    var storedBytes: Int64 { retained.values.reduce(0, +) }

    /// Stores `bytes`, split at segment boundaries so that no segment holds more than its limit: stored output
    /// stays within the cap (head, the last full tail segment and the current one), however large one read is.
    func append(_ stream: OutputStreamKind, _ bytes: UnsafeRawBufferPointer, tUsec: Int64) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            var limit = segment == 0 ? headLimit : segmentLimit
            if segmentPayload >= limit {
                try rotate()
                limit = segmentLimit
            }
            let length = min(Int(limit - segmentPayload), bytes.count - offset)
            let piece = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
            let header = OutputLogFormat.recordHeader(stream, length: length, tUsec: tUsec)
            try PosixFile.writeAll(fd, header: header, body: piece)
            fileSize += Int64(header.count) + Int64(length)
            segmentPayload += Int64(length)
            totalBytes += Int64(length)
            retained[segment, default: 0] += Int64(length)
            offset += length
        }
    }

    /// Deletes pending segments older than `oldestInUse` (the oldest segment a follower is reading; nil when
    /// nobody follows), and the oldest ones regardless while too many wait.
    func collect(oldestInUse: Int?) {
        while let first = pendingDeletion.first,
            oldestInUse.map({ first < $0 }) ?? true || pendingDeletion.count > Self.maximumPending
        {
            pendingDeletion.removeFirst()
            unlink(directory + "/" + OutputLogFormat.segmentName(first))
            retained[first] = nil
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func rotate() throws(SystemError) {
        let next = segment + 1
        let newFD = try Self.createSegment(directory: directory, index: next, startOffset: totalBytes)
        Glibc.close(fd)
        fd = newFD
        // Keep the head, the segment just filled, and the new one.
        if segment >= 2 { pendingDeletion.append(segment - 1) }
        segment = next
        segmentPayload = 0
        fileSize = Int64(OutputLogFormat.segmentHeaderSize)
        retained[next] = 0
    }

    static func createSegment(directory: String, index: Int, startOffset: Int64) throws(SystemError) -> Int32 {
        let path = directory + "/" + OutputLogFormat.segmentName(index)
        let fd = try PosixFile.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, mode: 0o600)
        do {
            try PosixFile.writeAll(
                fd, header: OutputLogFormat.segmentHeader(startOffset: startOffset), body: .init(start: nil, count: 0))
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }
}
