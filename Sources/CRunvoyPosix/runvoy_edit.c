#define _GNU_SOURCE
#include "runvoy_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
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
    if (syscall(SYS_setgroups, identity->ngroups, identity->groups) != 0) {
        /* Nothing was changed yet: without CAP_SETGID the restore's setgroups would fail too, and abort. */
        int error = errno;
        free(saved->groups);
        saved->groups = NULL;
        errno = error;
        return -1;
    }
    saved->switched = 1;
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

/* The directory `place->directory` beneath `place->base`, opened with `flags` (O_PATH or O_RDONLY) by openat2
   with no symbolic link followed anywhere: not in `base` (RESOLVE_NO_SYMLINKS), not on the way from it, and never
   out of it (RESOLVE_BENEATH). The daemon checked the path as text and by lstat before; a directory swapped for a
   link since then is refused here (ELOOP) instead of followed, whoever swapped it. */
static int open_directory(const struct runvoy_edit_place *place, int flags) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_DIRECTORY | O_CLOEXEC);
    how.resolve = RESOLVE_NO_SYMLINKS;
    int base = (int)syscall(SYS_openat2, AT_FDCWD, place->base, &how, sizeof how);
    if (base < 0 || place->directory[0] == '\0') return base;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
    int dir = (int)syscall(SYS_openat2, base, place->directory, &how, sizeof how);
    int error = errno;
    close(base);
    errno = error;
    return dir;
}

