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

    enum CodingKeys: String, CodingKey {
        case id, result, error
    }

    /// `id` is always written: `null` when the request's id could not be read (a frame that is not a request,
    /// an oversized frame, an idle connection).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encodeIfPresent(result, forKey: .result)
        try c.encodeIfPresent(error, forKey: .error)
    }
}

/// The members every reply or event frame may carry, used to route a frame before decoding it fully.
public struct FrameHead: Sendable, Decodable {
    public var id: RequestID?
    public var event: String?
    public var error: RunvoyError?
}
