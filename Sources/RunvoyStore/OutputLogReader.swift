import Glibc
import RunvoyKit

/// Reads an execution's stored output in order, from any position, up to a limit or to the last complete record.
public struct OutputLogReader: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// Whether any stored output exists for this execution.
    public var exists: Bool { access(directory + "/head", F_OK) == 0 }

    /// Reads entries from `position` up to `limit` (exclusive; nil reads to the last complete record), stopping
    /// after about `maxBytes` of output. Returns the entries and the position after them.
    public func read(
        from position: OutputPosition, upTo limit: OutputPosition? = nil, maxBytes: Int = 1 << 20
    ) throws(StoreError) -> (entries: [OutputEntry], next: OutputPosition) {
        var position = position
        var entries: [OutputEntry] = []
        var payload = 0
        var segmentFD: Int32 = -1
        var segmentSize: Int64 = 0
        defer { if segmentFD >= 0 { close(segmentFD) } }

        func open(_ segment: Int) throws(StoreError) -> Bool {
            if segmentFD >= 0 { close(segmentFD) }
            segmentFD = Glibc.open(directory + "/" + OutputLogFormat.segmentName(segment), O_RDONLY | O_CLOEXEC)
            guard segmentFD >= 0 else {
                if errno == ENOENT { return false }
                throw StoreError(
                    .output, "cannot open stored output in \(directory): \(SystemError.text())")
            }
            do {
                segmentSize = try PosixFile.size(segmentFD)
                let header = try PosixFile.read(segmentFD, at: 0, count: OutputLogFormat.segmentHeaderSize)
                guard Array(header.prefix(8)) == Array(OutputLogFormat.magic.prefix(header.count)) else {
                    throw StoreError(.corrupt, "stored output in \(directory) has a bad segment header")
                }
                // A segment whose header was cut short by a crash right after it was created holds nothing.
                let complete = header.count == OutputLogFormat.segmentHeaderSize
                if !complete { segmentSize = 0 }
                let start =
                    complete ? OutputLogFormat.readBigEndian(Int64.self, header[8..<16]) : position.streamOffset
                if segment != position.segment {
                    if start > position.streamOffset { entries.append(.dropped(start - position.streamOffset)) }
                    position = OutputPosition(
                        segment: segment, fileOffset: Int64(OutputLogFormat.segmentHeaderSize), streamOffset: start)
                }
            } catch {
                throw storeError(error)
            }
            return true
        }

        func nextSegment(after segment: Int) -> Int? {
            FileSystem.entries(directory).compactMap(OutputLogFormat.segmentIndex).filter { $0 > segment }.min()
        }

        // Moves to the next existing segment; false when there is none.
        func advance() throws(StoreError) -> Bool {
            guard let next = nextSegment(after: position.segment) else { return false }
            return try open(next)
        }

        if let limit, position >= limit { return ([], position) }
        var opened = try open(position.segment)
        if !opened && position.segment > 0 { opened = try advance() }
        // No head: the execution printed nothing (the folder is created with the first chunk).
        guard opened else { return ([], position) }

        while payload < maxBytes {
            if let limit, position >= limit { break }
            let end =
                limit.map { $0.segment == position.segment ? min($0.fileOffset, segmentSize) : segmentSize }
                ?? segmentSize
            if position.fileOffset + Int64(OutputLogFormat.recordHeaderSize) > end {
                // End of this segment's complete records: go on only if the writer has moved past it.
                let moveOn = limit.map { $0.segment > position.segment } ?? true
                if moveOn, try advance() { continue }
                break
            }
            let header: [UInt8]
            let body: [UInt8]
            do {
                header = try PosixFile.read(segmentFD, at: position.fileOffset, count: OutputLogFormat.recordHeaderSize)
                let kind = header[0]
                let length = Int(OutputLogFormat.readBigEndian(UInt32.self, header[1..<5]))
                guard kind == 1 || kind == 2, length <= OutputLogFormat.maximumRecordLength else {
                    throw StoreError(
                        .corrupt, "stored output in \(directory) has a bad record at \(position.fileOffset)")
                }
                if position.fileOffset + Int64(OutputLogFormat.recordHeaderSize + length) > end {
                    // A record cut short by a crash: nothing complete follows it in this segment.
                    let moveOn = limit.map { $0.segment > position.segment } ?? true
                    if moveOn, try advance() { continue }
                    break
                }
                body = try PosixFile.read(
                    segmentFD, at: position.fileOffset + Int64(OutputLogFormat.recordHeaderSize), count: length)
            } catch {
                throw storeError(error)
            }
            let tUsec = OutputLogFormat.readBigEndian(Int64.self, header[5..<13])
            entries.append(.chunk(header[0] == 1 ? .stdout : .stderr, body, tUsec: tUsec))
            payload += body.count
            position.fileOffset += Int64(OutputLogFormat.recordHeaderSize + body.count)
            position.streamOffset += Int64(body.count)
        }
        return (entries, position)
    }

    private func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        return StoreError(.output, "cannot read stored output in \(directory): \(error)")
    }

    /// Reads everything stored, in order.
    public func readAll() throws(StoreError) -> [OutputEntry] {
        var all: [OutputEntry] = []
        var position = OutputPosition.start
        while true {
            let (entries, next) = try read(from: position)
            all += entries
            if next == position { return all }
            position = next
        }
    }

    /// Output bytes per stream and stored bytes, counted from the files (after a crash).
    public func totals() throws(StoreError) -> (stdout: Int64, stderr: Int64, stored: Int64, dropped: Int64) {
        var result: (stdout: Int64, stderr: Int64, stored: Int64, dropped: Int64) = (0, 0, 0, 0)
        for entry in try readAll() {
            switch entry {
            case .chunk(.stdout, let bytes, _):
                result.stdout += Int64(bytes.count)
                result.stored += Int64(bytes.count)
            case .chunk(.stderr, let bytes, _):
                result.stderr += Int64(bytes.count)
                result.stored += Int64(bytes.count)
            case .dropped(let count): result.dropped += count
            }
        }
        return result
    }
}
