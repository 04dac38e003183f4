#ifndef RUNVOY_POSIX_H
#define RUNVOY_POSIX_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/resource.h>

/// Where in the child the spawn failed.
enum runvoy_spawn_stage {
    RUNVOY_STAGE_NONE = 0,
    RUNVOY_STAGE_SETSID = 1,
    RUNVOY_STAGE_SETGROUPS = 2,
    RUNVOY_STAGE_SETGID = 3,
    RUNVOY_STAGE_SETUID = 4,
    RUNVOY_STAGE_CHDIR = 5,
    RUNVOY_STAGE_DUP = 6,
    RUNVOY_STAGE_EXEC = 8,
    RUNVOY_STAGE_FORK = 9,
    RUNVOY_STAGE_TTY = 10,
    RUNVOY_STAGE_CGROUP = 11,
    RUNVOY_STAGE_RLIMIT = 12,
    RUNVOY_STAGE_PDEATHSIG = 13,
};

/// The resources `runvoy_rlimit_setting` names (glibc's are macros Swift does not import).
static const int RUNVOY_RLIMIT_NOFILE = RLIMIT_NOFILE;
static const int RUNVOY_RLIMIT_NPROC = RLIMIT_NPROC;
static const int RUNVOY_RLIMIT_CORE = RLIMIT_CORE;

/// One resource limit the child sets (soft and hard) before it execs.
struct runvoy_rlimit_setting {
    int resource;
    unsigned long long value;
};

struct runvoy_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int change_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    /// The slave of a pseudo-terminal to make the controlling terminal of the child's new session (right after
    /// setsid, before the identity changes), or -1. With a terminal the three stdio descriptors are usually it.
    int tty_fd;
    /// An open (O_WRONLY) `cgroup.procs` of the execution's cgroup, or -1: the child writes itself into it first
    /// thing, so nothing it starts is ever outside that cgroup.
    int cgroup_procs_fd;
    /// The execution's cgroup directory (O_DIRECTORY), or -1: where clone3 can (x86_64), the child is created in
    /// it (CLONE_INTO_CGROUP) and does not write `cgroup_procs_fd`. A write to cgroup.procs takes the kernel's
    /// cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period (about 10 ms on an idle host).
    int cgroup_dir_fd;
    /// A login uid, as decimal text, the child writes to /proc/self/loginuid (which gives it, and everything it
    /// starts, a new audit session id: the subreaper containment's tag), or NULL. A failure is ignored.
    const char *loginuid;
    /// Resource limits set (soft = hard) in the child before it execs.
    const struct runvoy_rlimit_setting *rlimits;
    size_t nrlimits;
    /// A signal the child gets when the thread that started it ends (PR_SET_PDEATHSIG, set after the identity
    /// changes, which clear it), or 0 for none. `parent_pid` is the daemon's pid: a child whose parent went before
    /// the signal was set fails at once (nothing would ever send it).
    int parent_death_signal;
    pid_t parent_pid;
};

/// The outcome of a spawn: the pid, or the stage and errno at which the child failed before exec.
struct runvoy_spawn_result {
    pid_t pid;
    int stage;
    int error;
};

/// Starts a child with vfork semantics (the parent's memory is shared and the caller waits only until the
/// child has exec'd or failed): the child resets signals, starts a new session, drops to the requested
/// identity, enters the working directory, wires stdio, closes every other descriptor and execs.
/// On failure before exec the child has already exited and been reaped, and `stage`/`error` say why.
struct runvoy_spawn_result runvoy_spawn(const struct runvoy_spawn_request *request);

/// A new pseudo-terminal: `*master` (O_RDWR, O_NOCTTY, O_CLOEXEC, O_NONBLOCK) and its slave `*slave` (O_RDWR,
/// O_NOCTTY, O_CLOEXEC), the slave owned by `uid` with mode 0600 (so no other user, nor the tty group, can open
/// or write it) and the window `rows` x `cols`. Returns 0, or -1 with errno (nothing left open).
int runvoy_open_pty(int *master, int *slave, uid_t uid, unsigned short rows, unsigned short cols);

/// TIOCSWINSZ on the terminal open at `fd` (the kernel sends SIGWINCH to its foreground process group).
int runvoy_set_window_size(int fd, unsigned short rows, unsigned short cols);

/// TIOCGWINSZ: the window size of the terminal open at `fd`. Returns 0, or -1 with errno.
int runvoy_get_window_size(int fd, unsigned short *rows, unsigned short *cols);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process. 0 or -1 with errno.
int runvoy_set_child_subreaper(void);

/// Reaps the zombie children of this process that are not in `keep` (sorted ascending, `nkeep` of them): with a
/// subreaper, escaped processes of executions that exited. Returns how many were reaped.
int runvoy_reap_orphans(const pid_t *keep, size_t nkeep);

/// The live processes (not zombies, not this process, not `leader` itself) that belong to the execution whose
/// main process is `leader`: in its process group or session, descended from it, or (`audit_session` not
/// 0xffffffff) in that audit session. Fills at most `capacity` pids into `out`; returns how many there are (which
/// can be more than `capacity`), or -1 with errno when /proc cannot be read.
long runvoy_scope_members(pid_t leader, unsigned int audit_session, pid_t *out, size_t capacity);

/// Sends `sig` to every process `runvoy_scope_members` would list, each through a pidfd opened and checked against
/// the start time seen in the scan, so a pid freed and reused since the scan is never signalled. Returns how many
/// were signalled (the first `capacity` of their pids in `out`), or -1 with errno when /proc cannot be read.
long runvoy_scope_signal(pid_t leader, unsigned int audit_session, int sig, pid_t *out, size_t capacity);

