import Foundation
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/PROTOCOL.md (errors): params that do not fit their method are `bad_request` with a message naming the
/// member and what it should be. Each case decodes real JSON the way the router does (`Frame.decode`) and checks
/// the words a client author reads.
@Suite struct ParamsDecodingTests {
    struct Inner: Decodable { var name: String }
    struct Sample: Decodable {
        var flag: Bool?
        var ratio: Double?
        var id: RequestID?
        var table: [String: String]?
        var inner: Inner?
        var list: [String]?
    }

    static func brief(_ json: String) -> String {
        let bytes = Array(json.utf8)
        do {
            _ = try bytes.withUnsafeBytes { try Frame.decode(Sample.self, from: $0) }
            return "decoded"
        } catch {
            return ParamsDecoding.brief(error)
        }
    }

    @Test(arguments: [
        (#"{"flag": "yes"}"#, "member 'flag' must be true or false"),
        (#"{"ratio": "half"}"#, "member 'ratio' must be a number"),
        (#"{"id": true}"#, "member 'id' must be a string or a whole number within the signed 64-bit range"),
        (#"{"table": 3}"#, "member 'table' must be an object"),
        (#"{"list": {}}"#, "member 'list' must be an array"),
        (#"{"inner": {}}"#, "member 'inner.name' is missing"),
        (#"{"inner": {"name": null}}"#, "member 'inner.name' must be a string, not null"),
        (#"{"list": ["a", 1]}"#, "member 'list[1]' must be a string"),
        ("{", "it is not valid JSON"),
    ])
    func aMismatchNamesTheMemberAndWhatItMustBe(json: String, message: String) {
        #expect(Self.brief(json) == message, "\(json)")
    }

    @Test func anErrorThatIsNotADecodingErrorReadsAsInvalidJSON() {
        struct Other: Error {}
        #expect(ParamsDecoding.brief(Other()) == "it is not valid JSON")
        #expect(!ParamsDecoding.isUnknownValue(Other()))
    }
}
