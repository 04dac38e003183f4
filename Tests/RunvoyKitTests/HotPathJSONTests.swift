import Foundation
import PropertyBased
import RunvoyKit
import Testing

/// The client's hand-built requests and small JSON reader must agree with Foundation's JSON exactly.
struct HotPathJSONTests {
    static let specials = ["", "é", "日本", "a\"b\\c", "\n\t\u{1}", "😀", "/x/y"]

    /// ASCII strings, control characters included, and now and then one of `specials`.
    static let text = Gen<UInt8>.value(in: 0...127).array(of: 0...12).map { bytes -> String in
        if let first = bytes.first, first % 4 == 0 { return specials[Int(first) % specials.count] }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func execRequestsDecodeLikeTheirCodableForm() async {
        await propertyCheck(count: 200, input: Self.text.array(of: 1...5), Self.text, Gen.int(in: 0...100_000)) {
            argv, word, number in
            let params = ExecParams(
                argv: argv, executor: word.isEmpty ? nil : word, env: number % 2 == 0 ? ["K_\(number)": word] : nil,
                timeoutMs: number % 3 == 0 ? Int64(number) : nil, detach: number % 5 == 0 ? true : nil,
                killOnDisconnect: number % 7 == 0 ? false : nil, stdin: true, binaryOutput: true,
                wait: number % 11 == 0 ? nil : number % 2 == 1, waitTimeoutMs: number % 13 == 0 ? Int64(number) : nil)
            let frame = RequestText.exec(id: 1, params)
            let payload = Data(frame.dropFirst(4))
            #expect(frame.withUnsafeBytes { Int(Frame.length(from: $0)) } == payload.count)
            let decoded = try? JSONDecoder().decode(Request<ExecParams>.self, from: payload)
            #expect(decoded?.params == params)
            #expect(decoded?.method == "exec")
            #expect(decoded?.id == .number(1))
        }
    }

    @Test func stdinAndSignalRequestsDecodeLikeTheirCodableForm() async throws {
        await propertyCheck(count: 100, input: Gen<UInt8>.value().array(of: 0...400)) { bytes in
            let frame = bytes.withUnsafeBytes { RequestText.stdin(id: 9, data: $0) }
            let decoded = try? JSONDecoder().decode(Request<StdinParams>.self, from: Data(frame.dropFirst(4)))
            #expect(decoded?.params?.data.flatMap { Data(base64Encoded: $0) } == Data(bytes))
        }
        let eof = try JSONDecoder().decode(
            Request<StdinParams>.self, from: Data(RequestText.stdin(id: 3, data: nil).dropFirst(4)))
        #expect(eof.params == StdinParams(data: nil, eof: true))
        let signal = try JSONDecoder().decode(
            Request<SignalParams>.self, from: Data(RequestText.signal(id: 4, name: "INT").dropFirst(4)))
        #expect(signal.params == SignalParams(signal: "INT"))
    }

    static func same(_ ours: JSONValue, _ theirs: Any) -> Bool {
        switch ours {
        case .null: return theirs is NSNull
        case .bool(let value): return (theirs as? Bool) == value
        case .number(let value): return (theirs as? NSNumber)?.doubleValue == value
        case .string(let value): return (theirs as? String) == value
        case .array(let items):
            guard let other = theirs as? [Any], other.count == items.count else { return false }
            return zip(items, other).allSatisfy { same($0, $1) }
        case .object(let members):
            guard let other = theirs as? [String: Any], other.count == members.count else { return false }
            return members.allSatisfy { key, value in other[key].map { same(value, $0) } ?? false }
        }
    }

    @Test func readsWhatTheDaemonSendsLikeFoundationDoes() async throws {
        await propertyCheck(count: 200, input: Self.text, Gen.int(in: -1000...1_000_000)) { word, number in
            let exit = ExitEvent(
                id: .number(Int64(number)), executionId: word, exitCode: number % 2 == 0 ? Int32(number % 256) : nil,
                signal: number % 2 == 0 ? nil : 9, timedOut: number % 3 == 0, durationUsec: Int64(number))
            let started = StartedEvent(id: .string(word), executionId: word, executor: word, runAs: word, pid: 7)
            let error = Reply<NoParams>(id: .number(1), error: RunvoyError(.spawnFailed, word, reason: "not_found"))
            for data in [
                try? JSONEncoder().encode(exit), try? JSONEncoder().encode(started), try? JSONEncoder().encode(error),
            ] {
                guard let data else { continue }
                let ours = data.withUnsafeBytes { JSONValue.parse($0) }
                let theirs = try? JSONSerialization.jsonObject(with: data)
                #expect(ours != nil)
                if let ours, let theirs { #expect(Self.same(ours, theirs)) }
            }
        }
    }

    /// Each accessor answers for its own kind of value only.
    @Test func theAccessorsAnswerOnlyForTheirOwnKind() throws {
        let text = #"{"a": "x", "b": true, "n": null, "i": 3, "f": 1.5, "l": [1]}"#
        let value = try #require(Array(text.utf8).withUnsafeBytes { JSONValue.parse($0) })
        #expect(value["a"]?.string == "x" && value["a"]?.bool == nil && value["a"]?.int == nil)
        #expect(value["b"]?.bool == true && value["b"]?.string == nil)
        #expect(value["n"]?.isNull == true && value["i"]?.isNull == false)
        #expect(value["i"]?.int == 3 && value["f"]?.int == nil)
        #expect(value["l"] == .array([.number(1)]) && value["l"]?["a"] == nil)
        #expect(value["missing"] == nil)
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "{\"a\":1} x", "\"\\q\"", "tru", "{\"a\" 1}", "\"\u{1}\""])
    func rejectsMalformedJSON(text: String) {
        #expect(Array(text.utf8).withUnsafeBytes { JSONValue.parse($0) } == nil)
    }
}
