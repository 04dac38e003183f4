/// The methods of protocol v1.
public enum Method: String, Sendable, CaseIterable {
    /// Version negotiation: reports the daemon version and the protocol versions it speaks.
    case hello
    /// What the daemon sees of the caller.
    case whoami
    /// Start a command on an executor and stream its output.
    case exec
    /// Bytes for, or the end of, the standard input of the execution started on this connection.
    case stdin
    /// Send a signal to the process group of the execution started on this connection.
    case signal
    /// A new window size for an execution's terminal.
    case resize
    /// Executions from the history, newest first, with filters.
    case list
    /// One execution from the history.
    case status
    /// An execution's stored output, optionally followed live until it ends.
    case logs
    /// Send a signal (TERM by default) to a running execution by id.
    case kill
    /// The named locks: their mode, holders and waiters.
    case locks
    /// Take a waiting execution out of the queue by id; it never runs.
    case cancel
    /// Watch a running execution live (its stored output, then live output until it ends); its owner may also
    /// write to it (`write`).
    case attach
    /// Whether a command would be allowed, and the rule that decides.
    case explain
    /// The executors and command rules the caller may use.
    case capabilities
    /// The role bindings in force and each user's roles.
    case users
    /// Apply the configuration file now (like SIGHUP), reporting the outcome.
    case reload
    /// Set or rotate a secret (the value travels in the request, never on a command line).
    case secretsSet = "secrets_set"
    /// The secrets the caller may manage: names, descriptions, owners, which executors use them.
    case secretsList = "secrets_list"
    /// Remove a secret.
    case secretsRemove = "secrets_rm"
    /// Read a value back (administrators, only when `secrets.admin_read` is on; audited).
    case secretsGet = "secrets_get"
    /// An archive of the history, the stored output and the sealed secrets, streamed (administrators).
    case backup
    /// Every visible execution's record since a time, oldest first, streamed (for a SIEM).
    case export
    /// Whether the daemon is healthy: journal, history database, free space, master key, watchdog, configuration.
    case health
    /// The daemon's own journal records for one execution id or request id.
    case trace
    /// Read a file as an executor's user for `runvoyctl edit`: its content, hash and a token for `edit_save`.
    case editOpen = "edit_open"
    /// Write an edited file back as the executor's user, atomically, unless it changed since `edit_open`.
    case editSave = "edit_save"
    /// Requests for approval the caller may see: its own, those it may answer, or (`view_all`) everyone's.
    case approvals
    /// Approve a request for approval, bound to the digest the approver was shown.
    case approve
    /// Deny a request for approval, with a comment.
    case deny
    /// Give a user a role or an executor for a limited time (administrators).
    case grant
    /// End a temporary grant before its time.
    case revoke
    /// Ask for a role or an executor for a limited time: a request for approval, as `exec` makes one.
    case requestGrant = "request_grant"
    /// The playbooks the caller may run, with their parameters.
    case playbookList = "playbook_list"
    /// One playbook: its parameters, steps, locks, approval and schedule.
    case playbookShow = "playbook_show"
    /// Run a playbook's steps in order, each an execution streamed as `exec`'s, grouped under a run id.
    case playbookRun = "playbook_run"
    /// The playbooks' schedules (systemd timers) the caller may see, with their next run and last result.
    case schedules
}
