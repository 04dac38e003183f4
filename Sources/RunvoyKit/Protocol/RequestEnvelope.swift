/// The fields every request carries. Method parameters are decoded separately from `params`.
public struct RequestEnvelope: Sendable, Codable {
    public var v: Int?
    public var id: RequestID?
    public var method: String?

    public init(v: Int, id: RequestID, method: String) {
        self.v = v
        self.id = id
        self.method = method
    }
}

/// A complete request with typed parameters, as a client sends it.
public struct Request<Params: Codable & Sendable>: Sendable, Codable {
    public var v: Int
    public var id: RequestID
    public var method: String
    public var params: Params?

    public init(id: RequestID, method: Method, params: Params?, version: Int = RunvoyProtocol.currentVersion) {
        self.v = version
        self.id = id
        self.method = method.rawValue
        self.params = params
    }
}

/// The `params` member of a request, decoded on its own once the method is known.
public struct ParamsContainer<Params: Decodable & Sendable>: Decodable, Sendable {
    public var params: Params?
}

/// Parameters for methods that take none.
public struct NoParams: Codable, Sendable, Equatable {
    public init() {}
}
