import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Security review of `runvoyctl edit` (issue 16, item 4): a proof of concept that failed on 3278b33 (302 MiB).
@Suite(.serialized) struct EditDiffMemoryTests {
    func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    /// Peak resident memory of this process, in KiB.
    func peakKiB() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss
    }

    /// `LineDiff.edits` keeps a copy of its whole `v` array (2·(n+m)+3 Ints) for every D up to `maxChanges`, so a
    /// caller who replaces a one-line file by many short lines makes the daemon allocate
    /// (maxChanges+1)·16·(n+m) bytes: 7 000 lines (7 KB) raised peak memory by about 300 MiB here; a 512 KiB edit (the default
    /// `max_edit_bytes`) of 524 288 lines tens of GB, which OOM-kills runvoyd (after the file was written, so
    /// its history record is lost too). The diff of a few KB must not cost hundreds of MB.
    @Test func aSmallEditWithManyShortLinesDoesNotMakeTheDiffAllocateHundredsOfMegabytes() {
        let old = text("a\n")
        let new = [UInt8](repeating: UInt8(ascii: "\n"), count: 7000)
        let before = peakKiB()
        let diff = LineDiff.unified(old, new, label: "/f")
        let grown = peakKiB() - before
        #expect(!diff.isEmpty)
        #expect(grown < 64 * 1024, "the diff of a 7000-byte edit raised peak memory by \(grown / 1024) MiB")
    }
}
