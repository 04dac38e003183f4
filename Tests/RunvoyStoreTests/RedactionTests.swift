import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyStore

struct RedactionTests {
    static func streamed(_ set: RedactionSet, _ text: [UInt8], cuts: [Int]) -> [UInt8] {
        let redactor = StreamRedactor(set)
        var out: [UInt8] = []
        var offset = 0
        for cut in (cuts.map { $0 % (text.count + 1) } + [text.count]).sorted() where cut >= offset {
            out += text[offset..<cut].withUnsafeBytes { redactor.feed($0) }
            offset = cut
        }
        return out + redactor.finish()
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains {
            haystack[$0..<($0 + needle.count)].elementsEqual(needle)
        }
    }

    @Test func anyChunkingRedactsLikeTheWholeStream() async {
        // A small alphabet makes secrets, their prefixes and overlaps common in the generated output.
        let byte = Gen<UInt8?>.element(of: Array("abAB+/=%2".utf8)).map { $0! }
        let secret = byte.array(of: 6...12)
        let secrets = secret.array(of: 1...3)
        let pieces = zip(Gen.int(in: 0...6), byte.array(of: 0...12)).array(of: 0...12)
        let cuts = Gen.int(in: 0...400).array(of: 0...20)
        await propertyCheck(count: 400, input: secrets, pieces, cuts) { values, pieces, cuts in
            let named = values.enumerated().map { (name: "s\($0.offset)", value: $0.element) }
            let set = RedactionSet(secrets: named)
            // Every form of every secret that is searched for.
            let forms = named.flatMap { secret in
                RedactionSet.forms(of: secret.value).filter { $0.count >= min(6, secret.value.count) }
            }
            // Output: filler interleaved with secrets in any of their forms.
            var text: [UInt8] = []
            for (which, filler) in pieces {
                text += filler
                if which > 0 { text += forms[which % forms.count] }
            }
            let streamed = Self.streamed(set, text, cuts: cuts)
            #expect(streamed == set.redact(text))
            // And the result holds no form of any secret.
            for form in forms {
                #expect(!Self.contains(streamed, form), "\(form) in \(streamed)")
            }
        }
    }

    @Test func valuesAndTheirEncodingsAreReplacedByTheirName() {
        let value = Array("AKIA-example/secret+value".utf8)
        let set = RedactionSet(secrets: [(name: "aws-key", value: value)])
        let marker = "[secret:aws-key]"
        func redacted(_ text: String) -> String { String(decoding: set.redact(Array(text.utf8)), as: UTF8.self) }
        #expect(redacted("key=AKIA-example/secret+value;") == "key=\(marker);")
        let base64 = Base64.encode(value)
        #expect(!redacted("token: \(base64)").contains(String(base64.dropFirst(2).dropLast(4))))
        #expect(redacted("token: \(base64)").contains(marker))
        // Inside a longer base64 text, at another alignment.
        let shifted = Base64.encode(Array("xy".utf8) + value + Array("z".utf8))
        #expect(redacted(shifted).contains(marker))
        let urlSafe = shifted.replacing("+", with: "-").replacing("/", with: "_")
        #expect(redacted(urlSafe).contains(marker))
        #expect(redacted("u=AKIA-example%2Fsecret%2Bvalue&x") == "u=\(marker)&x")
        #expect(redacted("u=AKIA-example%2fsecret%2bvalue&x") == "u=\(marker)&x")
        #expect(redacted("nothing to see") == "nothing to see")
    }

    @Test func aValueSplitAcrossManyChunksIsStillCaught() {
        let set = RedactionSet(secrets: [(name: "db", value: Array("hunter2hunter2".utf8))])
        let text = Array("password is hunter2hunter2, ok\n".utf8)
        let oneByteAtATime = Self.streamed(set, text, cuts: Array(0...text.count))
        #expect(String(decoding: oneByteAtATime, as: UTF8.self) == "password is [secret:db], ok\n")
    }

    @Test func everyReadHoldsBackTheSameTailWhateverItHolds() {
        let value = Array("wJalrXUtnFEMI".utf8)
        let set = RedactionSet(secrets: [(name: "aws", value: value)])
        #expect(set.holdLength == 3 * 32 + 1)
        let redactor = StreamRedactor(set, idleFlush: .milliseconds(20))
        // The start of the value and a harmless prompt are held back alike: what comes out, and when, says
        // nothing about whether the held bytes begin a secret.
        let text = Array(String(repeating: "x", count: 200).utf8) + Array("key=wJalr".utf8)
        let released = text.withUnsafeBytes { redactor.feed($0, now: 0) }
        #expect(released == Array(text.prefix(text.count - set.holdLength)))
        #expect(redactor.deadline == 20_000_000)
        // Nothing before the idle delay; everything held after it.
        #expect(redactor.expire(now: 19_999_999).isEmpty)
        #expect(redactor.expire(now: 20_000_000) == Array(text.dropFirst(released.count)))
        #expect(redactor.deadline == nil)
        // A value that arrives whole within the delay is replaced.
        let second = Array("key=wJalr".utf8)
        #expect(second.withUnsafeBytes { redactor.feed($0, now: 30_000_000) }.isEmpty)
        #expect(Array("XUtnFEMI!\n".utf8).withUnsafeBytes { redactor.feed($0, now: 35_000_000) }.isEmpty)
        #expect(redactor.finish() == Array("key=[secret:aws]!\n".utf8))
    }

