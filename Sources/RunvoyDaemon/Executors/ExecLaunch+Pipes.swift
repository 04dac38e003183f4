import Glibc
import NIOCore
import NIOPosix
import RunvoyStore

/// The daemon's ends of a command's pipes, as channels on the event loop.
struct ExecutionPipes: Sendable {
    let stdout: NIOAsyncChannel<ByteBuffer, Never>
    /// nil with a terminal, whose one stream is `stdout`.
    let stderr: NIOAsyncChannel<ByteBuffer, Never>?
    /// nil when the command reads /dev/null.
    let stdin: (any Channel)?
    /// The stored copies' own redaction (executors with `record_input` and secrets); nil where the stored output
    /// is what the channel reads.
    var storedStdout: StoredOutputRedaction? = nil
    var storedStderr: StoredOutputRedaction? = nil
}

extension ExecLaunch {
    /// Hands the daemon's pipe ends to NIO, all three at once. On failure every descriptor is closed (with a
    /// terminal, its control descriptor too).
    /// With a non-empty `redaction`, each output pipe's first handler takes the secrets out of what it reads;
    /// with `holdStored` too (the executor records input), the stored copy is redacted without the idle timer.
    func attachPipes(
        _ spawned: SpawnedProcess, redaction: RedactionSet?, holdStored: Bool = false
    ) async throws(LaunchFailure.Stage)
        -> ExecutionPipes
    {
        let group = group
        let active = redaction.flatMap { $0.isEmpty ? nil : $0 }
        let storedOut = holdStored ? active.map(StoredOutputRedaction.init) : nil
        let storedErr = holdStored && spawned.stderrFD != nil ? active.map(StoredOutputRedaction.init) : nil
        async let out = Self.settle {
            try await Self.reader(spawned.stdoutFD, group: group, redaction: active, storage: storedOut)
        }
        async let err = Self.settle { () async throws -> NIOAsyncChannel<ByteBuffer, Never>? in
            guard let fd = spawned.stderrFD else { return nil }
            return try await Self.reader(fd, group: group, redaction: active, storage: storedErr)
        }
        async let input = Self.settle { try await Self.writer(spawned.stdinFD, group: group) }
        let results = (await out, await err, await input)
        if case .success(let o) = results.0, case .success(let e) = results.1, case .success(let i) = results.2 {
            return ExecutionPipes(stdout: o, stderr: e, stdin: i, storedStdout: storedOut, storedStderr: storedErr)
        }
        // A channel that was created owns its descriptor; close it through NIO, the others directly.
        if let control = spawned.terminalFD { close(control) }
        var failure: any Error = ChannelError.inappropriateOperationForState
        switch results.0 {
        case .success(let channel): try? await channel.channel.close()
        case .failure(let error):
            close(spawned.stdoutFD)
            failure = error
        }
        switch results.1 {
        case .success(let channel): try? await channel?.channel.close()
        case .failure(let error):
            if let fd = spawned.stderrFD { close(fd) }
            failure = error
        }
        switch results.2 {
        case .success(let channel): try? await channel?.close()
        case .failure(let error):
            if let fd = spawned.stdinFD { close(fd) }
            failure = error
        }
        throw .pipes(failure)
    }

    private static func reader(
        _ fd: Int32, group: any EventLoopGroup, redaction: RedactionSet?, storage: StoredOutputRedaction?
    ) async throws -> NIOAsyncChannel<ByteBuffer, Never> {
        try await NIOPipeBootstrap(group: group)
            .channelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 262_144)
            )
            .takingOwnershipOfDescriptor(input: fd) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let redaction {
                        try channel.pipeline.syncOperations.addHandler(RedactingHandler(redaction, storage: storage))
                    }
                    return try NIOAsyncChannel<ByteBuffer, Never>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8)))
                }
            }
    }

    private static func writer(_ fd: Int32?, group: any EventLoopGroup) async throws -> (any Channel)? {
        guard let fd else { return nil }
        // Up to 4 MiB of input may wait here, so the connection keeps reading (and sees signals) while the
        // command is slow to read its input.
        return try await NIOPipeBootstrap(group: group)
            .channelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
            .takingOwnershipOfDescriptor(output: fd).get()
    }

    private static func settle<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }
}
