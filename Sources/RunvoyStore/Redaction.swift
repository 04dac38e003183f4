import CRunvoyPosix
import Glibc
import RunvoyKit

/// The secret values to take out of an execution's output, in every form they are looked for: as they are,
/// base64 (standard and URL alphabet, at each of the three byte alignments) and URL-encoded (upper- and
/// lower-case hex). Every form is replaced by `[secret:NAME]`.
public struct RedactionSet: Sendable {
    struct Pattern: Sendable {
        var bytes: [UInt8]
        var replacement: [UInt8]
    }

    let patterns: [Pattern]
    /// The longest pattern: a stream must hold back this many bytes less one before it knows a chunk is clean.
    let maxLength: Int

    /// Patterns for `secrets` (name, value). Values are expected to be at least a few bytes long; set time
    /// refuses short ones, since replacing them would mangle ordinary output.
    public init(secrets: [(name: String, value: [UInt8])]) {
        var patterns: [Pattern] = []
        var seen = Set<[UInt8]>()
        for (name, value) in secrets where !value.isEmpty {
            let replacement = Array("[secret:\(name)]".utf8)
            for form in Self.forms(of: value) where form.count >= min(6, value.count) && seen.insert(form).inserted {
                patterns.append(Pattern(bytes: form, replacement: replacement))
            }
        }
        // Longest first, so at one position the longest form wins.
        self.patterns = patterns.sorted { $0.bytes.count > $1.bytes.count }
        self.maxLength = patterns.map(\.bytes.count).max() ?? 0
    }

    public var isEmpty: Bool { patterns.isEmpty }

    /// Every form of `value` that is searched for.
    static func forms(of value: [UInt8]) -> [[UInt8]] {
        var forms = [value]
        for alignment in 0..<3 {
            let encoded = Array(Base64.encode([UInt8](repeating: 0, count: alignment) + value).utf8)
            // Characters made only of the value's bits (not of the filler before it or what follows it).
            let first = (8 * alignment + 5) / 6
            let end = (8 * alignment + 8 * value.count) / 6
            guard end > first else { continue }
            let middle = Array(encoded[first..<end])
            forms.append(middle)
            forms.append(
                middle.map {
                    $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
                })
        }
        for hex in ["0123456789ABCDEF", "0123456789abcdef"] {
            let digits = Array(hex.utf8)
            var encoded: [UInt8] = []
            for byte in value {
                if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
                {
                    encoded.append(byte)
                } else {
                    encoded += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
                }
            }
            forms.append(encoded)
        }
        return forms
    }

    /// Redacts a complete text.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        process(bytes, limit: bytes.count).output
    }

    /// Replaces every match that starts before `limit`, scanning left to right (at one position the longest form
    /// wins), and copies the unmatched bytes before `limit`. Returns the output and where the next scan resumes.
    ///
    /// Each form's next occurrence is remembered and searched for again only once the scan has passed it, so the
    /// work grows with the text times the number of forms, however many matches there are.
    func process(_ buffer: [UInt8], limit: Int) -> (output: [UInt8], resume: Int) {
        var output: [UInt8] = []
        output.reserveCapacity(buffer.count)
        var position = 0
        buffer.withUnsafeBytes { raw in
            // -1: not searched yet; Int.max: no further occurrence.
            var next = [Int](repeating: -1, count: patterns.count)
            while position < limit {
                var best: (start: Int, pattern: Int)?
                for index in patterns.indices {
                    if next[index] != Int.max && next[index] < position {
                        next[index] = Self.find(patterns[index].bytes, in: raw, from: position) ?? Int.max
                    }
                    // Patterns are longest first, so at one position the first found is the longest.
                    if next[index] < limit && (best == nil || next[index] < best!.start) {
                        best = (next[index], index)
                    }
                }
                guard let best else { break }
                output += raw[position..<best.start]
                output += patterns[best.pattern].replacement
                position = best.start + patterns[best.pattern].bytes.count
            }
            if position < limit {
                output += raw[position..<limit]
                position = limit
            }
        }
        return (output, position)
    }

    /// The length of the longest end of `text` that could be the beginning of a form (shorter than the form):
    /// those bytes must wait for the next read; everything before them can be released.
    func pendingLength(_ text: [UInt8]) -> Int {
        let window = min(maxLength - 1, text.count)
        guard window > 0 else { return 0 }
        return text.withUnsafeBytes { raw -> Int in
            for start in (text.count - window)..<text.count {
                let length = text.count - start
                for pattern in patterns where pattern.bytes.count > length && pattern.bytes[0] == raw[start] {
                    let same = pattern.bytes.withUnsafeBytes {
                        memcmp(raw.baseAddress! + start, $0.baseAddress!, length)
                    }
                    if same == 0 { return length }
                }
            }
            return 0
        }
    }

    static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < haystack.count, let base = haystack.baseAddress else { return nil }
        return needle.withUnsafeBytes { pattern -> Int? in
            guard let found = runvoy_memmem(base + start, haystack.count - start, pattern.baseAddress, pattern.count)
            else {
                return nil
            }
            return found - UnsafeRawPointer(base)
        }
    }
}

/// Redacts one output stream chunk by chunk. It holds back only the end of a chunk that could be the beginning
/// of a secret until the next chunk or the end of the stream, so a value split across chunks is caught, a prompt
/// that is not the start of a secret is shown at once, and the result equals redacting the whole stream at once.
public final class StreamRedactor {
    let set: RedactionSet
    private var held: [UInt8] = []

    public init(_ set: RedactionSet) {
        self.set = set
    }

    /// The redacted bytes that can be released now.
    public func feed(_ chunk: UnsafeRawBufferPointer) -> [UInt8] {
        held += chunk
        let limit = held.count - set.pendingLength(held)
        guard limit > 0 else { return [] }
        let (output, resume) = set.process(held, limit: limit)
        held.removeFirst(min(resume, held.count))
        return output
    }

    /// Everything still held, redacted, at the end of the stream.
    public func finish() -> [UInt8] {
        defer { held = [] }
        return set.process(held, limit: held.count).output
    }
}
