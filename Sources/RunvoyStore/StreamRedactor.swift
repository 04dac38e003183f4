/// Redacts one output stream chunk by chunk, so that *when* output is released never depends on what the held
/// bytes are.
///
/// After every read it keeps back the last `RedactionSet.holdLength` bytes, whatever they contain (a value split
/// across reads is still caught), and releases the rest. Held bytes go out when `idleFlush` passes with nothing
/// new read (a prompt shows after that delay) and at the end of the stream. An earlier design held back only an
/// end that could begin a secret, which let a caller who controls a command's input (`cat`, `sed`, a REPL) learn
/// from the delay whether a guess was a prefix of the secret.
///
/// A value whose writing pauses for longer than `idleFlush` in its middle goes out in two parts, unredacted;
/// docs/SECURITY.md lists this with the other forms redaction does not catch.
public final class StreamRedactor {
    /// How long held bytes wait for more output before they are released anyway.
    public static let defaultIdleFlush: Duration = .milliseconds(20)

    let set: RedactionSet
    let idleFlushNanoseconds: Int64
    private var held: [UInt8] = []
    /// When the held bytes must be released (nanoseconds on the caller's monotonic clock); nil when none are held.
    public private(set) var deadline: Int64?
    /// How many values (in any of their forms) were taken out so far.
    public private(set) var replaced = 0

    public init(_ set: RedactionSet, idleFlush: Duration = StreamRedactor.defaultIdleFlush) {
        self.set = set
        self.idleFlushNanoseconds =
            idleFlush.components.seconds * 1_000_000_000 + idleFlush.components.attoseconds / 1_000_000_000
    }

    /// Takes one read; returns the redacted bytes that can be released now. `now` is a monotonic time in
    /// nanoseconds, from which `deadline` is set.
    public func feed(_ chunk: UnsafeRawBufferPointer, now: Int64 = 0) -> [UInt8] {
        held += chunk
        var output: [UInt8] = []
        let limit = held.count - set.holdLength
        if limit > 0 {
            let result = set.process(held, limit: limit)
            output = result.output
            replaced += result.replaced
            held.removeFirst(min(result.resume, held.count))
        }
        deadline = held.isEmpty ? nil : now + idleFlushNanoseconds
        return output
    }

    /// Everything held, redacted, once `deadline` has passed; nothing before.
    public func expire(now: Int64) -> [UInt8] {
        guard let deadline, now >= deadline else { return [] }
        return finish()
    }

    /// Everything still held, redacted (at the end of the stream).
    public func finish() -> [UInt8] {
        defer {
            held = []
            deadline = nil
        }
        let result = set.process(held, limit: held.count)
        replaced += result.replaced
        return result.output
    }
}