static int read_file(const struct runvoy_edit_place *place, unsigned char *buffer, size_t capacity, size_t *length,
                     struct stat *info) {
    int dir = open_directory(place, O_PATH);
    if (dir < 0) return -1;
    int fd = openat(dir, place->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    int opened = errno;
    close(dir);
    errno = opened;
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

int runvoy_edit_read(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                     unsigned char *buffer, size_t capacity, size_t *length, struct stat *info) {
    struct saved_identity saved;
    *length = 0;
    int rc = enter(identity, &saved) == 0 ? read_file(place, buffer, capacity, length, info) : -1;
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

/* Attributes the kernel itself removes (file capabilities) or recomputes (IMA/EVM) when a file's content is
   written: copying them to new content would be wrong. */
static int derived_attribute(const char *name) {
    return strcmp(name, "security.capability") == 0 || strcmp(name, "security.ima") == 0 ||
           strcmp(name, "security.evm") == 0;
}

/* The names of `fd`'s extended attributes (NUL-separated, `*size` bytes); NULL with *size 0 when it has none or
   the file system keeps none; NULL with *size -1 on failure. */
static char *attribute_names(int fd, ssize_t *size) {
    for (int attempt = 0; attempt < 8; attempt++) {
        ssize_t need = flistxattr(fd, NULL, 0);
        if (need < 0 && errno == ENOTSUP) need = 0;
        if (need <= 0) {
            *size = need;
            return NULL;
        }
        char *names = malloc((size_t)need);
        if (names == NULL) break;
        *size = flistxattr(fd, names, (size_t)need);
        if (*size >= 0) return names;
        free(names);
        if (errno != ERANGE) break;
    }
    *size = -1;
    return NULL;
}

/* Copies one attribute; 0, -1 (reading failed) or RUNVOY_EDIT_ATTRIBUTE (setting failed). */
static int copy_attribute(int from, int to, const char *name, const char *refuse) {
    for (int attempt = 0; attempt < 8; attempt++) {
        ssize_t need = fgetxattr(from, name, NULL, 0);
        if (need < 0) return errno == ENODATA ? 0 : -1;
        /* A read of size 0 is only another size query (it writes nothing and returns the size now): never make
           one, and never use more bytes than the buffer holds, or a value that grew between the two calls would
           be filled from the daemon's heap (found by review). */
        size_t capacity = need > 0 ? (size_t)need : 1;
        char *value = malloc(capacity);
        if (value == NULL) return -1;
        ssize_t got = fgetxattr(from, name, value, capacity);
        if (got > (ssize_t)capacity) {
            free(value);
            continue;
        }
        if (got < 0) {
            int error = errno;
            free(value);
            if (error == ERANGE) continue;
            errno = error;
            return error == ENODATA ? 0 : -1;
        }
        int rc = 0;
        if (refuse != NULL && strcmp(name, refuse) == 0) {
            errno = EPERM;
            rc = RUNVOY_EDIT_ATTRIBUTE;
        } else if (fsetxattr(to, name, value, (size_t)got, 0) != 0) {
            rc = RUNVOY_EDIT_ATTRIBUTE;
        }
        int error = errno;
        free(value);
        errno = error;
        return rc;
    }
    errno = EAGAIN;
    return -1;
}

/* Opens `name` in `dir` again and copies its extended attributes to `to`, if it is still the file read. */
static int copy_attributes(int dir, const char *name, int to, struct runvoy_edit_new_file *file) {
    int from = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (from < 0) return errno == ENOENT || errno == ELOOP ? RUNVOY_EDIT_CONFLICT : -1;
    struct stat info;
    int rc = 0;
    if (fstat(from, &info) != 0) {
        rc = -1;
    } else if (info.st_dev != file->original->st_dev || info.st_ino != file->original->st_ino) {
        rc = RUNVOY_EDIT_CONFLICT;
    } else {
        ssize_t size = 0;
        char *names = attribute_names(from, &size);
        if (size < 0) rc = -1;
        for (ssize_t at = 0; rc == 0 && at < size; at += (ssize_t)strlen(names + at) + 1) {
            const char *attribute = names + at;
            if (derived_attribute(attribute)) continue;
            rc = copy_attribute(from, to, attribute, file->refuse_attribute);
            if (rc == RUNVOY_EDIT_ATTRIBUTE && file->failed_capacity > 0) {
                snprintf(file->failed_attribute, file->failed_capacity, "%s", attribute);
            }
        }
        free(names);
        /* A new file in a directory with a default ACL inherits one the old file may not have had. */
        if (rc == 0 && fgetxattr(from, "system.posix_acl_access", NULL, 0) < 0 && errno == ENODATA &&
            fremovexattr(to, "system.posix_acl_access") != 0 && errno != ENODATA && errno != ENOTSUP) {
            rc = RUNVOY_EDIT_ATTRIBUTE;
            if (file->failed_capacity > 0) {
                snprintf(file->failed_attribute, file->failed_capacity, "%s", "system.posix_acl_access");
            }
        }
    }
    int error = errno;
    close(from);
    errno = error;
    return rc;
}

static int temp_name(const char *name, char *temp, size_t capacity) {
    unsigned long long nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) return -1;
    int wrote = strlen(name) <= 200 ? snprintf(temp, capacity, ".%s.runvoy-edit-%016llx", name, nonce)
                                    : snprintf(temp, capacity, ".runvoy-edit-%016llx", nonce);
    if (wrote < 0 || (size_t)wrote >= capacity) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int prepare(const struct runvoy_edit_place *place, struct runvoy_edit_new_file *file) {
    const char *name = place->name;
    if (temp_name(name, file->temp_name, file->temp_capacity) != 0) return -1;
    int dir = open_directory(place, O_PATH);
    if (dir < 0) return -1;
    int fd = openat(dir, file->temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int error = errno;
        close(dir);
        errno = error;
        return -1;
    }
    int rc = write_all(fd, file->content, file->length);
    struct stat made;
    if (rc == 0 && fstat(fd, &made) != 0) rc = -1;
    if (rc == 0 && (made.st_uid != file->owner_uid || made.st_gid != file->owner_gid)) {
        if (fchown(fd, made.st_uid != file->owner_uid ? file->owner_uid : (uid_t)-1, file->owner_gid) != 0) {
            rc = RUNVOY_EDIT_OWNER;
        }
    }
    /* While the new file is still 0600 (user.* needs write access); an ACL sets the group bits to its mask,
       which for the old file were its group bits, so the mode below agrees with it. */
    if (rc == 0) rc = copy_attributes(dir, name, fd, file);
    /* After the owner (a change of owner clears set-id bits). New content does not keep set-user-ID, nor
       set-group-ID where the group may execute: what a write by the owner without CAP_FSETID clears
       (file_remove_privs), or one edit would replace a set-id program that every user runs with its owner's
       rights. */
    mode_t mode = file->mode & 07777 & ~(mode_t)S_ISUID;
    if (mode & S_IXGRP) mode &= ~(mode_t)S_ISGID;
    if (rc == 0 && fchmod(fd, mode) != 0) rc = -1;
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    int error = errno;
    close(fd);
    if (rc != 0) unlinkat(dir, file->temp_name, 0);
    close(dir);
    errno = error;
    return rc;
}

int runvoy_edit_prepare(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                        struct runvoy_edit_new_file *file) {
    struct saved_identity saved;
    int rc = enter(identity, &saved) == 0 ? prepare(place, file) : -1;
    leave(&saved);
    return rc;
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int commit(const struct runvoy_edit_place *place, const char *temp_name, const struct stat *expected) {
    const char *name = place->name;
    int dir = open_directory(place, O_RDONLY);
    int synced = dir >= 0;
    if (dir < 0 && errno != ELOOP && errno != EXDEV) dir = open_directory(place, O_PATH);
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

int runvoy_edit_commit(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                       const char *temp_name, const struct stat *expected) {
    struct saved_identity saved;
    int rc = enter(identity, &saved) == 0 ? commit(place, temp_name, expected) : -1;
    leave(&saved);
    return rc;
}

int runvoy_edit_discard(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                        const char *temp_name) {
    struct saved_identity saved;
    int rc = -1;
    if (enter(identity, &saved) == 0) {
        int dir = open_directory(place, O_PATH);
        if (dir >= 0) {
            rc = unlinkat(dir, temp_name, 0);
            close(dir);
        }
    }
    leave(&saved);
    return rc;
}
