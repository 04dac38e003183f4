/// A reply to a request: exactly one of `result` and `error` is present.
public struct Reply<Result: Codable & Sendable>: Sendable, Codable {
    public var id: RequestID?
    public var result: Result?
    public var error: RunvoyError?

    public init(id: RequestID?, result: Result) {
        self.id = id
        self.result = result
        self.error = nil
    }

    public init(id: RequestID?, error: RunvoyError) {
        self.id = id
        self.result = nil
        self.error = error
    }
}

/// The members every reply or event frame may carry, used to route a frame before decoding it fully.
public struct FrameHead: Sendable, Decodable {
    public var id: RequestID?
    public var event: String?
    public var error: RunvoyError?
}
