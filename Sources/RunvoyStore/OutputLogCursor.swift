import Glibc
import RunvoyKit

/// Walks an execution's output segments record by record for `OutputLogReader.read`: it holds the open segment,
/// the position reached and the entries read so far, and closes the segment when it goes away.
struct OutputLogCursor: ~Copyable {
    let directory: String
    let limit: OutputPosition?
    private(set) var position: OutputPosition
    private(set) var entries: [OutputEntry] = []
    /// Output bytes read so far.
    private(set) var payload = 0
    private var segmentFD: Int32 = -1
    private var segmentSize: Int64 = 0

    init(directory: String, position: OutputPosition, limit: OutputPosition?) {
        self.directory = directory
        self.position = position
        self.limit = limit
    }

    deinit { if segmentFD >= 0 { close(segmentFD) } }

    /// Opens the segment of the starting position, or the next one when it was removed; false when there is none.
    mutating func openFirst() throws(StoreError) -> Bool {
        if try open(position.segment) { return true }
        return position.segment > 0 ? try advance() : false
    }

    /// Reads the next record, or moves to the next segment when this one's complete records are read and the writer
    /// has moved past it. False at the limit or at the last complete record.
    mutating func step() throws(StoreError) -> Bool {
        if let limit, position >= limit { return false }
        let end =
            limit.map { $0.segment == position.segment ? min($0.fileOffset, segmentSize) : segmentSize } ?? segmentSize
        if position.fileOffset + Int64(OutputLogFormat.recordHeaderSize) > end { return try moveOn() }
        let header = try read(at: position.fileOffset, count: OutputLogFormat.recordHeaderSize)
        let kind = OutputLogFormat.stream(header[0])
        let length = Int(OutputLogFormat.readBigEndian(UInt32.self, header[1..<5]))
        guard let kind, length <= OutputLogFormat.maximumRecordLength else {
            throw StoreError(.corrupt, "stored output in \(directory) has a bad record at \(position.fileOffset)")
        }
        // A record cut short by a crash: nothing complete follows it in this segment.
        if position.fileOffset + Int64(OutputLogFormat.recordHeaderSize + length) > end { return try moveOn() }
        let body = try read(at: position.fileOffset + Int64(OutputLogFormat.recordHeaderSize), count: length)
        // A segment that starts within a record's length of 2^63 is no writer's (see `open`).
        let (streamOffset, overflow) = position.streamOffset.addingReportingOverflow(Int64(body.count))
        if overflow { throw badStart() }
        let tUsec = OutputLogFormat.readBigEndian(Int64.self, header[5..<13])
        entries.append(.chunk(kind, body, tUsec: tUsec))
        payload += body.count
        position.fileOffset += Int64(OutputLogFormat.recordHeaderSize + body.count)
        position.streamOffset = streamOffset
        return true
    }

    /// At the end of a segment's complete records: goes on only if the writer has moved past this segment.
    private mutating func moveOn() throws(StoreError) -> Bool {
        let writerMovedOn = limit.map { $0.segment > position.segment } ?? true
        return writerMovedOn ? try advance() : false
    }

    /// Moves to the next existing segment; false when there is none.
    private mutating func advance() throws(StoreError) -> Bool {
        let later = FileSystem.entries(directory).compactMap(OutputLogFormat.segmentIndex).filter {
            $0 > position.segment
        }
        guard let next = later.min() else { return false }
        return try open(next)
    }

    /// Opens `segment` and checks its header; false when it does not exist. Moving to a later segment records
    /// the bytes dropped between the two.
    private mutating func open(_ segment: Int) throws(StoreError) -> Bool {
        if segmentFD >= 0 { close(segmentFD) }
        segmentFD = Glibc.open(directory + "/" + OutputLogFormat.segmentName(segment), O_RDONLY | O_CLOEXEC)
        guard segmentFD >= 0 else {
            if errno == ENOENT { return false }
            throw StoreError(.output, "cannot open stored output in \(directory): \(SystemError.text())")
        }
        do throws(SystemError) {
            segmentSize = try PosixFile.size(segmentFD)
        } catch {
            throw readFailure(error)
        }
        let header = try read(at: 0, count: OutputLogFormat.segmentHeaderSize)
        guard Array(header.prefix(8)) == Array(OutputLogFormat.magic.prefix(header.count)) else {
            throw StoreError(.corrupt, "stored output in \(directory) has a bad segment header")
        }
        // A segment whose header was cut short by a crash right after it was created holds nothing.
        let complete = header.count == OutputLogFormat.segmentHeaderSize
        if !complete { segmentSize = 0 }
        let start = complete ? OutputLogFormat.readBigEndian(Int64.self, header[8..<16]) : position.streamOffset
        if segment != position.segment {
            // The writer starts a segment where the output stored before it ends, or later when the cap deleted
            // the segments between; one that starts before is corrupt, and would move the stream back.
            guard start >= position.streamOffset else { throw badStart() }
            if start > position.streamOffset { entries.append(.dropped(start - position.streamOffset)) }
            position = OutputPosition(
                segment: segment, fileOffset: Int64(OutputLogFormat.segmentHeaderSize), streamOffset: start)
        }
        return true
    }

    private func badStart() -> StoreError {
        StoreError(
            .corrupt, "stored output in \(directory) has a segment whose start does not follow the output before it")
    }

    private func read(at offset: Int64, count: Int) throws(StoreError) -> [UInt8] {
        do throws(SystemError) {
            return try PosixFile.read(segmentFD, at: offset, count: count)
        } catch {
            throw readFailure(error)
        }
    }

    private func readFailure(_ error: SystemError) -> StoreError {
        StoreError(.output, "cannot read stored output in \(directory): \(error)")
    }
}
