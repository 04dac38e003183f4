import ArgumentParser
import RunvoyKit

/// The shape every simple subcommand shares: connect, call one method, print its result as JSON (`--json`) or
/// for people, and turn a failure into a message and exit status 125 (see `CtlExit`).
@discardableResult
func remoteCall<P: Codable & Sendable, R: Codable & Sendable>(
    _ global: GlobalOptions, _ method: Method, params: P, result: R.Type, json: Bool,
    human: (R) throws -> Void
) throws -> R {
    let value: R
    do {
        let client = try RunvoyClient(socketPath: global.socketPath)
        value = try client.call(method, params: params, result: result)
    } catch {
        complain(error.description)
        throw ExitCode(CtlExit.code(for: error))
    }
    if json {
        print(try HistoryFormat.json(value))
    } else {
        try human(value)
    }
    return value
}
