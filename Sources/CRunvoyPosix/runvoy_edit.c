#define _GNU_SOURCE
#include "runvoy_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The thread's identity before an operation, to restore after it. */
struct saved_identity {
    int switched;
    uid_t fsuid;
    gid_t fsgid;
    gid_t *groups;
    long ngroups;
};

/* Linux keeps credentials per thread, and the raw system calls change only the calling thread's (as in
   runvoy_stat_as). Changing the fsuid from 0 drops the thread's file capabilities, so every check is the user's. */
static int enter(const struct runvoy_edit_identity *identity, struct saved_identity *saved) {
    saved->switched = 0;
    saved->groups = NULL;
    if (!identity->switch_identity) return 0;
    long count = syscall(SYS_getgroups, 0, NULL);
    if (count < 0) return -1;
    saved->groups = malloc(sizeof(gid_t) * (size_t)(count > 0 ? count : 1));
    if (saved->groups == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (count > 0 && syscall(SYS_getgroups, count, saved->groups) != count) {
        free(saved->groups);
        errno = EAGAIN;
        return -1;
    }
    saved->ngroups = count;
    saved->fsuid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
    saved->fsgid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);
    saved->switched = 1;
    if (syscall(SYS_setgroups, identity->ngroups, identity->groups) != 0) return -1;
    (void)syscall(SYS_setfsgid, identity->gid);
    (void)syscall(SYS_setfsuid, identity->uid);
    if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != identity->gid ||
        (uid_t)syscall(SYS_setfsuid, (uid_t)-1) != identity->uid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

static void leave(struct saved_identity *saved) {
    if (!saved->switched) return;
    int error = errno;
    (void)syscall(SYS_setfsuid, saved->fsuid);
    (void)syscall(SYS_setfsgid, saved->fsgid);
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != saved->fsuid ||
        (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != saved->fsgid ||
        syscall(SYS_setgroups, saved->ngroups, saved->groups) != 0) {
        /* A daemon thread left with another user's identity must not go on. */
        abort();
    }
    /* Changing the filesystem ids resets the dumpable flag; keep the daemon non-dumpable (see runvoy_stat_as). */
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) abort();
    free(saved->groups);
    saved->groups = NULL;
    errno = error;
}

static int read_file(const char *path, unsigned char *buffer, size_t capacity, size_t *length, struct stat *info) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = 0;
    if (fstat(fd, info) != 0) {
        rc = -1;
    } else if (!S_ISREG(info->st_mode)) {
        rc = RUNVOY_EDIT_NOT_REGULAR;
    } else if ((unsigned long long)info->st_size > capacity) {
        rc = RUNVOY_EDIT_TOO_LARGE;
    } else {
        size_t total = 0;
        for (;;) {
            if (total == capacity) {
                /* One byte more than the file said: it grew. */
                unsigned char probe;
                ssize_t more = read(fd, &probe, 1);
                if (more > 0) rc = RUNVOY_EDIT_TOO_LARGE;
                if (more < 0 && errno != EINTR) rc = -1;
                if (more < 0 && errno == EINTR) continue;
                break;
            }
            ssize_t got = read(fd, buffer + total, capacity - total);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) {
                rc = -1;
                break;
            }
            if (got == 0) break;
            total += (size_t)got;
        }
        *length = total;
    }
    int error = errno;
    close(fd);
    errno = error;
    return rc;
}

int runvoy_edit_read(const struct runvoy_edit_identity *identity, const char *path, unsigned char *buffer,
                     size_t capacity, size_t *length, struct stat *info) {
    struct saved_identity saved;
    *length = 0;
    int rc = enter(identity, &saved) == 0 ? read_file(path, buffer, capacity, length, info) : -1;
    leave(&saved);
    return rc;
}

static int write_all(int fd, const unsigned char *content, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t wrote = write(fd, content + done, length - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return -1;
        done += (size_t)wrote;
    }
    return 0;
}

static int prepare(const char *directory, const char *name, const unsigned char *content, size_t length, mode_t mode,
                   uid_t owner_uid, gid_t owner_gid, char *temp_name, size_t temp_capacity) {
    unsigned long long nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) return -1;
    int wrote = strlen(name) <= 200 ? snprintf(temp_name, temp_capacity, ".%s.runvoy-edit-%016llx", name, nonce)
                                    : snprintf(temp_name, temp_capacity, ".runvoy-edit-%016llx", nonce);
    if (wrote < 0 || (size_t)wrote >= temp_capacity) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int dir = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    int fd = openat(dir, temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int error = errno;
        close(dir);
        errno = error;
        return -1;
    }
    int rc = write_all(fd, content, length);
    struct stat made;
    if (rc == 0 && fstat(fd, &made) != 0) rc = -1;
    if (rc == 0 && (made.st_uid != owner_uid || made.st_gid != owner_gid)) {
        if (fchown(fd, made.st_uid != owner_uid ? owner_uid : (uid_t)-1, owner_gid) != 0) rc = RUNVOY_EDIT_OWNER;
    }
    /* After the owner: a change of owner clears set-id bits. */
    if (rc == 0 && fchmod(fd, mode & 07777) != 0) rc = -1;
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    int error = errno;
    close(fd);
    if (rc != 0) unlinkat(dir, temp_name, 0);
    close(dir);
    errno = error;
    return rc;
}

int runvoy_edit_prepare(const struct runvoy_edit_identity *identity, const char *directory, const char *name,
                        const unsigned char *content, size_t length, mode_t mode, uid_t owner_uid, gid_t owner_gid,
                        char *temp_name, size_t temp_capacity) {
    struct saved_identity saved;
    int rc = enter(identity, &saved) == 0
                 ? prepare(directory, name, content, length, mode, owner_uid, owner_gid, temp_name, temp_capacity)
                 : -1;
    leave(&saved);
    return rc;
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int commit(const char *directory, const char *temp_name, const char *name, const struct stat *expected) {
    int dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int synced = dir >= 0;
    if (dir < 0) dir = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    struct stat now;
    int rc = 0;
    if (fstatat(dir, name, &now, AT_SYMLINK_NOFOLLOW) != 0 || !same_file(&now, expected)) {
        unlinkat(dir, temp_name, 0);
        rc = RUNVOY_EDIT_CONFLICT;
    } else if (renameat(dir, temp_name, dir, name) != 0) {
        int error = errno;
        unlinkat(dir, temp_name, 0);
        errno = error;
        rc = -1;
    } else if (synced) {
        (void)fsync(dir);
    }
    int error = errno;
    close(dir);
    errno = error;
    return rc;
}

int runvoy_edit_commit(const struct runvoy_edit_identity *identity, const char *directory, const char *temp_name,
                       const char *name, const struct stat *expected) {
    struct saved_identity saved;
    int rc = enter(identity, &saved) == 0 ? commit(directory, temp_name, name, expected) : -1;
    leave(&saved);
    return rc;
}

int runvoy_edit_discard(const struct runvoy_edit_identity *identity, const char *directory, const char *temp_name) {
    struct saved_identity saved;
    int rc = -1;
    if (enter(identity, &saved) == 0) {
        int dir = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
            rc = unlinkat(dir, temp_name, 0);
            close(dir);
        }
    }
    leave(&saved);
    return rc;
}
