import FuzzSupport
import RunvoyKit

/// Seed inputs for FuzzFrame: what runvoyd sends a client, framed as on the wire (replies and events as
/// docs/PROTOCOL.md shows them, output events laid out by `OutputFrame.writeFrame`, binary output frames).
/// Fuzz/Corpus/FuzzFrame was made with `FuzzFrame --write-seeds Fuzz/Corpus/FuzzFrame`.
enum Seeds {
    static func all() -> [(name: String, input: [UInt8])] {
        let started = json(
            #"{"id": 1, "event": "started", "execution_id": "01jdx7y3m1qk2f6e8v9w0zabcd", "executor": "default", "run_as": "nobody:nogroup", "pid": 5123}"#
        )
        let exit = json(
            #"{"id":1,"event":"exit","execution_id":"01jdx7y3m1qk2f6e8v9w0zabcd","exit_code":3,"timed_out":false,"duration_usec":1234}"#
        )
        let refusal = json(
            #"{"id":7,"error":{"code":"permission_denied","message":"not allowed","reason":"no_rule"}}"#)
        let hello = json(
            #"{"id": 1, "result": {"daemon": "runvoyd", "version": "0.1.0", "protocols": [1], "protocol": 1, "max_frame_bytes": 1048576}}"#
        )
        let exec = output(.stdout, id: "1", "hi\n") + output(.stderr, id: "\"req-2\"", "warning\n")
        let binary = BinaryOutputFrame.header(stream: .stdout, count: 3) + Array("hi\n".utf8)
        return [
            ("exec", seed(started + exec + exit, limit: 5, reads: [])),
            ("exec-split", seed(started + exec + binary + exit, limit: 4, reads: [1, 7, 300])),
            ("refusal", seed(refusal, limit: 5, reads: [3])),
            ("hello", seed(hello, limit: 3, reads: [4, 4])),
            ("too-large", seed(hello + refusal, limit: 2, reads: [50])),
        ]
    }

    static func json(_ text: String) -> [UInt8] {
        Frame.header(length: text.utf8.count) + Array(text.utf8)
    }

    static func output(_ stream: OutputStreamKind, id: String, _ text: String) -> [UInt8] {
        let idLiteral = Array(id.utf8)
        let data = Array(text.utf8)
        var frame = [UInt8](repeating: 0, count: 4 + OutputFrame.payloadLength(idLiteral: idLiteral, count: data.count))
        let written = data.withUnsafeBytes { bytes in
            frame.withUnsafeMutableBytes {
                OutputFrame.writeFrame(stream: stream, idLiteral: idLiteral, data: bytes, into: $0)
            }
        }
        return Array(frame.prefix(written))
    }

    /// `stream` with the frame limit (an index into `fuzz`'s list), the first capacity and the reads.
    static func seed(_ stream: [UInt8], limit: Int, reads: [Int]) -> [UInt8] {
        var seed = FuzzInputBuilder()
        seed.int(limit, in: 0...5)
        seed.int(2, in: 0...3)
        seed.int(reads.count, in: 0...15)
        for read in reads { seed.int(read, in: 0...600) }
        seed.bytes(stream)
        return seed.input
    }
}
