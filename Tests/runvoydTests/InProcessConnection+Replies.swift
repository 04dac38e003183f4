import Foundation

extension InProcessConnection {
    /// Whether `frame` is a reply: a JSON object with `result` or `error` and no `event` (a `step` event carries an
    /// `error` of its own, so matching the text `"error":` alone would end a read at an event).
    static func isReply(_ frame: String) -> Bool {
        guard let data = frame.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return object["event"] == nil && (object["result"] != nil || object["error"] != nil)
    }

    /// Reads frames until the reply, or until `stop` says a frame is the one wanted; `stop` sees every frame before
    /// it is checked for a reply, so it may also act on events as they come. Returns every frame read, the one that
    /// ended the read last.
    @discardableResult
    func framesUntilReply(stoppingAt stop: (String) throws -> Bool = { _ in false }) async throws -> [String] {
        var frames: [String] = []
        while true {
            let frame = try await nextFrame()
            frames.append(frame)
            if try stop(frame) || Self.isReply(frame) { return frames }
        }
    }

    /// Reads frames until the reply and returns it.
    @discardableResult
    func reply() async throws -> String {
        try await framesUntilReply().last ?? ""
    }
}
