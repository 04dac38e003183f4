import Foundation
import PropertyBased
import RunvoyKit
import Testing

/// Properties of the wire format and the client's hand-written codecs, each checked against an independent
/// reference: Foundation's JSON and base64, big-endian integers as the standard library lays them out, and
/// models written from docs/PROTOCOL.md.
struct KitPropertyTests {
    // MARK: - Generators

    /// Any Unicode scalar, biased towards the ones codecs get wrong: C0 controls, quotes and backslashes, DEL and
    /// the C1 range, the characters around the surrogates, and scalars outside the BMP.
    static let scalar = zip(Gen.int(in: 0...7), Gen<UInt32>.value(in: 0...0x10_FFFF)).map {
        kind, raw -> Unicode.Scalar in
        let value: UInt32
        switch kind {
        case 0: value = raw % 0x20
        case 1: value = [0x22, 0x5C, 0x2F, 0x7F, 0x27][Int(raw % 5)]
        case 2: value = 0x80 + raw % 0x20
        case 3: value = 0xD7F0 + raw % 0x20  // up to the surrogates and just past them
        case 4: value = 0x1_0000 + raw % 0x10_0000
        case 5: value = [0x2028, 0x2029, 0xFEFF, 0xFFFD, 0x202E][Int(raw % 5)]
        default: value = 0x20 + raw % 0x5F
        }
        return Unicode.Scalar(value) ?? Unicode.Scalar(0xE000 + value % 0x100)!
    }

    static let text = scalar.array(of: 0...16).map { scalars -> String in
        var string = ""
        string.unicodeScalars.append(contentsOf: scalars)
        return string
    }

    // MARK: - Frames

    /// The header is the payload length as a 4-byte big-endian integer, for every length a UInt32 holds.
    @Test func frameHeaderIsTheBigEndianLengthAndReadsBack() async {
        await propertyCheck(count: 500, input: Gen<UInt32>.value()) { length in
            let header = Frame.header(length: Int(length))
            #expect(header == withUnsafeBytes(of: length.bigEndian) { Array($0) })
            #expect(header.withUnsafeBytes { Frame.length(from: $0) } == length)
        }
    }

