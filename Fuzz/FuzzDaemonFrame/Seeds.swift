import FuzzSupport
import RunvoyKit

/// Seed inputs for FuzzDaemonFrame: requests as a client sends them (docs/PROTOCOL.md), framed as on the wire,
/// with a frame limit (an index into `fuzz`'s list), a budget and read sizes.
/// Fuzz/Corpus/FuzzDaemonFrame was made with `FuzzDaemonFrame --write-seeds Fuzz/Corpus/FuzzDaemonFrame`.
enum Seeds {
    static func all() -> [(name: String, input: [UInt8])] {
        let hello = json(#"{"id": 1, "method": "hello", "params": {"protocols": [1], "client": "runvoyctl"}}"#)
        let exec = json(
            #"{"id": 2, "method": "exec", "params": {"argv": ["terraform", "plan"], "executor": "default", "stream": true}}"#
        )
        let stdin = json(#"{"id": 2, "method": "stdin", "params": {"data": "aGkK"}}"#)
        let large = Frame.header(length: 70_000) + [UInt8](repeating: 0x61, count: 1_000)
        return [
            ("hello-exec", seed(hello + exec + stdin, limit: 4, budget: 2, reads: [])),
            ("split", seed(hello + exec + stdin, limit: 4, budget: 2, reads: [1, 3, 50])),
            ("too-large", seed(hello + exec, limit: 2, budget: 2, reads: [5])),
            ("truncated", seed(hello + Array(exec.prefix(20)), limit: 4, budget: 2, reads: [])),
            ("large-over-budget", seed(hello + large, limit: 5, budget: 1, reads: [600])),
            ("large-within-budget", seed(hello + large, limit: 5, budget: 2, reads: [600])),
        ]
    }

    static func json(_ text: String) -> [UInt8] {
        Frame.header(length: text.utf8.count) + Array(text.utf8)
    }

    static func seed(_ stream: [UInt8], limit: Int, budget: Int, reads: [Int]) -> [UInt8] {
        var seed = FuzzInputBuilder()
        seed.int(limit, in: 0...6)
        seed.int(budget, in: 0...2)
        seed.int(reads.count, in: 0...15)
        for read in reads { seed.int(read, in: 0...600) }
        seed.bytes(stream)
        return seed.input
    }
}