/// The audit session id of `pid` (/proc/PID/sessionid), or 0xffffffff when it has none or cannot be read.
unsigned int runvoy_audit_session(pid_t pid);

/// The extended attribute `name` of `path` into `value` (at most `size` bytes): its length, or -1 with errno.
long runvoy_getxattr(const char *path, const char *name, void *value, size_t size);

/// pidfd_open(2); -1 with errno on failure.
int runvoy_pidfd_open(pid_t pid);

/// waitid(P_PIDFD, ...) blocking; fills exit code or signal. Returns 0 or -1 with errno.
int runvoy_pidfd_wait(int pidfd, int *exited, int *status);

/// Like runvoy_pidfd_wait, but leaves the process a zombie (WNOWAIT): its pid, and so its process group id, stay
/// reserved until runvoy_pidfd_wait reaps it, and a signal to the group can reach no other process meanwhile.
int runvoy_pidfd_wait_keeping(int pidfd, int *exited, int *status);

/// What an exited (not yet reaped) process and the children it waited for used, from the kernel's rusage.
struct runvoy_usage {
    long long user_usec, system_usec;
    /// ru_maxrss: the largest resident set of one of those processes.
    long long max_rss_bytes;
    /// ru_inblock and ru_oublock, in bytes (the kernel counts 512-byte units of block I/O).
    long long read_bytes, write_bytes;
};

/// The rusage of the exited process `pidfd` refers to, leaving it a zombie (waitid WNOWAIT). 0, or -1 with errno
/// (EAGAIN: it has not exited).
int runvoy_pidfd_usage(int pidfd, struct runvoy_usage *usage);

/// pidfd_send_signal(2).
int runvoy_pidfd_send_signal(int pidfd, int sig);

/// Grows a pipe's buffer (F_SETPIPE_SZ); returns the new size or -1.
int runvoy_set_pipe_size(int fd, int size);

/// pipe2(2) with O_CLOEXEC, plus O_NONBLOCK when `nonblocking` is set.
int runvoy_pipe_cloexec(int fds[2], int nonblocking);

/// eventfd(2) with EFD_CLOEXEC.
int runvoy_eventfd(void);

/// The peer credentials of a connected Unix socket (SO_PEERCRED).
int runvoy_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// memmem(3): the first occurrence of `needle` in `haystack`, or NULL (a GNU extension Swift's Glibc hides).
const void *runvoy_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len);

/// 1 when `path` is on a tmpfs (or ramfs), 0 when it is not, -1 with errno set when it cannot be checked.
int runvoy_is_tmpfs(const char *path);

/// stat(2) of each of `paths` as the user `uid` (primary group `gid`, supplementary `groups`) would see it: the
/// kernel checks search permission on every directory on the way, links followed, for that identity. Only the
/// calling thread's filesystem identity and groups are switched, once, for the duration of the call. Needs
/// CAP_SETUID and CAP_SETGID. Fills `infos[i]` and sets `errors[i]` to 0 or the errno of that stat (EACCES when
/// a directory on the way may not be searched). Returns 0, or -1 with errno when the identity could not be
/// switched. Aborts the process if the thread's own identity cannot be restored.
int runvoy_stat_as(const char *const *paths, size_t count, struct stat *infos, int *errors, uid_t uid, gid_t gid,
                   const gid_t *groups, size_t ngroups);

/// prctl(PR_SET_DUMPABLE, 0): no core dump, and no ptrace attach or /proc/PID/mem, environ, ... for processes
/// of the same uid. Returns 0 or -1 with errno.
int runvoy_set_nondumpable(void);

/// O_PATH, which Swift's Glibc does not export.
int runvoy_o_path(void);

/// 1 when the directory open at `fd` (O_PATH is enough) is on procfs, 0 when not, -1 when it cannot be checked.
int runvoy_is_procfs(int fd);

/// 1 when the file open at `fd` has an access ACL, 0 when it has none (or its file system has no ACLs), -1 when
/// it cannot be checked.
int runvoy_has_access_acl(int fd);
/// Opens a datagram socket connected to the journal at `path`, non-blocking, with a large send buffer.
/// Returns the descriptor or -errno.
int runvoy_journal_connect(const char *path);

/// Sends one entry already in the journal's native format on `fd` (from `runvoy_journal_connect`), waiting at
/// most `timeout_ms` (negative: no bound) for the journal to make room. An entry too large for one datagram goes
/// in a sealed memfd, as libsystemd does. Returns 0, -ETIMEDOUT when the bound passed, or another -errno.
int runvoy_journal_send(int fd, const void *entry, size_t length, int timeout_ms);

/// malloc_trim(0): returns the free pages of every malloc arena to the system. Returns 1 when memory was released.
int runvoy_malloc_trim(void);

/// Asks the kernel to reclaim the resident pages of this program's own read-only file mappings (its code and
/// constants: `madvise(MADV_PAGEOUT)`, Linux 5.4+); pages in use come back on their next touch. Returns the
/// bytes of mappings advised, or -errno (-EINVAL on a kernel without MADV_PAGEOUT).
long runvoy_page_out_executable(void);

/// Caps the C allocator's arenas at `count` (`mallopt(M_ARENA_MAX)`) unless MALLOC_ARENA_MAX is set in the
/// environment, which then wins. Call before threads start. Returns 1 when the cap was set.
int runvoy_limit_malloc_arenas(int count);

#endif
