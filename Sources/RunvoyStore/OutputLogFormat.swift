import RunvoyKit

/// The on-disk layout of stored output.
///
/// Each execution's output lives in its own directory as segment files: `head`, then `tail.000001`,
/// `tail.000002`, … once the head is full. A segment starts with a 16-byte header (the magic `RVYOUT01` and the
/// big-endian count of output bytes that came before the segment), then records:
///
/// ```
/// kind u8 (1 stdout, 2 stderr, 3 recorded input) | length u32 BE | t_usec u64 BE | length bytes
/// ```
///
/// A record is written with one `writev`, and a reader stops at the first incomplete record, so a crash in the
/// middle of a write loses at most that chunk and never makes earlier output unreadable.
public enum OutputLogFormat {
    static let magic = Array("RVYOUT01".utf8)
    static let segmentHeaderSize = 16
    static let recordHeaderSize = 13
    /// Larger records are taken as corruption (chunks are at most a few hundred KiB).
    static let maximumRecordLength = 16 << 20

    static func segmentName(_ index: Int) -> String {
        if index == 0 { return "head" }
        let digits = String(index)
        return "tail." + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    static func segmentIndex(_ name: String) -> Int? {
        if name == "head" { return 0 }
        guard name.hasPrefix("tail."), let index = Int(name.dropFirst(5)), index > 0 else { return nil }
        return index
    }

    static func segmentHeader(startOffset: Int64) -> [UInt8] {
        magic + bigEndian(UInt64(startOffset))
    }

    static func recordHeader(_ stream: OutputStreamKind, length: Int, tUsec: Int64) -> [UInt8] {
        [kind(stream)] + bigEndian(UInt32(length)) + bigEndian(UInt64(max(0, tUsec)))
    }

    /// A record's kind byte for `stream`, and back (nil: not a kind a writer writes).
    static func kind(_ stream: OutputStreamKind) -> UInt8 {
        switch stream {
        case .stdout: 1
        case .stderr: 2
        case .stdin: 3
        }
    }

    static func stream(_ kind: UInt8) -> OutputStreamKind? {
        switch kind {
        case 1: .stdout
        case 2: .stderr
        case 3: .stdin
        default: nil
        }
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    static func readBigEndian<T: FixedWidthInteger>(_ type: T.Type, _ bytes: ArraySlice<UInt8>) -> T {
        bytes.reduce(T.zero) { $0 << 8 | T($1) }
    }
}

/// A place in an execution's stored output.
public struct OutputPosition: Hashable, Sendable, Comparable {
    /// 0 for the head segment, k for `tail.k`.
    public var segment: Int
    /// Byte offset inside the segment file.
    public var fileOffset: Int64
    /// Output bytes before this place, counting bytes the cap dropped.
    public var streamOffset: Int64

    public static let start = OutputPosition(
        segment: 0, fileOffset: Int64(OutputLogFormat.segmentHeaderSize), streamOffset: 0)

    public static func < (lhs: OutputPosition, rhs: OutputPosition) -> Bool {
        (lhs.segment, lhs.fileOffset) < (rhs.segment, rhs.fileOffset)
    }
}

/// One item of stored output, in order.
public enum OutputEntry: Equatable, Sendable {
    /// A chunk the command wrote, `tUsec` microseconds after it started.
    case chunk(OutputStreamKind, [UInt8], tUsec: Int64)
    /// Bytes the per-execution cap left out at this point.
    case dropped(Int64)
}
