/// When a replay plays each chunk: at its own time, except that no pause between chunks lasts longer than
/// `maxPauseUsec` (the rest of a longer pause is skipped, as asciinema's idle time limit does).
public struct ReplayPacing: Sendable {
    public let maxPauseUsec: Int64?
    private var lastUsec: Int64 = 0
    private var playedUsec: Int64 = 0

    public init(maxPauseUsec: Int64?) {
        self.maxPauseUsec = maxPauseUsec
    }

    /// The time, on the replay's clock, at which the chunk printed `tUsec` after the start plays.
    public mutating func playbackUsec(_ tUsec: Int64) -> Int64 {
        let pause = max(0, tUsec - lastUsec)
        lastUsec = max(lastUsec, tUsec)
        playedUsec += min(pause, maxPauseUsec ?? pause)
        return playedUsec
    }
}
