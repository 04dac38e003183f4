import Foundation
import PropertyBased
import RunvoyKit
import Testing

struct MessageTests {
    @Test func execRequestEncodesWithSnakeCaseKeys() throws {
        let request = Request(
            id: .number(3), method: .exec,
            params: ExecParams(
                argv: ["terraform", "plan"], executor: "deploy", timeoutMs: 5000, killOnDisconnect: true))
        let object = try JSONSerialization.jsonObject(with: Data(try Frame.payload(request))) as? [String: Any]
        #expect(object?["v"] as? Int == 1)
        #expect(object?["id"] as? Int == 3)
        #expect(object?["method"] as? String == "exec")
        let params = object?["params"] as? [String: Any]
        #expect(params?["argv"] as? [String] == ["terraform", "plan"])
        #expect(params?["timeout_ms"] as? Int == 5000)
        #expect(params?["kill_on_disconnect"] as? Bool == true)
    }

    /// Who may approve, and what a grant asks for, as an approver is shown them.
    @Test func approversAndGrantRequestsReadAsAPersonSaysThem() {
        #expect(ApproverList().display == "no one")
        #expect(ApproverList(groups: ["sre", "dba"]).display == "groups sre, dba")
        #expect(
            ApproverList(users: ["bob"], groups: ["sre"], roles: ["admin"]).display
                == "roles admin; groups sre; users bob")
        #expect(
            GrantRequestSummary(role: "operator", executor: nil, forMs: 3_600_000).display == "role operator for 1h")
        #expect(
            GrantRequestSummary(role: nil, executor: "deploy", forMs: 90_000).display == "executor deploy for 1m30s")
        #expect(GrantRequestSummary(role: nil, executor: nil, forMs: 1000).display == "executor ? for 1s")
    }

    /// A daemon from before `stdin` (and the truncation flags) did not send them: they read as false.
    @Test func anApprovalRequestFromAnOlderDaemonReadsWithoutStdin() throws {
        let info = ApprovalInfo(
            id: "a1", kind: "exec", state: .pending, requesterUid: 1000, requester: "alice", executor: "deploy",
            runAs: "root", command: "terraform", argv: ["terraform", "apply"], cwd: "/srv", envKeys: ["PATH"],
            secrets: [], terminal: false, timeoutMs: nil, reason: nil, createdAtMs: 1, expiresAtMs: 2, required: 1,
            approvers: ApproverList(roles: ["admin"]), answers: [], digest: "d", decision: nil, mayAnswer: true,
            argvTruncated: true, envKeysTruncated: true, stdin: true)
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(info)) as? [String: Any])
        #expect(object["stdin"] as? Bool == true)
        for key in ["stdin", "argv_truncated", "env_keys_truncated"] { object.removeValue(forKey: key) }
        let old = try JSONDecoder().decode(ApprovalInfo.self, from: JSONSerialization.data(withJSONObject: object))
        var expected = info
        expected.stdin = false
        expected.argvTruncated = false
        expected.envKeysTruncated = false
        #expect(old == expected)
        #expect(old.isWhole)
    }

    @Test func requestIDsKeepTheirJSONType() throws {
        struct Holder: Codable { var id: RequestID }
        let number = try JSONDecoder().decode(Holder.self, from: Data(#"{"id":42}"#.utf8))
        let string = try JSONDecoder().decode(Holder.self, from: Data(#"{"id":"42"}"#.utf8))
        #expect(number.id == .number(42))
        #expect(string.id == .string("42"))
        #expect(String(decoding: try JSONEncoder().encode(string), as: UTF8.self) == #"{"id":"42"}"#)
        #expect(RequestID.string("a\"b").jsonLiteral == #""a\"b""#)
    }

    @Test func errorsCarryStableCodes() throws {
        let reply = Reply<NoParams>(id: .string("x"), error: RunvoyError(.commandNotAllowed, "no"))
        let object = try JSONSerialization.jsonObject(with: Data(try Frame.payload(reply))) as? [String: Any]
        let error = object?["error"] as? [String: Any]
        #expect(error?["code"] as? String == "command_not_allowed")
        #expect(error?["message"] as? String == "no")
    }

    @Test func outputFramesParseFastAndAgreeWithJSON() async {
        let ids = Gen.oneOf(
            Gen.int(in: -5...100_000).map { RequestID.number(Int64($0)) },
            Gen.letterOrNumber.string(of: 0...8).map { RequestID.string($0) })
        await propertyCheck(count: 200, input: Gen<UInt8>.value().array(of: 0...500), ids) { bytes, id in
            for stream in [OutputStreamKind.stdout, .stderr] {
                let idLiteral = Array(id.jsonLiteral.utf8)
                var frame = [UInt8](
                    repeating: 0, count: 4 + OutputFrame.payloadLength(idLiteral: idLiteral, count: bytes.count))
                let written = bytes.withUnsafeBytes { data in
                    frame.withUnsafeMutableBytes {
                        OutputFrame.writeFrame(stream: stream, idLiteral: idLiteral, data: data, into: $0)
                    }
                }
                #expect(written == frame.count)
                let payload = Array(frame.dropFirst(4))
                #expect(frame.withUnsafeBytes { Int(Frame.length(from: $0)) } == payload.count)
                // The general decoder reads the same thing.
                let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
                #expect(object?["event"] as? String == "output")
                #expect(object?["stream"] as? String == stream.rawValue)
                #expect(Data(base64Encoded: object?["data"] as? String ?? "x") == Data(bytes))
                // And the fast path finds the base64 text.
                let parsed = payload.withUnsafeBytes { OutputFrame.parseFast($0) }
                #expect(parsed?.stream == stream)
                if let parsed {
                    #expect(Base64.decode(String(decoding: payload[parsed.base64], as: UTF8.self)) == bytes)
                }
            }
        }
    }

    @Test func fastParserDeclinesOtherLayouts() {
        let other = Array(#"{"stream":"stdout","event":"output","id":1,"data":"aGk="}"#.utf8)
        #expect(other.withUnsafeBytes { OutputFrame.parseFast($0) } == nil)
        let escaped = Array(#"{"event":"output","stream":"stdout","id":"a\"b","data":"aGk="}"#.utf8)
        #expect(escaped.withUnsafeBytes { OutputFrame.parseFast($0) } == nil)
    }
}
