#define _GNU_SOURCE
#include "runvoy_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <stdio.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int move_fd(int from, int to) {
    if (from == to) {
        int flags = fcntl(from, F_GETFD);
        if (flags < 0) return -1;
        return fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
    }
    while (dup2(from, to) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

/* Runs in the vfork child, on the parent's stack and memory: only system calls, and the only memory it writes
   is the `failure` record the parent reads after the child has gone. */
static void child_main(const struct runvoy_spawn_request *r, volatile struct runvoy_spawn_result *failure,
                       const sigset_t *empty) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)sigaction(sig, &dfl, NULL);
    }
    /* glibc's sigaction refuses the two real-time signals it keeps for itself (32 and 33), and an ignored signal
       stays ignored across exec: reset those with the raw system call (the kernel's struct sigaction layout). */
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } kernel_default = {0};
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        (void)syscall(SYS_rt_sigaction, sig, &kernel_default, NULL, sizeof(kernel_default.mask));
    }
    (void)sigprocmask(SIG_SETMASK, empty, NULL);

    int stage = RUNVOY_STAGE_CGROUP;
    /* Into the execution's cgroup before anything else: from here on all it starts is in there too. */
    if (r->cgroup_procs_fd >= 0) {
        ssize_t written;
        do {
            written = write(r->cgroup_procs_fd, "0", 1);
        } while (written < 0 && errno == EINTR);
        if (written != 1) goto fail;
    }
    if (r->loginuid != NULL) {
        int fd = open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)write(fd, r->loginuid, strlen(r->loginuid));
            close(fd);
        }
    }
    stage = RUNVOY_STAGE_RLIMIT;
    for (size_t i = 0; i < r->nrlimits; i++) {
        struct rlimit limit = {(rlim_t)r->rlimits[i].value, (rlim_t)r->rlimits[i].value};
        if (setrlimit(r->rlimits[i].resource, &limit) < 0) goto fail;
    }
    stage = RUNVOY_STAGE_SETSID;
    if (setsid() < 0) goto fail;
    if (r->tty_fd >= 0) {
        /* The new session's controlling terminal: taken while still privileged, and only this pty. */
        stage = RUNVOY_STAGE_TTY;
        if (ioctl(r->tty_fd, TIOCSCTTY, 0) < 0) goto fail;
    }
    if (r->change_identity) {
        stage = RUNVOY_STAGE_SETGROUPS;
        if (setgroups(r->ngroups, r->groups) < 0) goto fail;
        stage = RUNVOY_STAGE_SETGID;
        if (setresgid(r->gid, r->gid, r->gid) < 0) goto fail;
        stage = RUNVOY_STAGE_SETUID;
        if (setresuid(r->uid, r->uid, r->uid) < 0) goto fail;
    }
    if (r->parent_death_signal > 0) {
        stage = RUNVOY_STAGE_PDEATHSIG;
        if (prctl(PR_SET_PDEATHSIG, (unsigned long)r->parent_death_signal, 0, 0, 0) < 0) goto fail;
        if (getppid() != r->parent_pid) {
            errno = ESRCH;
            goto fail;
        }
    }
    stage = RUNVOY_STAGE_CHDIR;
    if (chdir(r->cwd) < 0) goto fail;
    stage = RUNVOY_STAGE_DUP;
    if (move_fd(r->stdin_fd, 0) < 0) goto fail;
    if (move_fd(r->stdout_fd, 1) < 0) goto fail;
    if (move_fd(r->stderr_fd, 2) < 0) goto fail;
    /* Nothing but stdio crosses exec: not client sockets, not other executions' pipes. */
    (void)syscall(SYS_close_range, 3, ~0U, 0);
    stage = RUNVOY_STAGE_EXEC;
    execve(r->path, r->argv, r->envp);
fail:
    failure->stage = stage;
    failure->error = errno;
    _exit(127);
}

#if defined(__x86_64__)
/* long runvoy_clone3_vfork(struct clone_args *args, size_t size, void (*fn)(void *), void *arg): clone3, and in
   the child (on the stack the arguments give) fn(arg), which must not return; as glibc's clone3.S does. Returns
   the child's pid, or -errno. rdx and r8 survive the syscall; the child starts with the parent's registers. */