    /// The oracle of issue 10: for two secrets of the same length and any output that contains neither, the
    /// redactor releases the same bytes at the same steps. Inputs are made of pieces of both secrets' forms, so
    /// prefixes of one or the other are common at the end of a read.
    @Test func whatIsReleasedAndWhenDoesNotDependOnTheSecret() async {
        let byte = Gen<UInt8?>.element(of: Array("abAB+/=%2".utf8)).map { $0! }
        let secret = byte.array(of: 14...14)
        // Each event: a step to wait (0 = the same step), then a piece of output (which form, how much of it,
        // filler after it), or a quiet step when the form index is negative.
        let event = zip(Gen.int(in: 0...3), Gen.int(in: -2...17), Gen.int(in: 0...40), byte.array(of: 0...5))
        await propertyCheck(count: 400, input: secret, secret, Gen.int(in: 6...14), event.array(of: 1...40)) {
            a, b, length, events in
            // Two secrets of the same length.
            let (a, b) = (Array(a.prefix(length)), Array(b.prefix(length)))
            guard a != b else { return }
            let sets = [a, b].map { RedactionSet(secrets: [(name: "s", value: $0)]) }
            let forms = RedactionSet.forms(of: a) + RedactionSet.forms(of: b)
            var reads: [(step: Int, bytes: [UInt8])] = []
            var step = 0
            for (wait, which, cut, filler) in events {
                step += wait
                guard which >= 0 else { continue }
                let form = forms[which % forms.count]
                reads.append((step, Array(form.prefix(cut % (form.count + 1))) + filler))
            }
            let whole = reads.flatMap(\.bytes)
            // Only outputs that contain neither secret in any form.
            guard sets.allSatisfy({ $0.redact(whole) == whole }) else { return }
            let releases = sets.map { set -> [(step: Int, count: Int)] in
                let redactor = StreamRedactor(set, idleFlush: .nanoseconds(2))
                var released: [(step: Int, count: Int)] = []
                var index = 0
                for now in 0...(step + 3) {
                    let expired = redactor.expire(now: Int64(now))
                    if !expired.isEmpty { released.append((now, expired.count)) }
                    while index < reads.count && reads[index].step == now {
                        let out = reads[index].bytes.withUnsafeBytes { redactor.feed($0, now: Int64(now)) }
                        if !out.isEmpty { released.append((now, out.count)) }
                        index += 1
                    }
                }
                let rest = redactor.finish()
                if !rest.isEmpty { released.append((step + 4, rest.count)) }
                return released
            }
            #expect(releases[0].map(\.step) == releases[1].map(\.step))
            #expect(releases[0].map(\.count) == releases[1].map(\.count))
            #expect(releases[0].map(\.count).reduce(0, +) == whole.count)
        }
    }

    /// Review of issue 10: glibc's memmem took longer or shorter depending on which byte pairs the secret's forms
    /// hold, so CPU time told about the secret. Matching now does the same work per byte for any secret of a given
    /// length: the same groups of forms, each with the same number of forms, and the same hold-back.
    @Test func theWorkPerByteDependsOnlyOnTheSecretsLengths() async {
        let secret = Gen<UInt8>.value().array(of: 40...40)
        await propertyCheck(count: 200, input: secret, secret, Gen.int(in: 6...40)) { a, b, length in
            let sets = [a, b].map { RedactionSet(secrets: [(name: "s", value: Array($0.prefix(length)))]) }
            #expect(sets[0].groupMembers.map(\.count) == sets[1].groupMembers.map(\.count))
            #expect(sets[0].patterns.count == sets[1].patterns.count)
            #expect(sets[0].holdLength == sets[1].holdLength)
        }
    }

