import Foundation
import FuzzSupport
import RunvoyKit

/// A request frame's payload as the daemon decodes it (Sources/runvoyd/Ingress/Routing: `Router` reads the
/// envelope with `Frame.decode(RequestEnvelope.self, ...)`, then `ParamsDecoding` reads
/// `ParamsContainer<Params>` for the method's params type, and the `stdin` and `secrets_set` handlers decode their
/// base64). Checks, besides "no crash":
/// - params that decode encode and decode back to the same value (what the daemon acts on is what the request
///   says, whatever Codable paths a type takes: signals given as numbers, optional members);
/// - the request's id, echoed in frames the daemon builds by hand (`RequestID.jsonLiteral`), reads back as the
///   same id: a string id cannot break out of its JSON string.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let payload = UnsafeRawBufferPointer(start: data, count: size)
    guard let envelope = try? Frame.decode(RequestEnvelope.self, from: payload) else { return 0 }
    if let id = envelope.id { checkEcho(id) }
    guard let name = envelope.method else { return 0 }
    // The params type of each method, as MethodTable's handlers declare it; methods that take none never read
    // their params.
    switch Method(rawValue: name) {
    case .hello: check(HelloParams.self, payload)
    case .exec: check(ExecParams.self, payload)
    case .stdin:
        if let data = check(StdinParams.self, payload)?.data { _ = Base64.decode(data) }
    case .signal: check(SignalParams.self, payload)
    case .list: check(ListParams.self, payload)
    case .status: check(ExecutionRef.self, payload)
    case .logs: check(LogsParams.self, payload)
    case .attach: check(AttachParams.self, payload)
    case .kill: check(KillParams.self, payload)
    case .cancel: check(CancelParams.self, payload)
    case .explain: check(ExplainParams.self, payload)
    case .secretsSet:
        if let params = check(SecretSetParams.self, payload) {
            _ = (SecretName.isValid(params.name), Base64.decode(params.value))
        }
    case .secretsRemove, .secretsGet:
        if let params = check(SecretRef.self, payload) { _ = SecretName.isValid(params.name) }
    case .backup: check(BackupParams.self, payload)
    case .export: check(ExportParams.self, payload)
    case .resize: check(TerminalParams.self, payload)
    case .trace: check(TraceParams.self, payload)
    case .editOpen: check(EditOpenParams.self, payload)
    case .editSave:
        if let content = check(EditSaveParams.self, payload)?.content { _ = Base64.decode(content) }
    case .approvals: check(ApprovalsParams.self, payload)
    case .approve: check(ApproveParams.self, payload)
    case .deny: check(DenyParams.self, payload)
    case .grant: check(GrantParams.self, payload)
    case .revoke: check(RevokeParams.self, payload)
    case .requestGrant: check(RequestGrantParams.self, payload)
    case .playbookShow: check(PlaybookRef.self, payload)
    case .playbookRun: check(PlaybookRunParams.self, payload)
    case .whoami, .capabilities, .users, .reload, .secretsList, .locks, .health, .playbookList, .schedules, nil: break
    }
    return 0
}

/// Decodes the params as the daemon does; when they decode, checks that they survive a round trip.
@discardableResult
func check<Params: Codable & Equatable & Sendable>(_: Params.Type, _ payload: UnsafeRawBufferPointer) -> Params? {
    guard let container = try? Frame.decode(ParamsContainer<Params>.self, from: payload), let params = container.params
    else { return nil }
    let again: Params?
    do {
        let encoded = try Frame.payload(Request(id: .number(1), method: .hello, params: params))
        again = try encoded.withUnsafeBytes { try Frame.decode(ParamsContainer<Params>.self, from: $0) }.params
    } catch {
        fatalError("\(Params.self) \(params) decoded but does not encode and decode again: \(error)")
    }
    guard again == params else {
        fatalError("\(Params.self) \(params) reads back as \(String(describing: again))")
    }
    return params
}

/// An id written into a hand-built frame reads back, as JSON, as the same id.
func checkEcho(_ id: RequestID) {
    let frame = Array("{\"id\":\(id.jsonLiteral)}".utf8)
    let echoed = try? frame.withUnsafeBytes { try Frame.decode(FrameHead.self, from: $0) }.id
    guard echoed == id else {
        fatalError("id \(String(reflecting: id)) is echoed as \(String(decoding: frame, as: UTF8.self))")
    }
}

@main enum FuzzRequestMain {
    static func main() { FuzzDriver.run { data, size in fuzz(data!, size) } }
}