__asm__(".text\n"
        ".type runvoy_clone3_vfork,@function\n"
        "runvoy_clone3_vfork:\n"
        "    mov %rcx, %r8\n"
        "    mov $435, %eax\n" /* SYS_clone3 */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    ret\n"
        "1:  xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r8, %rdi\n"
        "    call *%rdx\n"
        "    mov $231, %eax\n" /* exit_group(127): fn does not return */
        "    mov $127, %edi\n"
        "    syscall\n"
        "    hlt\n"
        ".size runvoy_clone3_vfork, .-runvoy_clone3_vfork\n");
long runvoy_clone3_vfork(void *args, size_t size, void (*fn)(void *), void *arg) __attribute__((visibility("hidden")));
#endif

/* The kernel's struct clone_args (linux/sched.h, whose macros clash with sched.h's). */
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
        cgroup;
};

struct child_call {
    const struct runvoy_spawn_request *request;
    volatile struct runvoy_spawn_result *result;
    const sigset_t *mask;
};

static void child_entry(void *argument) {
    struct child_call *call = argument;
    child_main(call->request, call->result, call->mask);
    _exit(127);
}

/* vfork, but created in the cgroup `r->cgroup_dir_fd` (clone3 with CLONE_INTO_CGROUP, on a stack of its own).
   Returns the pid, -1 with errno, or -2 when clone3 or CLONE_INTO_CGROUP is not there (then vfork). */
static pid_t vfork_into_cgroup(const struct runvoy_spawn_request *r, volatile struct runvoy_spawn_result *result,
                               const sigset_t *mask) {
#if defined(__x86_64__)
    static volatile int unsupported = 0;
    if (r->cgroup_dir_fd < 0 || unsupported) return -2;
    size_t size = 256 << 10;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    struct runvoy_spawn_request inside = *r;
    inside.cgroup_procs_fd = -1; /* created in it already */
    struct child_call call = {&inside, result, mask};
    struct clone3_args args;
    memset(&args, 0, sizeof(args));
    args.flags = 0x100 /* CLONE_VM */ | 0x4000 /* CLONE_VFORK */ | 0x200000000ULL /* CLONE_INTO_CGROUP */;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = size;
    args.cgroup = (uint64_t)r->cgroup_dir_fd;
    long pid = runvoy_clone3_vfork(&args, sizeof(args), child_entry, &call);
    munmap(stack, size);
    if (pid == -ENOSYS || pid == -E2BIG || (pid == -EINVAL && r->cgroup_procs_fd >= 0)) {
        unsupported = 1;
        return -2;
    }
    if (pid < 0) {
        errno = (int)-pid;
        return -1;
    }
    return (pid_t)pid;
#else
    (void)r;
    (void)result;
    (void)mask;
    return -2;
#endif
}

struct runvoy_spawn_result runvoy_spawn(const struct runvoy_spawn_request *r) {
    volatile struct runvoy_spawn_result result = {0, RUNVOY_STAGE_NONE, 0};
    sigset_t all, old, empty;
    sigfillset(&all);
    sigemptyset(&empty);
    /* No signal handler of the daemon may run in the child while it shares the daemon's memory. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork_into_cgroup(r, &result, &empty);
    if (pid == -2) {
        pid = vfork();
        if (pid == 0) {
            child_main(r, &result, &empty);
            _exit(127);
        }
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    struct runvoy_spawn_result out = {pid, result.stage, result.error};
    if (pid < 0) {
        out.pid = -1;
        out.stage = RUNVOY_STAGE_FORK;
        out.error = saved;
        return out;
    }
    if (out.stage != RUNVOY_STAGE_NONE) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        out.pid = -1;
    }
    return out;
}

int runvoy_set_window_size(int fd, unsigned short rows, unsigned short cols) {
    struct winsize size;
    memset(&size, 0, sizeof(size));
    size.ws_row = rows;
    size.ws_col = cols;
    return ioctl(fd, TIOCSWINSZ, &size);
}

int runvoy_get_window_size(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) < 0) return -1;
    *rows = size.ws_row;
    *cols = size.ws_col;
    return 0;
}

int runvoy_open_pty(int *master, int *slave, uid_t uid, unsigned short rows, unsigned short cols) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    int s = -1;
    char name[64];
    if (fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK) < 0) goto fail;
    if (grantpt(m) < 0 || unlockpt(m) < 0) goto fail;
    /* TIOCGPTPEER opens the slave through the master, so no path lookup can be raced; ptsname is the fallback. */
    s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        if (ptsname_r(m, name, sizeof(name)) != 0) goto fail;
        s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) goto fail;
    }
    if (fchown(s, uid, (gid_t)-1) < 0 || fchmod(s, 0600) < 0) goto fail;
    if (runvoy_set_window_size(m, rows, cols) < 0) goto fail;
    *master = m;
    *slave = s;
    return 0;
