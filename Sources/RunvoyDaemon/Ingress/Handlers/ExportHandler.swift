import RunvoyKit
import RunvoyStore

/// `export`: every execution the caller may see, since a time, oldest first, as events (for a SIEM). It streams
/// in a task of its own, like `logs`, a page of the history at a time.
struct ExportHandler: MethodHandler {
    static let method = Method.export.rawValue
    static let params = ParamsRule.optional(default: ExportParams())
    /// Executions read from the history per query.
    static let pageSize = 500

    func handle(_ params: ExportParams, context: RequestContext) async throws -> Outcome<NoParams> {
        try context.require(.viewOwn, or: .viewAll)
        let scope = Authorizer.historyScope(context.caller, context.config)
        let untilMs = WallClock.milliseconds()
        let activity = context.activity
        activity.attach()
        return .stream {
            defer { activity.detach() }
            do {
                let count = try await Self.send(since: params.sinceMs, until: untilMs, ownerUid: scope, context)
                try await context.reply(ExportResult(count: count, untilMs: untilMs))
            } catch let error as StoreError {
                context.logger.error("export failed", metadata: ["error": "\(error)"])
                try? await context.reply(error: RunvoyError(.internalError, "the execution history cannot be read"))
            } catch {
                // The client went away; nothing more to send.
            }
        }
    }

    /// Sends the executions as `export` events; returns how many.
    private static func send(
        since sinceMs: Int64?, until untilMs: Int64, ownerUid: UInt32?, _ context: RequestContext
    ) async throws -> Int {
        let store = context.executions.store
        var after: (createdAtMs: Int64, id: String)?
        var count = 0
        while true {
            let page = try store.exportPage(
                after: after, sinceMs: sinceMs, untilMs: untilMs, ownerUid: ownerUid, limit: pageSize)
            for info in page {
                let execution = context.withLiveState(info).bounded(.single)
                try await context.sink.send(ExportEvent(id: context.id, execution: execution))
            }
            count += page.count
            guard page.count == pageSize, let last = page.last else { return count }
            after = (last.createdAtMs, last.executionId)
        }
    }
}