    /// Second review: comparing only a hash of the forms' first bytes made output that held the start of a form
    /// (a partial guess) cost a byte-by-byte comparison. Now only a whole form's hash leads to one.
    @Test func outputHoldingOnlyTheStartOfAFormCostsNoComparison() async {
        let secret = Gen<UInt8>.value().array(of: 8...40)
        let cut = Gen.int(in: 1...200)
        await propertyCheck(count: 200, input: secret, Gen<UInt8>.value().array(of: 8...60), cut) { value, long, cut in
            // A short and a long secret: the start of the long one's forms, as long as the short one's forms or more.
            let set = RedactionSet(secrets: [
                (name: "short", value: Array(value.prefix(8))), (name: "long", value: long + value),
            ])
            var text: [UInt8] = []
            for form in RedactionSet.forms(of: long + value) {
                text += Array("..".utf8) + Array(form.prefix(max(1, min(form.count - 1, cut % form.count + 1))))
            }
            guard set.redact(text) == text else { return }  // no whole form by chance
            #expect(set.processCounting(text, limit: text.count).comparisons == 0)
        }
    }

    /// `printf %s "$S" | base64 -w0` ends in a character that holds the value's last bits; at another offset the
    /// first character does too. Each such character is part of what is replaced, in both alphabets.
    @Test func base64CharactersWithSomeOfTheValuesBitsAreReplacedToo() async {
        let value = Gen<UInt8>.value().array(of: 6...40)
        let before = Gen<UInt8>.value().array(of: 0...5)
        let after = Gen<UInt8>.value().array(of: 0...5)
        await propertyCheck(count: 300, input: value, before, after) { value, before, after in
            let set = RedactionSet(secrets: [(name: "k", value: value)])
            let encoded = Base64.encode(before + value + after)
            // The characters made only of `before`'s bits, and those made only of `after`'s bits or padding.
            let head = encoded.prefix(8 * before.count / 6)
            let tailStart = (8 * (before.count + value.count) + 5) / 6
            let tail = Substring(encoded.dropFirst(tailStart))
            for text in [encoded, encoded.replacing("+", with: "-").replacing("/", with: "_")] {
                let out = String(decoding: set.redact(Array(text.utf8)), as: UTF8.self)
                let url = text != encoded
                func alphabet(_ s: Substring) -> String {
                    url ? String(s).replacing("+", with: "-").replacing("/", with: "_") : String(s)
                }
                // The replaced span covers every character with a bit of the value; a neighbour may be taken
                // along only when its own bits happen to match, which is rare and never leaks the value.
                #expect(out.contains("[secret:k]"))
                let marker = out.range(of: "[secret:k]")!
                #expect(alphabet(head).hasPrefix(out[..<marker.lowerBound]))
                #expect(alphabet(tail).hasSuffix(out[marker.upperBound...]))
            }
        }
    }

    @Test func theExampleFromTheIssueLeavesNoCharacterOfTheValue() {
        let value = Array("hunter2-token".utf8)  // 13 bytes: not a multiple of 3
        let set = RedactionSet(secrets: [(name: "t", value: value)])
        for prefix in ["", "x", "xy"] {
            let encoded = Base64.encode(Array(prefix.utf8) + value)
            let out = String(decoding: set.redact(Array(encoded.utf8)), as: UTF8.self)
            let head = encoded.prefix(8 * prefix.utf8.count / 6)
            let padding = String(repeating: "=", count: encoded.filter { $0 == "=" }.count)
            #expect(out == head + "[secret:t]" + padding)
        }
    }

    @Test func aStreamMadeOfSecretsIsRedactedWhole() {
        let value = Array("0123456789abcdef".utf8)
        let set = RedactionSet(secrets: [(name: "k", value: value)])
        let text = [UInt8]((0..<16384).flatMap { _ in value + [10] })
        let redactor = StreamRedactor(set)
        var out = text.withUnsafeBytes { redactor.feed($0) }
        out += redactor.finish()
        #expect(out == [UInt8]((0..<16384).flatMap { _ in Array("[secret:k]\n".utf8) }))
    }
}

extension RedactionTests {
    @Test func noSecretsHoldNothingBackAndPassEverythingThrough() {
        let none = RedactionSet(secrets: [])
        #expect(none.holdLength == 0)
        let text = Array("nothing to hide here\n".utf8)
        #expect(Self.streamed(none, text, cuts: [3, 9]) == text)
        // An empty value is no secret either.
        #expect(RedactionSet(secrets: [("empty", [])]).holdLength == 0)
    }

    @Test func aOneByteValueHasBase64FormsOnlyWhereABase64CharacterHoldsNothingButItsBits() {
        // Behind one byte of filler no base64 character is made of the value's bits alone: that alignment
        // gives no form; the other two give one in each alphabet, beside the value and its two URL encodings.
        let forms = RedactionSet.forms(of: Array("x".utf8))
        #expect(forms.first == Array("x".utf8))
        #expect(forms.count == 1 + 2 * 2 + 2)
    }
}
