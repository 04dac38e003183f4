/// What a backup with `--include-key` puts in the archive.
extension SecretStore {
    /// The master key's 32 bytes. Only `backup` with `include_key` asks for them, after its audit record.
    public var keyBytes: [UInt8] { key.withUnsafeBytes { Array($0) } }
}
