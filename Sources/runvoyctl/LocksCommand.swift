import ArgumentParser
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `runvoyctl locks`: the named locks, who holds them and who waits.
struct LocksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locks",
        abstract: "Show the named locks: their mode, who holds them and who waits for them.",
        discussion: "Executors declare locks (`locks:` in the configuration); every execution holds its executor's"
            + " locks for its whole life.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .locks, params: NoParams(), result: LocksResult.self, json: json) { result in
            if result.locks.isEmpty { printLine("no locks are declared or held") }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for lock in result.locks {
                let declared = lock.executors.isEmpty ? "" : " (executors: \(lock.executors.joined(separator: ", ")))"
                printLine("\(lock.name): \(lock.mode)\(declared)")
                for holder in lock.holders { printLine("  held by " + Self.describe(holder, now: now)) }
                for waiter in lock.waiters { printLine("  waiting: " + Self.describe(waiter, now: now)) }
            }
        }
    }

    static func describe(_ holder: LockHolder, now: Int64) -> String {
        let what = holder.executionId ?? (holder.uid == nil ? "" : "(starting)")
        var text = holder.uid == nil ? "another user's execution" : "\(what) \(holder.user)"
        if let executor = holder.executor { text += " on \(executor)" }
        if holder.shared { text += " shared" }
        if let since = holder.sinceMs {
            let (held, overflow) = now.subtractingReportingOverflow(since)
            text += " for " + DurationParser.format(.seconds(overflow ? 0 : max(0, held) / 1000))
        }
        return text
    }
}