fail:;
    int saved = errno;
    if (s >= 0) close(s);
    close(m);
    errno = saved;
    return -1;
}

long runvoy_getxattr(const char *path, const char *name, void *value, size_t size) {
    return (long)getxattr(path, name, value, size);
}

int runvoy_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

static int pid_kept(pid_t pid, const pid_t *keep, size_t nkeep) {
    size_t low = 0, high = nkeep;
    while (low < high) {
        size_t middle = (low + high) / 2;
        if (keep[middle] == pid) return 1;
        if (keep[middle] < pid) low = middle + 1; else high = middle;
    }
    return 0;
}

int runvoy_reap_orphans(const pid_t *keep, size_t nkeep) {
    int reaped = 0;
    /* Any zombie child at all? Cheap, and the common answer is no. */
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return 0;
    if (!pid_kept(info.si_pid, keep, nkeep)) {
        int status;
        if (waitpid(info.si_pid, &status, WNOHANG) > 0) reaped++;
    }
    /* The others: by /proc, each child of ours that is a zombie and not kept. */
    DIR *proc = opendir("/proc");
    if (proc == NULL) return reaped;
    pid_t self = getpid();
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
        char path[64], buffer[512];
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buffer, sizeof buffer - 1);
        close(fd);
        if (n <= 0) continue;
        buffer[n] = 0;
        char *end = strrchr(buffer, ')');
        char state;
        int pid = atoi(buffer), ppid;
        if (end == NULL || sscanf(end + 1, " %c %d", &state, &ppid) != 2) continue;
        if (ppid != self || state != 'Z' || pid_kept(pid, keep, nkeep)) continue;
        int status;
        if (waitpid(pid, &status, WNOHANG) > 0) reaped++;
    }
    closedir(proc);
    return reaped;
}