    /// At any limit, a header announcing more than the limit is refused with `frame_too_large` as soon as its
    /// four bytes arrive, and a payload of at most the limit is delivered once it is complete.
    @Test func theFrameReaderEnforcesAnyLimitAtTheHeader() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...5000), Gen.int(in: 0...5000)) { limit, length in
            let reader = FrameReader(maxFrameBytes: limit, initialCapacity: 16)
            Frame.header(length: length).withUnsafeBytes { reader.append($0) }
            var delivered: [[UInt8]] = []
            if length > limit {
                let error = #expect(throws: RunvoyError.self) {
                    try reader.forEachFrame { delivered.append(Array($0)) }
                }
                #expect(error?.code == .frameTooLarge)
                return
            }
            #expect(throws: Never.self) { try reader.forEachFrame { delivered.append(Array($0)) } }
            #expect(delivered.isEmpty == (length > 0))
            let payload = [UInt8](repeating: 0x7B, count: length)
            payload.withUnsafeBytes { reader.append($0) }
            #expect(throws: Never.self) { try reader.forEachFrame { delivered.append(Array($0)) } }
            #expect(delivered.last == payload)
            #expect(reader.bufferedCount == 0)
        }
    }

    /// A binary output header has the top bit set, the stream tag and `count + 1` in the low 31 bits; the reader
    /// gives back exactly the stream and the bytes, and a JSON-only reader refuses it.
    @Test func binaryOutputFramesRoundTripThroughTheReader() async {
        await propertyCheck(count: 300, input: Gen<UInt8>.value().array(of: 0...600), Gen.bool) { bytes, stderr in
            let stream: OutputStreamKind = stderr ? .stderr : .stdout
            let header = BinaryOutputFrame.header(stream: stream, count: bytes.count)
            let word = header.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            #expect(word & BinaryOutputFrame.flag != 0)
            #expect(Int(word & ~BinaryOutputFrame.flag) == bytes.count + 1)
            #expect(header[4] == (stderr ? 2 : 1))
            let frame = header + bytes
            let reader = FrameReader(maxFrameBytes: 1 << 20, initialCapacity: 16)
            frame.withUnsafeBytes { reader.append($0) }
            var got: [(OutputStreamKind, [UInt8])] = []
            try reader.forEachEntry { entry in
                if case .output(let kind, let data) = entry { got.append((kind, Array(data))) }
            }
            #expect(got.count == 1 && got.first?.0 == stream && got.first?.1 == bytes)
            let jsonOnly = FrameReader(maxFrameBytes: 1 << 20, initialCapacity: 16)
            frame.withUnsafeBytes { jsonOnly.append($0) }
            #expect(throws: RunvoyError.self) { try jsonOnly.forEachFrame { _ in } }
        }
    }

    // MARK: - Hand-built JSON

    /// `JSONText.quoted` is a JSON string literal that JSONDecoder (what the daemon decodes requests with) and the
    /// client's reader both read back as the same string, for any Unicode text; `JSONText.array` likewise for
    /// arrays. (JSONSerialization is no reference here: it drops a U+FEFF that begins a string.)
    @Test func quotedTextReadsBackAsTheSameStringEverywhere() async {
        await propertyCheck(count: 400, input: Self.text.array(of: 0...4)) { strings in
            for string in strings {
                let literal = JSONText.quoted(string)
                #expect((try? JSONDecoder().decode(String.self, from: Data(literal.utf8))) == string)
                #expect(Array(literal.utf8).withUnsafeBytes { JSONValue.parse($0) } == .string(string))
                // No raw control character survives (RFC 8259 section 7), nor any invisible or text-moving one.
                #expect(!literal.unicodeScalars.contains { $0.value < 0x20 || JSONText.isHidden($0) })
            }
            let array = JSONText.array(strings)
            #expect((try? JSONDecoder().decode([String].self, from: Data(array.utf8))) == strings)
        }
    }

    /// What an approver reads (review of approvals, D4): bidi overrides and isolates, zero-width and other
    /// format characters (a tag character above the BMP too), DEL, C1 controls and separators are shown as escapes,
    /// so `["rm","-rf","/srv/\u{202E}txt.gpj"]` cannot look like another command; JSON readers get them back.
    @Test func invisibleAndTextMovingCharactersAreShownAsEscapes() {
        let argv = [
            "echo", "a\u{202E}b", "\u{2066}x\u{2069}", "z\u{200B}w", "\u{FEFF}", "\u{7F}\u{85}", "\u{2028}",
            "\u{E0041}",
        ]
        #expect(
            JSONText.array(argv)
                == #"["echo","a\u202eb","\u2066x\u2069","z\u200bw","\ufeff","\u007f\u0085","\u2028","\udb40\udc41"]"#)
        #expect((try? JSONDecoder().decode([String].self, from: Data(JSONText.array(argv).utf8))) == argv)
        #expect(Array(JSONText.quoted(argv[7]).utf8).withUnsafeBytes { JSONValue.parse($0) } == .string(argv[7]))
        // Visible text beyond ASCII stays as it is.
        #expect(JSONText.quoted("café ✓ 日本 😀") == "\"café ✓ 日本 😀\"")
    }

    /// `signal` requests built as text decode with JSONDecoder to the parameters they were built from, for any
    /// signal name and execution id.
    @Test func signalRequestsDecodeLikeTheirCodableForm() async {
        await propertyCheck(count: 300, input: Gen<Int64>.value(), Self.text, Self.text.optional) {
            id, name, execution in
            let frame = RequestText.signal(id: id, name: name, executionID: execution)
            let payload = Data(frame.dropFirst(4))
            #expect(frame.withUnsafeBytes { Int(Frame.length(from: $0)) } == payload.count)
            let decoded = try? JSONDecoder().decode(Request<SignalParams>.self, from: payload)
            #expect(decoded?.params == SignalParams(signal: name, executionId: execution))
            #expect(decoded?.id == .number(id))
            #expect(decoded?.method == "signal" && decoded?.v == RunvoyProtocol.currentVersion)
        }
    }

    /// `exec` requests built as text carry any Unicode argv, executor and environment exactly as the daemon's
    /// JSONDecoder reads them (HotPathJSONTests' Codable check uses mostly ASCII).
    @Test func execRequestsCarryAnyUnicodeExactly() async {
        let env = zip(Self.text, Self.text).array(of: 0...4)
        await propertyCheck(count: 250, input: Self.text.array(of: 1...5), Self.text.optional, env) {
            argv, executor, pairs in
            var environment: [String: String] = [:]
            for (key, value) in pairs { environment[key] = value }
            let params = ExecParams(argv: argv, executor: executor, env: pairs.isEmpty ? nil : environment)
            let payload = Data(RequestText.exec(id: 5, params).dropFirst(4))
            let decoded = try? JSONDecoder().decode(Request<ExecParams>.self, from: payload)
            #expect(decoded?.params?.argv == argv)
            #expect(decoded?.params?.executor == executor)
            #expect(decoded?.params?.env == (pairs.isEmpty ? nil : environment))
            #expect(decoded?.method == "exec")
        }
    }

    /// Request ids: any 64-bit integer and any string survive `jsonLiteral` and the Codable round trip with their
    /// JSON type; a whole number outside 64 bits, a fraction, `true` and `null` are refused rather than wrapped,
    /// rounded or converted.
    @Test func requestIDsRoundTripAndNumbersOutside64BitsAreRefused() async {
        struct Holder: Codable { var id: RequestID }
        await propertyCheck(count: 400, input: Gen<Int64>.value(), Self.text, Gen<UInt64>.value(in: 1...UInt64.max)) {
            number, string, beyond in
            for id in [RequestID.number(number), .string(string)] {
                let text = "{\"id\":\(id.jsonLiteral)}"
                #expect((try? JSONDecoder().decode(Holder.self, from: Data(text.utf8)))?.id == id)
                let encoded = try? JSONEncoder().encode(Holder(id: id))
                #expect(encoded.flatMap { try? JSONDecoder().decode(Holder.self, from: $0) }?.id == id)
            }
            // Int64.max + beyond and Int64.min - beyond, written exactly as decimal text.
            let above = "9223372036854775807".addingDecimal(beyond)
            let below = "-" + "9223372036854775808".addingDecimal(beyond)
            // A fraction, a boolean and null are refused too (docs/PROTOCOL.md "Requests").
            for literal in [above, below, "\(number).5", "true", "null"] {
                let decoded = try? JSONDecoder().decode(Holder.self, from: Data("{\"id\":\(literal)}".utf8))
                #expect(decoded == nil, "\(literal) decoded as \(String(describing: decoded?.id))")
            }
        }
    }

    /// Regression (found by `requestIDsRoundTripAndNumbersOutside64BitsAreRefused`): JSONDecoder reads a fraction
    /// too fine for a Double as the whole number it rounds to, so `4503599627370495.5` was taken as the id
    /// 4503599627370496 and echoed as a different id; docs/PROTOCOL.md says a fraction is `bad_request`.
    @Test(arguments: ["4503599627370495.5", "9007199254740993.25", "-4503599627370497.5", "1.5", "0.000001"])
    func fractionalRequestIDsAreRefused(text: String) {
        struct Holder: Codable { var id: RequestID }
        #expect((try? JSONDecoder().decode(Holder.self, from: Data("{\"id\":\(text)}".utf8))) == nil)
    }

    @Test(arguments: ["9223372036854775807", "-9223372036854775808", "4503599627370496", "0", "-1", "1e3"])
    func wholeRequestIDsAreRead(text: String) {
        struct Holder: Codable { var id: RequestID }
        let id = try? JSONDecoder().decode(Holder.self, from: Data("{\"id\":\(text)}".utf8)).id
        #expect(id == .number(Int64(Decimal(string: text)!.description)!))
    }

    // MARK: - The client's JSON reader

    /// A random JSON document (depth up to 4) rendered with random whitespace and random escaping, together with
    /// the value it denotes.
    struct Document {
        var text: [UInt8] = []
        var value: JSONValue = .null
        var state: UInt64

        init(seed: UInt64) {
            state = seed
            value = make(depth: 0)
        }

        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }

        mutating func space() {
            for _ in 0..<next(3) { text.append([0x20, 0x09, 0x0A, 0x0D][next(4)]) }
        }

        mutating func string() -> String {
            let alphabet: [Unicode.Scalar] = ["a", "Z", "\"", "\\", "/", "\n", "\u{1}", "é", "😀", "\u{2028}", " "]
            var out = ""
            text.append(UInt8(ascii: "\""))
            for _ in 0..<next(6) {
                let scalar = alphabet[next(alphabet.count)]
                out.unicodeScalars.append(scalar)
                if next(2) == 0 || scalar == "\"" || scalar == "\\" || scalar.value < 0x20 {
                    // \uXXXX, with a surrogate pair above the BMP.
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16, uppercase: next(2) == 0)
                        text += Array(("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
                    }
                } else {
                    text += Array(String(scalar).utf8)
                }
            }
            text.append(UInt8(ascii: "\""))
            return out
        }

        mutating func make(depth: Int) -> JSONValue {
            space()
            defer { space() }
            switch next(depth >= 4 ? 5 : 7) {
            case 0:
                text += Array("null".utf8)
                return .null
            case 1:
                let value = next(2) == 0
                text += Array((value ? "true" : "false").utf8)
                return .bool(value)
            case 2:
                // Integers, decimals and exponents that are exact in a Double.
                let whole = next(2_000_001) - 1_000_000
                let forms = ["\(whole)", "\(whole).5", "\(whole)e2", "\(whole).25E-1"]
                let form = forms[next(forms.count)]
                text += Array(form.utf8)
                return .number(Double(form)!)
            case 3, 4: return .string(string())
            case 5:
                text.append(UInt8(ascii: "["))
                var items: [JSONValue] = []
                let count = next(4)
                if count == 0 { space() }
                for index in 0..<count {
                    if index > 0 { text.append(UInt8(ascii: ",")) }
                    items.append(make(depth: depth + 1))
                }
                text.append(UInt8(ascii: "]"))
                return .array(items)
            default:
                text.append(UInt8(ascii: "{"))
                var members: [String: JSONValue] = [:]
                let count = next(4)
                if count == 0 { space() }
                for index in 0..<count {
                    if index > 0 { text.append(UInt8(ascii: ",")) }
                    space()
                    var key = string()
                    // Distinct keys only: duplicate members are not interoperable (RFC 8259 section 4).
                    while members[key] != nil {
                        text.removeLast()  // the closing quote
                        text += Array("_\"".utf8)
                        key += "_"
                    }
                    space()
                    text.append(UInt8(ascii: ":"))
                    members[key] = make(depth: depth + 1)
                }
                text.append(UInt8(ascii: "}"))
                return .object(members)
            }
        }
    }

    /// The client's reader reads any generated JSON document as the value it denotes, and as Foundation reads it.
    @Test func theClientReaderReadsGeneratedJSONLikeFoundation() async {
        await propertyCheck(count: 400, input: Gen<UInt64>.value()) { seed in
            let document = Document(seed: seed)
            let ours = document.text.withUnsafeBytes { JSONValue.parse($0) }
            #expect(ours == document.value, "\(String(decoding: document.text, as: UTF8.self))")
            let theirs = try? JSONSerialization.jsonObject(with: Data(document.text), options: .fragmentsAllowed)
            #expect(theirs != nil)
            if let ours, let theirs { #expect(HotPathJSONTests.same(ours, theirs)) }
        }
    }

    /// Whatever one edit (a byte deleted, inserted or replaced) does to a JSON document, the client's reader
    /// accepts the result only when Foundation does, and then reads the same value: it never invents a value
    /// from text that is not JSON.
    @Test func theClientReaderAcceptsOnlyWhatFoundationAccepts() async {
        let interesting = Array("{}[],:\"\\0123456789-+.eEtrufalsn u/".utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xFF]
        await propertyCheck(
            count: 600, input: Gen<UInt64>.value(), Gen.int(in: 0...2), Gen.int(in: 0...10_000),
            Gen<UInt8?>.element(of: interesting).map { $0! }
        ) { seed, edit, offset, byte in
            var text = Document(seed: seed).text
            let position = offset % (text.count + 1)
            switch edit {
            case 0: if position < text.count { text.remove(at: position) }
            case 1: text.insert(byte, at: position)
            default: if position < text.count { text[position] = byte }
            }
            let ours = text.withUnsafeBytes { JSONValue.parse($0) }
            let theirs = try? JSONSerialization.jsonObject(with: Data(text), options: .fragmentsAllowed)
            if let ours {
                #expect(
                    theirs != nil,
                    "accepted what Foundation refuses: \(String(reflecting: String(decoding: text, as: UTF8.self)))")
                if let theirs { #expect(HotPathJSONTests.same(ours, theirs)) }
            }
        }
    }

    /// Regression (found by `theClientReaderAcceptsOnlyWhatFoundationAccepts`): the reader took any text
    /// `Double(_:)` takes as a number, so `894691.`, `.5`, `+1` and `01` were read although they are not JSON, and
    /// `-1e16217` as minus infinity.
    @Test(arguments: [
        "1.", "894691.", ".5", "+1", "01", "-01", "-", "1e", "1e+", "1.e5", "--1", "1-", "-1e16217", "1e400",
    ])
    func numbersOutsideTheJSONGrammarAreRefused(text: String) {
        #expect(Array(text.utf8).withUnsafeBytes { JSONValue.parse($0) } == nil)
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) == nil)
    }

    @Test(arguments: ["0", "-0", "1.5", "1e5", "1E-5", "-0.0e+0", "10", "123456789.25"])
    func numbersInTheJSONGrammarAreRead(text: String) {
        #expect(Array(text.utf8).withUnsafeBytes { JSONValue.parse($0) } == .number(Double(text)!))
    }

    // MARK: - Base64

    /// Decoding any text over the base64 alphabet (padding and a few foreign characters included) against
    /// Foundation: what we decode, Foundation decodes to the same bytes, and every canonical encoding Foundation
    /// reads (its bytes encode back to the text) we read too. Foundation also takes some text RFC 4648 does not
    /// (`=` inside the text); we refuse that.
    @Test func base64DecodingAgreesWithFoundationOnAnyText() async {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let character = zip(Gen.int(in: 0...19), Gen<UInt8?>.element(of: alphabet).map { $0! }).map {
            kind, letter -> UInt8 in
            switch kind {
            case 0: return UInt8(ascii: "=")
            case 1: return [UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: " "), 0x0A, 0x00, 0xC3][Int(letter) % 6]
            default: return letter
            }
        }
        var canonical = 0
        await propertyCheck(count: 600, input: character.array(of: 0...24)) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let reference = Data(base64Encoded: text).map { Array($0) }
            let ours = Base64.decode(text)
            if ours != nil { #expect(ours == reference, "\(text)") }
            if let reference, Data(reference).base64EncodedString() == text {
                canonical += 1
                #expect(ours == reference, "\(text)")
            }
            // Only the two last characters may be padding.
            if text.dropLast(2).contains("=") { #expect(ours == nil, "\(text)") }
        }
        #expect(canonical > 30)
    }

    /// Encoding from any offset into a buffer (so at any alignment, through the 8-byte fast path and the tail)
    /// writes exactly Foundation's encoding, and the returned count is `encodedLength`.
    @Test func base64EncodingIntoABufferMatchesFoundationAtAnyAlignment() async {
        await propertyCheck(count: 400, input: Gen<UInt8>.value().array(of: 0...200), Gen.int(in: 0...15)) {
            bytes, shift in
            let padded = [UInt8](repeating: 0xAA, count: shift) + bytes
            var out = [UInt8](repeating: 0, count: Base64.encodedLength(bytes.count) + 3)
            let written = padded.withUnsafeBytes { source in
                out.withUnsafeMutableBytes {
                    Base64.encode(UnsafeRawBufferPointer(rebasing: source[shift...]), into: $0)
                }
            }
            #expect(written == Base64.encodedLength(bytes.count))
            #expect(Array(out.prefix(written)) == Array(Data(bytes).base64EncodedString().utf8))
            #expect(out.suffix(3) == [0, 0, 0])
        }
    }

    // MARK: - Durations

    /// For any whole number of milliseconds up to about 300 years, `format` gives a text that `parse` reads back
    /// as the same duration, written with units from large to small.
    @Test func durationFormatReadsBackAsTheSameDuration() async {
        await propertyCheck(count: 500, input: Gen<Int64>.value(in: 0...9_999_999_999_999)) { millis in
            let duration = Duration.milliseconds(millis)
            let text = DurationParser.format(duration)
            #expect(DurationParser.parse(text) == duration, "\(text)")
            #expect(!text.isEmpty && !text.contains(" "))
        }
    }

    /// A compound duration written with any subset of the units in order (`2d3h`, `90m`, `1h30m250ms`, padded
    /// with spaces) is the sum of its parts; the same parts out of order, or a unit twice, are refused.
    @Test func compoundDurationsAreTheSumOfTheirPartsInOrderOnly() async {
        let part = Gen.int(in: 0...400).optional(valueRate: 0.5)
        await propertyCheck(count: 500, input: part.array(of: 5...5), Gen.int(in: 0...3), Gen.int(in: 0...4)) {
            amounts, pad, swap in
            let units: [(String, Int64)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
            let parts = zip(units, amounts).compactMap { unit, amount in amount.map { (unit.0, unit.1, Int64($0)) } }
            guard !parts.isEmpty else { return }
            let spaces = String(repeating: " ", count: pad)
            let text = spaces + parts.map { "\($0.2)\($0.0)" }.joined() + spaces
            let expected = parts.reduce(Int64(0)) { $0 + $1.1 * $1.2 }
            #expect(DurationParser.parse(text) == .milliseconds(expected), "\(text)")
            if parts.count >= 2 {
                var reordered = parts
                reordered.swapAt(swap % parts.count, (swap + 1) % parts.count)
                #expect(DurationParser.parse(reordered.map { "\($0.2)\($0.0)" }.joined()) == nil)
                let doubled = parts.map { "\($0.2)\($0.0)" } + ["1" + parts[swap % parts.count].0]
                #expect(DurationParser.parse(doubled.joined()) == nil)
            }
            // A bare number is seconds; a negative one is refused.
            #expect(DurationParser.parse("\(parts[0].2)") == .seconds(parts[0].2))
            #expect(DurationParser.parse("-\(parts[0].2 + 1)") == nil)
        }
    }

    // MARK: - Terminal text

    /// A model of `TerminalText.escape` written from its documentation, scalar by scalar.
    static func modelEscape(_ text: String, keepNewlines: Bool) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x0A: out += keepNewlines ? "\n" : "\\n"
            case 0x09: out += "\\t"
            case 0x0D: out += "\\r"
            case 0x00...0x1F, 0x7F: out += String(format: "\\x%02x", v)
            case 0x80...0x9F, 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
                out += String(format: "\\u%04x", v)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Escaping agrees with the documented model for any text, with and without kept newlines, and the bytes
    /// form agrees with the text form on valid UTF-8.
    @Test func terminalEscapingFollowsTheDocumentedModel() async {
        let extra = Gen<UInt32?>.element(of: [0x061C, 0x200E, 0x200F, 0x202A, 0x202D, 0x2066, 0x2069, 0x2067, 0x200D])
            .map { Unicode.Scalar($0!)! }
        let scalars = Gen.oneOf(Self.scalar, extra).array(of: 0...24)
        await propertyCheck(count: 500, input: scalars, Gen.bool) { scalars, keep in
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            let escaped = TerminalText.escape(text, keepNewlines: keep)
            #expect(escaped == Self.modelEscape(text, keepNewlines: keep))
            #expect(TerminalText.escape(bytes: Array(text.utf8), keepNewlines: keep) == escaped)
        }
    }

    /// Reads escaped text back: `\xHH` as the byte, `\n` `\t` `\r` as themselves, `\uHHHH` as the scalar's UTF-8,
    /// anything else as its UTF-8 (so only for inputs without backslashes).
    static func unescape(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var scalars = Substring(text).unicodeScalars[...]
        while let scalar = scalars.popFirst() {
            guard scalar == "\\", let kind = scalars.popFirst() else {
                out += Array(String(scalar).utf8)
                continue
            }
            switch kind {
            case "n": out.append(0x0A)
            case "t": out.append(0x09)
            case "r": out.append(0x0D)
            case "x", "u":
                let digits = kind == "x" ? 2 : 4
                let hex = String(scalars.prefix(digits).map(Character.init))
                scalars = scalars.dropFirst(digits)
                let value = UInt32(hex, radix: 16) ?? 0xFFFF_FFFF
                if kind == "x" {
                    out.append(UInt8(truncatingIfNeeded: value))
                } else {
                    out += Array(String(Unicode.Scalar(value).map(Character.init) ?? "?").utf8)
                }
            default: out += [0x5C] + Array(String(kind).utf8)
            }
        }
        return out
    }

    /// On arbitrary bytes (valid UTF-8, truncated and overlong sequences, stray continuation bytes, controls),
    /// `escape(bytes:)` shows nothing a terminal acts on, loses nothing (reading the escapes back gives the input),
    /// and agrees with `escape` on valid UTF-8 (Foundation's validation decides which inputs are valid).
    @Test func terminalEscapingOfBytesLosesNothingAndHidesEveryControl() async {
        let byte = zip(Gen.int(in: 0...3), Gen<UInt8>.value()).map { kind, raw -> UInt8 in
            let b =
                kind == 0 ? raw : kind == 1 ? 0x80 | (raw & 0x3F) : kind == 2 ? 0xC0 | (raw & 0x3F) : 0x20 + raw % 0x5F
            return b == 0x5C ? 0x5D : b
        }
        await propertyCheck(count: 500, input: byte.array(of: 0...32)) { bytes in
            let escaped = TerminalText.escape(bytes: bytes)
            #expect(!escaped.unicodeScalars.contains { TerminalText.isUnsafe($0) })
            #expect(Self.unescape(escaped) == bytes, "\(escaped)")
            if let valid = String(validating: bytes, as: UTF8.self) {
                #expect(escaped == TerminalText.escape(valid))
            } else {
                #expect(escaped.contains("\\x"))
            }
        }
    }
}

extension String {
    /// `self` (decimal digits) plus `value`, in exact decimal arithmetic.
    fileprivate func addingDecimal(_ value: UInt64) -> String {
        var digits = self.utf8.map { Int($0) - 48 }.reversed().map { $0 }
        var carry = value
        var index = 0
        while carry > 0 || index < digits.count {
            if index == digits.count { digits.append(0) }
            let sum = UInt64(digits[index]) + carry % 10
            digits[index] = Int(sum % 10)
            carry = carry / 10 + sum / 10
            index += 1
        }
        return String(digits.reversed().map { Character(UnicodeScalar(UInt8(48 + $0))) })
    }
}
