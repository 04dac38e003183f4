import CRunvoyPosix
import Glibc
import RunvoyKit

/// The secret values to take out of an execution's output, in every form they are looked for: as they are,
/// base64 (standard and URL alphabet, at each of the three byte alignments, with the characters at either end
/// that carry only some of the value's bits) and URL-encoded (upper- and lower-case hex). Every form is replaced
/// by `[secret:NAME]`.
public struct RedactionSet: Sendable {
    /// The bits of a base64 character at the edge of a form that come from the value: the character belongs to
    /// the form when its 6-bit value, masked, equals `bits`.
    struct EdgeBits: Sendable, Equatable {
        var mask: UInt8
        var bits: UInt8
    }

    struct Pattern: Sendable {
        var bytes: [UInt8]
        var replacement: [UInt8]
        /// For base64 forms: the alphabet of the edge characters (`true` URL, `false` standard, nil either, when
        /// the form itself has no character that tells) and the partly-secret characters before and after the
        /// whole characters in `bytes`.
        var urlAlphabet: Bool? = nil
        var before: EdgeBits?
        var after: EdgeBits?
    }

    let patterns: [Pattern]
    /// How many bytes a stream holds back after every read, whatever they contain: enough for the longest form
    /// any value of these lengths could have (URL encoding triples a byte) and one more character. It depends
    /// only on the values' lengths, so when output is released never tells anything about their contents.
    public let holdLength: Int

    /// Patterns for `secrets` (name, value). Values are expected to be at least a few bytes long; set time
    /// refuses short ones, since replacing them would mangle ordinary output.
    public init(secrets: [(name: String, value: [UInt8])]) {
        var patterns: [Pattern] = []
        var seen = Set<[UInt8]>()
        for (name, value) in secrets where !value.isEmpty {
            let replacement = Array("[secret:\(name)]".utf8)
            for var pattern in Self.patterns(of: value)
            where pattern.bytes.count >= min(6, value.count) && seen.insert(pattern.bytes).inserted {
                pattern.replacement = replacement
                patterns.append(pattern)
            }
        }
        // Longest first, so at one position the longest form wins.
        self.patterns = patterns.sorted { $0.bytes.count > $1.bytes.count }
        let longestValue = secrets.map(\.value.count).max() ?? 0
        self.holdLength = longestValue == 0 ? 0 : 3 * longestValue + 1
    }

    public var isEmpty: Bool { patterns.isEmpty }

    /// Every form of `value` that is searched for (the whole characters of each base64 form).
    static func forms(of value: [UInt8]) -> [[UInt8]] {
        patterns(of: value).map(\.bytes)
    }

    static func patterns(of value: [UInt8]) -> [Pattern] {
        var patterns = [Pattern(bytes: value, replacement: [])]
        for alignment in 0..<3 {
            let encoded = Array(Base64.encode([UInt8](repeating: 0, count: alignment) + value).utf8)
            // Characters made only of the value's bits (not of the filler before it or what follows it).
            let first = (8 * alignment + 5) / 6
            let end = (8 * alignment + 8 * value.count) / 6
            guard end > first else { continue }
            // A character before `first` holds the value's first bits in its low bits; one at `end`, its last bits
            // in its high bits. Both carry secret bits, so they are part of the form when those bits agree.
            let leading = (8 * alignment) % 6
            let before =
                leading == 0
                ? nil : EdgeBits(mask: UInt8(1 << (6 - leading)) - 1, bits: Self.sextet(encoded[first - 1])!)
            let trailing = (8 * alignment + 8 * value.count) % 6
            let highMask = UInt8(0x3F) & ~(UInt8(1 << (6 - trailing)) - 1)
            let after = trailing == 0 ? nil : EdgeBits(mask: highMask, bits: Self.sextet(encoded[end])! & highMask)
            let middle = Array(encoded[first..<end])
            let tellsAlphabet = middle.contains(UInt8(ascii: "+")) || middle.contains(UInt8(ascii: "/"))
            patterns.append(
                Pattern(
                    bytes: middle, replacement: [], urlAlphabet: tellsAlphabet ? false : nil,
                    before: before.map(Self.masked), after: after))
            patterns.append(
                Pattern(
                    bytes: middle.map {
                        $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
                    }, replacement: [], urlAlphabet: true, before: before.map(Self.masked), after: after))
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
            patterns.append(Pattern(bytes: encoded, replacement: []))
        }
        return patterns
    }

    private static func masked(_ edge: EdgeBits) -> EdgeBits { EdgeBits(mask: edge.mask, bits: edge.bits & edge.mask) }

    /// The 6-bit value of a base64 character in either alphabet, nil for anything else.
    static func sextet(_ character: UInt8, urlAlphabet: Bool? = nil) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+") where urlAlphabet != true, UInt8(ascii: "-") where urlAlphabet != false: return 62
        case UInt8(ascii: "/") where urlAlphabet != true, UInt8(ascii: "_") where urlAlphabet != false: return 63
        default: return nil
        }
    }

    /// Redacts a complete text.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        process(bytes, limit: bytes.count).output
    }

    /// Replaces every match whose whole characters start at or before `limit`, scanning left to right (at one
    /// position the longest form wins), and copies the unmatched bytes before `limit`. Returns the output and
    /// where the next scan resumes (`limit`, or further when a match reached past it).
    ///
    /// A match may begin one character early (a base64 edge character) or end one character late, so a match
    /// starting exactly at `limit` is taken now: its edge character before `limit` is released with it.
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
            while position <= limit && position < raw.count {
                var best: (start: Int, pattern: Int)?
                for index in patterns.indices {
                    if next[index] != Int.max && next[index] < position {
                        next[index] = Self.find(patterns[index].bytes, in: raw, from: position) ?? Int.max
                    }
                    // Patterns are longest first, so at one position the first found is the longest.
                    if next[index] <= limit && (best == nil || next[index] < best!.start) {
                        best = (next[index], index)
                    }
                }
                guard let best else { break }
                let pattern = patterns[best.pattern]
                var start = best.start
                var end = best.start + pattern.bytes.count
                if let edge = pattern.before, start > position,
                    let value = Self.sextet(raw[start - 1], urlAlphabet: pattern.urlAlphabet),
                    value & edge.mask == edge.bits
                {
                    start -= 1
                }
                if let edge = pattern.after, end < raw.count,
                    let value = Self.sextet(raw[end], urlAlphabet: pattern.urlAlphabet), value & edge.mask == edge.bits
                {
                    end += 1
                }
                output += raw[position..<start]
                output += pattern.replacement
                position = end
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
