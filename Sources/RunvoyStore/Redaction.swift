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
    func process(_ buffer: [UInt8], limit: Int) -> (output: [UInt8], resume: Int) {
        var output: [UInt8] = []
        output.reserveCapacity(buffer.count)
        var position = 0
        buffer.withUnsafeBytes { raw in
            while position < limit {
                var best: (start: Int, pattern: Int)?
                for (index, pattern) in patterns.enumerated() {
                    guard let start = Self.find(pattern.bytes, in: raw, from: position), start < limit else { continue }
                    if best == nil || start < best!.start { best = (start, index) }
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

/// Redacts one output stream chunk by chunk. It holds back the last bytes of each chunk that could still begin
/// a secret (fewer than the longest form) until the next chunk or the end of the stream, so a value split across
/// chunks is caught, and the result equals redacting the whole stream at once.
public final class StreamRedactor {
    let set: RedactionSet
    private var held: [UInt8] = []

    public init(_ set: RedactionSet) {
        self.set = set
    }

    /// The redacted bytes that can be released now.
    public func feed(_ chunk: UnsafeRawBufferPointer) -> [UInt8] {
        held += chunk
        let limit = held.count - (set.maxLength - 1)
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
