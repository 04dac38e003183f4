/// Whole request frames built as text, for the client's hot path (an `exec`, its stdin and its signals) where
/// Foundation's JSONEncoder would cost more than the work itself. The tests check every builder against
/// the Codable encoding of the same request.
public enum RequestText {
    /// `exec` with numeric id `id`.
    public static func exec(id: Int64, _ params: ExecParams) -> [UInt8] {
        var members = ["\"argv\":[" + params.argv.map(JSONText.quoted).joined(separator: ",") + "]"]
        if let executor = params.executor { members.append("\"executor\":" + JSONText.quoted(executor)) }
        if let env = params.env {
            let pairs = env.sorted { $0.key < $1.key }.map { JSONText.quoted($0.key) + ":" + JSONText.quoted($0.value) }
            members.append("\"env\":{" + pairs.joined(separator: ",") + "}")
        }
        if let timeout = params.timeoutMs { members.append("\"timeout_ms\":\(timeout)") }
        if let detach = params.detach { members.append("\"detach\":\(detach)") }
        if let kill = params.killOnDisconnect { members.append("\"kill_on_disconnect\":\(kill)") }
        if let stdin = params.stdin { members.append("\"stdin\":\(stdin)") }
        if let binary = params.binaryOutput { members.append("\"binary_output\":\(binary)") }
        if let tty = params.tty { members.append("\"tty\":" + terminal(tty)) }
        if let wait = params.wait { members.append("\"wait\":\(wait)") }
        if let waitTimeout = params.waitTimeoutMs { members.append("\"wait_timeout_ms\":\(waitTimeout)") }
        if let reason = params.reason { members.append("\"reason\":" + JSONText.quoted(reason)) }
        if let breakGlass = params.breakGlass { members.append("\"break_glass\":\(breakGlass)") }
        return frame(id: id, method: .exec, params: "{" + members.joined(separator: ",") + "}")
    }

    /// `stdin` carrying `data` (base64-encoded here), or the end of input when `data` is nil.
    public static func stdin(id: Int64, data: UnsafeRawBufferPointer?) -> [UInt8] {
        guard let data else { return frame(id: id, method: .stdin, params: "{\"eof\":true}") }
        let prefix = Array(
            "{\"v\":\(RunvoyProtocol.currentVersion),\"id\":\(id),\"method\":\"stdin\",\"params\":{\"data\":\"".utf8)
        let suffix = Array("\"}}".utf8)
        let payload = prefix.count + Base64.encodedLength(data.count) + suffix.count
        var bytes = Frame.header(length: payload)
        bytes.reserveCapacity(4 + payload)
        bytes += prefix
        let start = bytes.count
        bytes += [UInt8](repeating: 0, count: Base64.encodedLength(data.count))
        _ = bytes.withUnsafeMutableBytes {
            Base64.encode(data, into: UnsafeMutableRawBufferPointer(rebasing: $0[start...]))
        }
        bytes += suffix
        return bytes
    }

    /// `signal` with a signal name, for the attached execution or, with `executionID`, any of the caller's.
    public static func signal(id: Int64, name: String, executionID: String? = nil) -> [UInt8] {
        var params = "{\"signal\":" + JSONText.quoted(name)
        if let executionID { params += ",\"execution_id\":" + JSONText.quoted(executionID) }
        return frame(id: id, method: .signal, params: params + "}")
    }

    /// `resize` of the attached execution's terminal.
    public static func resize(id: Int64, rows: Int, cols: Int) -> [UInt8] {
        frame(id: id, method: .resize, params: terminal(TerminalParams(rows: rows, cols: cols)))
    }

    private static func terminal(_ tty: TerminalParams) -> String {
        var members = ["\"rows\":\(tty.rows)", "\"cols\":\(tty.cols)"]
        if let term = tty.term { members.append("\"term\":" + JSONText.quoted(term)) }
        if let id = tty.executionId { members.append("\"execution_id\":" + JSONText.quoted(id)) }
        return "{" + members.joined(separator: ",") + "}"
    }

    private static func frame(id: Int64, method: Method, params: String) -> [UInt8] {
        let text =
            "{\"v\":\(RunvoyProtocol.currentVersion),\"id\":\(id),\"method\":\"\(method.rawValue)\",\"params\":\(params)}"
        let payload = Array(text.utf8)
        return Frame.header(length: payload.count) + payload
    }
}
