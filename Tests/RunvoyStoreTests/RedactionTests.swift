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
            let forms = named.flatMap { RedactionSet.forms(of: $0.value) }
            // Output: filler interleaved with secrets in every form.
            var text: [UInt8] = []
            for (which, filler) in pieces {
                text += filler
                if which < forms.count && which % 2 == 0 { text += forms[which] }
            }
            #expect(Self.streamed(set, text, cuts: cuts) == set.redact(text))
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

    @Test func onlyWhatCouldStartASecretIsHeldBack() {
        let set = RedactionSet(secrets: [(name: "aws", value: Array("wJalrXUtnFEMI".utf8))])
        let redactor = StreamRedactor(set)
        // An interactive prompt is shown at once: nothing at its end could begin a secret.
        let prompt = Array("Enter a value: ".utf8)
        #expect(prompt.withUnsafeBytes { redactor.feed($0) } == prompt)
        // The start of a value waits for the rest, then goes out as the marker.
        #expect(Array("key=wJalr".utf8).withUnsafeBytes { redactor.feed($0) } == Array("key=".utf8))
        #expect(Array("XUtnFEMI!\n".utf8).withUnsafeBytes { redactor.feed($0) } == Array("[secret:aws]!\n".utf8))
        #expect(redactor.finish().isEmpty)
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
