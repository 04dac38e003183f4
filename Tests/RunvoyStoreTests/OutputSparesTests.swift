import RunvoyKit
import Testing

@testable import RunvoyStore

/// The pool of output folders made ahead of time: filled in the background, emptied at shutdown.
@Suite(.serialized)
struct OutputSparesTests {
    static func spares(in directory: TemporaryDirectory) -> [String] {
        FileSystem.entries(directory.path).filter { $0.hasPrefix(".spare-") }
    }

    @Test func closingRemovesTheSparesAndNoneAreMadeAfter() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let pool = OutputSpares(root: directory.path, count: 3)
        pool.refill()
        // A bounded wait for the background refill, not a timing assertion.
        for _ in 0..<3000 where Self.spares(in: directory).count < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(Self.spares(in: directory).count == 3)
        pool.close()
        #expect(Self.spares(in: directory).isEmpty)
        pool.refill()
        #expect(pool.take() == nil)
        #expect(Self.spares(in: directory).isEmpty)
    }
}
