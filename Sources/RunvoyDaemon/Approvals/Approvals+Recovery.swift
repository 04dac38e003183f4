import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// At start-up: the requests the previous daemon left. Due ones expire; pending ones that needed their client
/// (a terminal, standard input) are withdrawn, since it went with the daemon; other pending ones wait on,
/// detached, with their timers; approved ones (the daemon stopped between the last approval and the start) start
/// now, through the same checks as any approved request. A request whose audit record the previous daemon did
/// not live to write, and a break-glass run it did not start, end unrun. The approved ones start last and side by
/// side: one that waits in the queue (its requester can fill the executor's slot right after the start) holds up
/// neither the other requests' timers nor the other starts. Returns when every start has.
extension Approvals {
    func recover(config: DaemonConfig) async {
        let left: [ApprovalRecord]
        do throws(StoreError) {
            left = try store.approvals(states: [.pending, .approved, .breakGlass], limit: 100_000)
        } catch {
            logger.error("cannot read the requests for approval", metadata: ["error": "\(error)"])
            return
        }
        let now = WallClock.milliseconds()
        var approved: [ApprovalTicket] = []
        for record in left {
            if !record.recorded {
                abandon(record.id, reason: "the daemon stopped before its request was recorded", config: config)
            } else if record.state == .breakGlass {
                // Nothing when it ran; one the daemon stopped before starting is no run to review.
                abandon(record.id, reason: "the daemon stopped before it started", config: config)
            } else if record.state == .approved {
                approved.append(ApprovalTicket(record: record))
            } else if now >= record.expiresAtMs {
                await expire(record.id, config: config)
            } else if record.needsClient {
                await withdraw(
                    record.id, reason: "its client's terminal or input went with the daemon", config: config)
            } else {
                scheduleExpiry(record, config: config)
            }
        }
        if !left.isEmpty { logger.notice("requests for approval recovered", metadata: ["count": "\(left.count)"]) }
        await withDiscardingTaskGroup { group in
            for ticket in approved {
                guard let launch = launcher(for: ticket) else { continue }
                group.addTask { await launch(ticket, config) }
            }
        }
    }
}