unsigned int runvoy_audit_session(pid_t pid) {
    char path[64], buffer[32];
    snprintf(path, sizeof path, "/proc/%d/sessionid", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0xffffffffu;
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return 0xffffffffu;
    buffer[n] = 0;
    return (unsigned int)strtoul(buffer, NULL, 10);
}

struct proc_entry {
    pid_t pid, ppid, pgrp, session;
    unsigned long long start_time;
    char member;
};

static int entry_by_ppid(const void *a, const void *b) {
    pid_t x = ((const struct proc_entry *)a)->ppid, y = ((const struct proc_entry *)b)->ppid;
    return (x > y) - (x < y);
}

/* Reads /proc/PID/stat: parent, process group, session and start time (clock ticks since boot). 0, or -1 when the
   process is gone, a zombie, or the file cannot be parsed. */
static int read_proc_stat(const char *pid, struct proc_entry *e) {
    char path[64], buffer[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return -1;
    buffer[n] = 0;
    char *end = strrchr(buffer, ')');
    char state;
    e->pid = (pid_t)atoi(buffer);
    if (end == NULL ||
        sscanf(end + 1, " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &state,
               &e->ppid, &e->pgrp, &e->session, &e->start_time) != 5)
        return -1;
    return state == 'Z' || state == 'X' ? -1 : 0;
}

/* Every live process but this one, with the execution's marked; `*count` of them in a malloc'd array sorted by
   parent, or NULL with errno. Members: the leader's process group or session, re-parented processes of its audit
   session, and everything descended from those, found breadth-first through the parent-sorted array: O(n log n)
   in the number of processes (a fork bomb's scan must not be quadratic). */
static struct proc_entry *scope_scan(pid_t leader, unsigned int audit_session, size_t *count) {
    DIR *proc = opendir("/proc");
    if (proc == NULL) return NULL;
    size_t n = 0, room = 256;
    struct proc_entry *entries = malloc(room * sizeof *entries);
    if (entries == NULL) {
        closedir(proc);
        errno = ENOMEM;
        return NULL;
    }
    pid_t self = getpid();
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
        struct proc_entry e = {0};
        if (read_proc_stat(entry->d_name, &e) != 0 || e.pid == self) continue;
        /* A process whose parent died was re-parented to this subreaper: only those need their tag read (the
           rest of the execution descends from the leader or from one of them). */
        e.member = e.pid == leader || e.pgrp == leader || e.session == leader ||
                   (audit_session != 0xffffffffu && e.ppid == self && runvoy_audit_session(e.pid) == audit_session);
        if (n == room) {
            struct proc_entry *grown = realloc(entries, 2 * room * sizeof *entries);
            if (grown == NULL) break;
            entries = grown;
            room *= 2;
        }
        entries[n++] = e;
    }
    closedir(proc);
    qsort(entries, n, sizeof *entries, entry_by_ppid);
    /* Breadth-first from the members: each one's children are a run of the sorted array. */
    pid_t *queue = malloc((n + 1) * sizeof *queue);
    if (queue == NULL) {
        free(entries);
        errno = ENOMEM;
        return NULL;
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (entries[i].member) queue[tail++] = entries[i].pid;
    while (head < tail) {
        pid_t parent = queue[head++];
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (entries[mid].ppid < parent) lo = mid + 1; else hi = mid;
        }
        for (size_t i = lo; i < n && entries[i].ppid == parent; i++) {
            if (entries[i].member) continue;
            entries[i].member = 1;
            queue[tail++] = entries[i].pid;
        }
    }
    free(queue);
    *count = n;
    return entries;
}

long runvoy_scope_members(pid_t leader, unsigned int audit_session, pid_t *out, size_t capacity) {
    size_t count = 0;
    struct proc_entry *entries = scope_scan(leader, audit_session, &count);
    if (entries == NULL) return -1;
    long found = 0;
    for (size_t i = 0; i < count; i++) {
        if (!entries[i].member || entries[i].pid == leader) continue;
        if ((size_t)found < capacity) out[found] = entries[i].pid;
        found++;
    }
    free(entries);
    return found;
}

long runvoy_scope_signal(pid_t leader, unsigned int audit_session, int sig, pid_t *out, size_t capacity) {
    size_t count = 0;
    struct proc_entry *entries = scope_scan(leader, audit_session, &count);
    if (entries == NULL) return -1;
    long signalled = 0;
    for (size_t i = 0; i < count; i++) {
        if (!entries[i].member || entries[i].pid == leader) continue;
        /* The pid may have been freed and reused since the scan: the pidfd pins a process, and the same start
           time proves it is the one that was found, so an unrelated process can never get the signal. */
        int pidfd = (int)syscall(SYS_pidfd_open, entries[i].pid, 0);
        if (pidfd < 0) continue;
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)entries[i].pid);
        struct proc_entry now = {0};
        if (read_proc_stat(pid, &now) == 0 && now.start_time == entries[i].start_time &&
            syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0) {
            if ((size_t)signalled < capacity) out[signalled] = entries[i].pid;
            signalled++;
        }
        close(pidfd);
    }
    free(entries);
    return signalled;
}

int runvoy_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_wait(int pidfd, int *exited, int *status, int flags) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | flags);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    if (info.si_code == CLD_EXITED) {
        *exited = 1;
        *status = info.si_status;
    } else {
        *exited = 0;
        *status = info.si_status;
    }
    return 0;
}

