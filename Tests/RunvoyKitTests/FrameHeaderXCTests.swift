import RunvoyKit
import XCTest

/// Frame headers, checked with XCTest as well, so both test runners report on every CI run.
final class FrameHeaderXCTests: XCTestCase {
    func testHeaderRoundTripsEveryLengthBoundary() {
        for length in [0, 1, 255, 256, 65_535, 65_536, 1 << 20, Int(Int32.max)] {
            let header = Frame.header(length: length)
            XCTAssertEqual(header.count, 4)
            XCTAssertEqual(header.withUnsafeBytes { Int(Frame.length(from: $0)) }, length)
        }
    }

    func testBinaryOutputHeaderSetsTheTopBitAndTheStream() {
        let header = BinaryOutputFrame.header(stream: .stderr, count: 10)
        let value = header.withUnsafeBytes { Frame.length(from: $0) }
        XCTAssertEqual(value & BinaryOutputFrame.flag, BinaryOutputFrame.flag)
        XCTAssertEqual(Int(value & ~BinaryOutputFrame.flag), 11)
        XCTAssertEqual(header[4], BinaryOutputFrame.stderrTag)
    }
}
