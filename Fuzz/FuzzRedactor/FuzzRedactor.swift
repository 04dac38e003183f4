import Foundation
import FuzzSupport
import RunvoyKit
import RunvoyStore

/// The output redactor (`RedactionSet` and `StreamRedactor`) on random secrets and random output that holds
/// them, in any of the forms docs/SECURITY.md promises to catch, cut into random reads. Checks, besides
/// "no crash":
/// - no secret leaks: between the `[secret:NAME]` markers, the redacted output contains no secret's value, no
///   base64 form (either alphabet, any alignment, the characters made only of the value's bits) and no URL-encoded
///   form (either case) of a value — every form the redactor looks for (those of at least `min(6, length)` bytes);
/// - the stream's output, read by read, is the whole output redacted at once.
///
/// Input, from the end: the number of secrets and their lengths, the sizes of the reads, and what to put where
/// in the output; from the front: the values and the bytes around them (see `Seeds` for inputs built this way).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    var secrets: [(name: String, value: [UInt8])] = []
    for index in 0..<input.int(in: 1...4) {
        let value = input.bytes(input.int(in: 1...40))
        if !value.isEmpty { secrets.append(("S\(index)", value)) }
    }
    var reads: [Int] = []
    for _ in 0..<input.int(in: 0...15) { reads.append(input.int(in: 1...300)) }
    guard !secrets.isEmpty else { return 0 }
    let output = makeOutput(&input, secrets)

    let set = RedactionSet(secrets: secrets)
    let redactor = StreamRedactor(set)
    var streamed: [UInt8] = []
    var offset = 0
    var turn = 0
    while offset < output.count {
        let count = min(output.count - offset, reads.isEmpty ? output.count : reads[turn % reads.count])
        streamed += output.withUnsafeBytes {
            redactor.feed(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count]))
        }
        offset += count
        turn += 1
    }
    streamed += redactor.finish()

    for (name, value) in secrets {
        for form in forms(of: value) {
            for segment in segments(of: streamed, markers: secrets.map { Array("[secret:\($0.name)]".utf8) })
            where contains(segment, form) {
                fatalError("\(name)'s form \(form) of value \(value) is in the redacted output \(streamed)")
            }
        }
    }
    let whole = set.redact(output)
    guard streamed == whole else {
        fatalError("read by read \(streamed), at once \(whole), from \(output) in reads of \(reads)")
    }
    return 0
}

/// Output made of filler from the input and, between it, secrets in one of their forms, whole or cut short.
func makeOutput(_ input: inout FuzzInput, _ secrets: [(name: String, value: [UInt8])]) -> [UInt8] {
    var output: [UInt8] = []
    for _ in 0..<input.int(in: 0...8) {
        output += input.bytes(input.int(in: 0...48))
        let value = secrets[input.int(in: 0...secrets.count - 1)].value
        var piece: [UInt8]
        switch input.int(in: 0...4) {
        case 0: piece = value
        case 1:
            // Base64 of the value inside other bytes (any alignment), in either alphabet.
            let before = input.bytes(input.int(in: 0...4))
            let after = input.bytes(input.int(in: 0...4))
            piece = base64(before + value + after, urlAlphabet: input.bool())
        case 2: piece = urlEncoded(value, upper: true)
        case 3: piece = urlEncoded(value, upper: false)
        default: piece = base64(value, urlAlphabet: input.bool())
        }
        // Sometimes only the start of it: a near miss.
        if input.int(in: 0...3) == 0 { piece = Array(piece.prefix(input.int(in: 0...piece.count))) }
        output += piece
    }
    return output + input.rest()
}

/// Every form of `value` the redactor must catch, computed from their definitions with Foundation's base64.
func forms(of value: [UInt8]) -> [[UInt8]] {
    var forms = [value, urlEncoded(value, upper: true), urlEncoded(value, upper: false)]
    for alignment in 0..<3 {
        let encoded = base64([UInt8](repeating: 0, count: alignment) + value, urlAlphabet: false)
        // The characters whose 6 bits all come from the value.
        let first = (8 * alignment + 5) / 6
        let end = (8 * alignment + 8 * value.count) / 6
        guard end > first else { continue }
        let middle = Array(encoded[first..<end])
        forms += [middle, toURLAlphabet(middle)]
    }
    return forms.filter { $0.count >= min(6, value.count) }
}

func base64(_ bytes: [UInt8], urlAlphabet: Bool) -> [UInt8] {
    let standard = Array(Data(bytes).base64EncodedString().utf8)
    return urlAlphabet ? toURLAlphabet(standard) : standard
}

func toURLAlphabet(_ text: [UInt8]) -> [UInt8] {
    text.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: "-") : $0 == UInt8(ascii: "/") ? UInt8(ascii: "_") : $0 }
}

/// RFC 3986 percent-encoding: unreserved characters as they are, every other byte as `%XX`.
func urlEncoded(_ value: [UInt8], upper: Bool) -> [UInt8] {
    let digits = Array((upper ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
    var out: [UInt8] = []
    for byte in value {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.append(byte)
        default: out += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
        }
    }
    return out
}

/// The output between markers: a form found in a segment was in the command's output and got through; one that
/// straddles a marker was made by the marker's own text.
func segments(of output: [UInt8], markers: [[UInt8]]) -> [ArraySlice<UInt8>] {
    var segments: [ArraySlice<UInt8>] = []
    var start = 0
    var index = 0
    while index < output.count {
        if let marker = markers.first(where: { output[index...].starts(with: $0) }) {
            segments.append(output[start..<index])
            index += marker.count
            start = index
        } else {
            index += 1
        }
    }
    segments.append(output[start...])
    return segments
}

func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    var index = haystack.startIndex
    while index + needle.count <= haystack.endIndex {
        if haystack[index..<index + needle.count].elementsEqual(needle) { return true }
        index += 1
    }
    return false
}

@main enum FuzzRedactorMain {
    static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
}
