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
        /// Which kind of form this is (0 the value, 1-3 base64 at each alignment, 4 URL-encoded): the forms of one
        /// kind have one length, and share a rolling hash.
        var kind = 0
    }

    let patterns: [Pattern]
    /// How many bytes a stream holds back after every read, whatever they contain: enough for the longest form
    /// any value of these lengths could have (URL encoding triples a byte) and one more character. It depends
    /// only on the values' lengths, so when output is released never tells anything about their contents.
    public let holdLength: Int

    /// Patterns for `secrets` (name, value). Values are expected to be at least a few bytes long; set time
    /// refuses short ones, since replacing them would mangle ordinary output.
    public init(secrets: [(name: String, value: [UInt8])]) {
        // Every form is kept, duplicates too: how many there are, and so the work per byte, depends only on the
        // values' lengths.
        var patterns: [(order: Int, secret: Int, pattern: Pattern)] = []
        for (secret, (name, value)) in secrets.enumerated() where !value.isEmpty {
            let replacement = Array("[secret:\(name)]".utf8)
            for var pattern in Self.patterns(of: value) where pattern.bytes.count >= min(6, value.count) {
                pattern.replacement = replacement
                patterns.append((patterns.count, secret, pattern))
            }
        }
        // Longest first, so at one position the longest form wins (the first given among equals).
        self.patterns = patterns.sorted {
            ($0.pattern.bytes.count, -$0.order) > ($1.pattern.bytes.count, -$1.order)
        }.map(\.pattern)
        // Rounded up to a multiple of 32 bytes, so that how much is held tells only a range of the length.
        let longestValue = secrets.map(\.value.count).max() ?? 0
        self.holdLength = longestValue == 0 ? 0 : 3 * ((longestValue + 31) / 32 * 32) + 1
        var generator = SystemRandomNumberGenerator()
        let base = generator.next() | 1
        self.base = base
        // One rolling hash per kind of form per secret, over that form's whole length.
        var groups: [(key: [Int], length: Int, members: [Int])] = []
        for entry in patterns {
            let key = [entry.secret, entry.pattern.kind]
            if let at = groups.firstIndex(where: { $0.key == key }) {
                groups[at].members.append(entry.order)
            } else {
                groups.append((key, entry.pattern.bytes.count, [entry.order]))
            }
        }
        // Members by their index in `self.patterns` (sorted longest first).
        let sortedOrders = patterns.sorted {
            ($0.pattern.bytes.count, -$0.order) > ($1.pattern.bytes.count, -$1.order)
        }.map(\.order)
        var position = [Int](repeating: 0, count: patterns.count)
        for (offset, order) in sortedOrders.enumerated() { position[order] = offset }
        self.groupLengths = groups.map(\.length)
        self.groupTopPowers = groups.map { group in
            (1..<max(1, group.length)).reduce(UInt64(1)) { power, _ in power &* base }
        }
        let members = groups.map { $0.members.map { position[$0] } }
        self.groupMembers = members
        let patternHashes = self.patterns.map { Self.hash($0.bytes, base: base) }
        self.patternHashes = patternHashes
        // A group holds one form or two (the two alphabets of base64, the two cases of URL-encoding).
        self.groupFirstHashes = members.map { patternHashes[$0[0]] }
        self.groupSecondHashes = members.map { patternHashes[$0[$0.count - 1]] }
        self.longest = self.patterns.map(\.bytes.count).max() ?? 0
        self.shortest = self.patterns.map(\.bytes.count).min() ?? 0
    }

    /// Matching is a rolling hash (Rabin–Karp) over each kind of form's whole length, compared with the hash of
    /// every form: the same work for every byte of output whatever the secrets are (the number of kinds and forms
    /// depends only on the values' lengths), and a form's bytes are compared only where its whole hash matched —
    /// where the form is, barring a 64-bit collision. (glibc's `memmem`, used before, takes longer or shorter
    /// depending on which byte pairs occur in what it looks for; a hash of only the forms' first bytes would make
    /// output holding the start of a form cost more: either could be timed by a caller feeding an echoing
    /// command.) `base` is drawn at random for every set, so nobody can make output collide on purpose.
    let base: UInt64
    /// Per group (one kind of form of one secret): its forms' length, `base` to the power length - 1 (to take the
    /// oldest byte out), and its forms' indices in `patterns`.
    let groupLengths: [Int]
    let groupTopPowers: [UInt64]
    let groupMembers: [[Int]]
    /// Per pattern, the hash of its bytes.
    let patternHashes: [UInt64]
    /// Per group, the hashes of its first and last form (the same when it has one).
    let groupFirstHashes: [UInt64]
    let groupSecondHashes: [UInt64]
    /// The longest pattern's length.
    let longest: Int
    /// The shortest pattern's length.
    let shortest: Int

    static func hash<Bytes: Collection>(_ bytes: Bytes, base: UInt64) -> UInt64 where Bytes.Element == UInt8 {
        bytes.reduce(UInt64(0)) { $0 &* base &+ UInt64($1) }
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
                    before: before.map(Self.masked), after: after, kind: 1 + alignment))
            patterns.append(
                Pattern(
                    bytes: middle.map {
                        $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0
                    }, replacement: [], urlAlphabet: true, before: before.map(Self.masked), after: after,
                    kind: 1 + alignment))
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
            patterns.append(Pattern(bytes: encoded, replacement: [], kind: 4))
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
    func process(_ buffer: [UInt8], limit: Int) -> (output: [UInt8], resume: Int, replaced: Int) {
        let result = processCounting(buffer, limit: limit)
        return (result.output, result.resume, result.replaced)
    }

    /// `process`, also saying how many times forms' bytes were compared with the output: only where a whole
    /// form's hash matched (tests check that output holding only the start of a form costs no comparison).
    func processCounting(
        _ buffer: [UInt8], limit: Int
    ) -> (output: [UInt8], resume: Int, comparisons: Int, replaced: Int) {
        var output: [UInt8] = []
        output.reserveCapacity(buffer.count)
        var position = 0
        var comparisons = 0
        var replaced = 0
        buffer.withUnsafeBytes { raw in
            withHashes { hashes in
                var scan = 0
                var fresh = false
                while shortest > 0 && scan <= limit && scan + shortest <= raw.count {
                    if !fresh {
                        hashes.start(raw, at: scan)
                        fresh = true
                    }
                    // Every group's hash against every one of its forms, without stopping at a hit.
                    let hits =
                        scan + longest < raw.count
                        ? hashes.compareAndRoll(raw, at: scan) : hashes.compareAndRollNearEnd(raw, at: scan)
                    if hits != 0 {
                        comparisons += 1
                        if let (start, end, index) = confirm(raw, at: scan, after: position) {
                            output += raw[position..<start]
                            output += patterns[index].replacement
                            replaced += 1
                            position = end
                            scan = end
                            fresh = false
                            continue
                        }
                    }
                    scan += 1
                }
            }
            if position < limit {
                output += raw[position..<limit]
                position = limit
            }
        }
        return (output, position, comparisons, replaced)
    }

    /// Runs `body` with this set's hash tables and a rolling hash per group, without copies or bounds checks.
    private func withHashes<R>(_ body: (RollingHashes) -> R) -> R {
        var rolling = [UInt64](repeating: 0, count: groupLengths.count)
        return groupLengths.withUnsafeBufferPointer { lengths in
            groupTopPowers.withUnsafeBufferPointer { tops in
                groupFirstHashes.withUnsafeBufferPointer { firsts in
                    groupSecondHashes.withUnsafeBufferPointer { seconds in
                        rolling.withUnsafeMutableBufferPointer { rolling in
                            let hashes = RollingHashes(
                                base: base, lengths: lengths, tops: tops, firsts: firsts, seconds: seconds,
                                rolling: rolling)
                            return body(hashes)
                        }
                    }
                }
            }
        }
    }

    /// The longest pattern whose bytes are at `start`, with its span grown by the base64 edge characters that
    /// belong to it (not before `floor`, what is already released).
    private func confirm(
        _ raw: UnsafeRawBufferPointer, at start: Int, after floor: Int
    )
        -> (start: Int, end: Int, pattern: Int)?
    {
        // Only reached where a whole form's hash matched, so comparing bytes here tells nothing new.
        for index in patterns.indices {
            let pattern = patterns[index]
            guard start + pattern.bytes.count <= raw.count,
                pattern.bytes.withUnsafeBytes({ memcmp(raw.baseAddress! + start, $0.baseAddress!, $0.count) }) == 0
            else { continue }
            var from = start
            var end = start + pattern.bytes.count
            if let edge = pattern.before, from > floor,
                let value = Self.sextet(raw[from - 1], urlAlphabet: pattern.urlAlphabet), value & edge.mask == edge.bits
            {
                from -= 1
            }
            if let edge = pattern.after, end < raw.count,
                let value = Self.sextet(raw[end], urlAlphabet: pattern.urlAlphabet), value & edge.mask == edge.bits
            {
                end += 1
            }
            return (from, end, index)
        }
        return nil
    }
}