int runvoy_pidfd_wait(int pidfd, int *exited, int *status) { return pidfd_wait(pidfd, exited, status, 0); }

int runvoy_pidfd_wait_keeping(int pidfd, int *exited, int *status) {
    return pidfd_wait(pidfd, exited, status, WNOWAIT);
}

int runvoy_pidfd_usage(int pidfd, struct runvoy_usage *usage) {
    /* The raw waitid takes a struct rusage (glibc's wrapper does not); with WNOWAIT the kernel fills it from the
       zombie (getrusage RUSAGE_BOTH: the process and the children it waited for) and leaves it unreaped. */
    siginfo_t info;
    struct rusage ru;
    memset(&info, 0, sizeof(info));
    memset(&ru, 0, sizeof(ru));
    long rc;
    do {
        rc = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | WNOHANG | WNOWAIT, &ru);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    if (info.si_pid == 0) {
        errno = EAGAIN;
        return -1;
    }
    usage->user_usec = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
    usage->system_usec = (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    usage->max_rss_bytes = (long long)ru.ru_maxrss * 1024;
    usage->read_bytes = (long long)ru.ru_inblock * 512;
    usage->write_bytes = (long long)ru.ru_oublock * 512;
    return 0;
}

int runvoy_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int runvoy_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

int runvoy_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int runvoy_pipe_cloexec(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

int runvoy_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC);
}

const void *runvoy_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len) {
    return memmem(haystack, haystack_len, needle, needle_len);
}

int runvoy_is_tmpfs(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return info.f_type == 0x01021994 /* TMPFS_MAGIC */ || info.f_type == (long)0x858458f6 /* RAMFS_MAGIC */;
}

/* Linux keeps credentials per thread, and the raw system calls below change only the calling thread's (glibc's
   setgroups and setuid wrappers would change every thread of the daemon). setfsuid/setfsgid return the previous
   value and cannot report failure, so each change is read back with an invalid id, which changes nothing. */
int runvoy_stat_as(const char *const *paths, size_t count_paths, struct stat *infos, int *errors, uid_t uid, gid_t gid,
                   const gid_t *groups, size_t ngroups) {
    long count = syscall(SYS_getgroups, 0, NULL);
    if (count < 0) return -1;
    gid_t *saved = malloc(sizeof(gid_t) * (size_t)(count > 0 ? count : 1));
    if (saved == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (count > 0 && syscall(SYS_getgroups, count, saved) != count) {
        free(saved);
        errno = EAGAIN;
        return -1;
    }
    uid_t saved_fsuid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
    gid_t saved_fsgid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);

    int rc = -1;
    int error = EPERM;
    if (syscall(SYS_setgroups, ngroups, groups) != 0) {
        /* Nothing was changed yet (without CAP_SETGID this fails, and so would the restore's setgroups, which
           aborts): refuse, leaving the thread as it was. */
        error = errno;
        free(saved);
        errno = error;
        return -1;
    }
    (void)syscall(SYS_setfsgid, gid);
    (void)syscall(SYS_setfsuid, uid);
    if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid || (uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) {
        error = EPERM;
        goto restore;
    }
    for (size_t i = 0; i < count_paths; i++) {
        errors[i] = stat(paths[i], &infos[i]) == 0 ? 0 : errno;
    }
    rc = 0;
    error = 0;

restore:
    /* fsuid first: going back to 0 gives the thread its file capabilities again. */
    (void)syscall(SYS_setfsuid, saved_fsuid);
    (void)syscall(SYS_setfsgid, saved_fsgid);
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != saved_fsuid ||
        (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != saved_fsgid || syscall(SYS_setgroups, count, saved) != 0) {
        /* A daemon thread left with another user's identity must not go on. */
        abort();
    }
    /* Changing the filesystem ids makes the kernel reset the process's dumpable flag to fs.suid_dumpable (2 on
       hosts with a crash reporter): make it non-dumpable again, or a core could hold secret values. */
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) abort();
    free(saved);
    errno = error;
    return rc;
}

int runvoy_set_nondumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int runvoy_o_path(void) { return O_PATH; }

int runvoy_is_procfs(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return info.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */;
}

int runvoy_has_access_acl(int fd) {
    // fgetxattr does not take O_PATH descriptors; the descriptor's /proc/self/fd link reaches the same file.
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (getxattr(path, "system.posix_acl_access", NULL, 0) >= 0) return 1;
    return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
}

/* ---- Journal native protocol, non-blocking (see runvoy_journal_send) ---- */

#include <limits.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <time.h>

int runvoy_journal_connect(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    size_t length = strlen(path);
    if (length >= sizeof(address.sun_path)) return -ENAMETOOLONG;
    memcpy(address.sun_path, path, length);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    /* As libsystemd does: room for large entries; SO_SNDBUFFORCE passes wmem_max when privileged. */
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0) {
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (connect(fd, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + length)) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

static long long monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

/* Waits until `fd` may take a datagram (the journal's queue has room), or the deadline (-1: none) passes. */
static int wait_writable(int fd, long long deadline) {
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            long long remaining = deadline - monotonic_ms();
            if (remaining <= 0) return -ETIMEDOUT;
            left = remaining > INT_MAX ? INT_MAX : (int)remaining;
        }
        struct pollfd entry = {.fd = fd, .events = POLLOUT};
        int ready = poll(&entry, 1, left);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (ready == 0) return -ETIMEDOUT;
        return 0; /* writable, or an error the next send reports */
    }
}

static int send_waiting(int fd, struct msghdr *message, long long deadline) {
    for (;;) {
        if (sendmsg(fd, message, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 0;
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return -errno;
        int waited = wait_writable(fd, deadline);
        if (waited < 0) return waited;
    }
}

int runvoy_journal_send(int fd, const void *entry, size_t length, int timeout_ms) {
    long long deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    struct iovec vector = {.iov_base = (void *)entry, .iov_len = length};
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    int sent = send_waiting(fd, &message, deadline);
    if (sent != -EMSGSIZE && sent != -ENOBUFS) return sent;

    /* Too large for a datagram: journald reads it from a sealed memfd passed with SCM_RIGHTS. */
    int data = memfd_create("runvoy-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (data < 0) return -errno;
    const char *cursor = entry;
    size_t left = length;
    while (left > 0) {
        ssize_t written = write(data, cursor, left);
        if (written < 0) {
            if (errno == EINTR) continue;
            int error = errno;
            close(data);
            return -error;
        }
        cursor += written;
        left -= (size_t)written;
    }
    if (fcntl(data, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int error = errno;
        close(data);
        return -error;
    }
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr carrier;
    memset(&carrier, 0, sizeof(carrier));
    carrier.msg_control = &control;
    carrier.msg_controllen = sizeof(control);
    struct cmsghdr *header = CMSG_FIRSTHDR(&carrier);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &data, sizeof(int));
    sent = send_waiting(fd, &carrier, deadline);
    close(data);
    return sent;
}

int runvoy_malloc_trim(void) { return malloc_trim(0); }

int runvoy_limit_malloc_arenas(int count) {
    if (getenv("MALLOC_ARENA_MAX") != NULL) return 0;
    return mallopt(M_ARENA_MAX, count);
}

long runvoy_page_out_executable(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) return -errno;
    exe[n] = 0;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL) return -errno;
    char line[4096 + 256];
    long advised = 0;
    int failure = 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        unsigned long start, end;
        char perms[5];
        int path = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &path) < 3 || path == 0) continue;
        char *name = line + path;
        name[strcspn(name, "\n")] = 0;
        if (perms[1] == 'w' || strcmp(name, exe) != 0) continue;
        // No read-ahead for these pages from now on: a fault reads the page it needs, not the 128 KiB around it,
        // so what comes back is what runs.
        (void)madvise((void *)start, end - start, MADV_RANDOM);
        if (madvise((void *)start, end - start, MADV_PAGEOUT) == 0) {
            advised += (long)(end - start);
        } else {
            failure = errno;
        }
    }
    fclose(maps);
    return advised == 0 && failure != 0 ? -failure : advised;
}
