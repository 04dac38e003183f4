#ifndef RUNVOY_EDIT_H
#define RUNVOY_EDIT_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/// Who the file operations of `runvoyctl edit` run as: with `switch_identity` 0, the daemon's own identity
/// (an unprivileged development daemon); otherwise the calling thread's filesystem uid, gid and groups are
/// switched for the operation alone (as `runvoy_stat_as` does) and restored after it, or the process aborts.
struct runvoy_edit_identity {
    int switch_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
};

/// Results besides 0 (done) and -1 (errno says why; ELOOP: the file is a symbolic link).
enum {
    RUNVOY_EDIT_NOT_REGULAR = -2,
    RUNVOY_EDIT_TOO_LARGE = -3,
    RUNVOY_EDIT_CONFLICT = -4,
    RUNVOY_EDIT_OWNER = -5,
};

/// Reads the regular file `path` (its last component never followed if a link) into `buffer`, at most
/// `capacity` bytes; fills `length` and `info` (fstat of what was opened).
int runvoy_edit_read(const struct runvoy_edit_identity *identity, const char *path, unsigned char *buffer,
                     size_t capacity, size_t *length, struct stat *info);

/// Writes `content` to a new file in `directory` (O_EXCL, O_NOFOLLOW), gives it `owner_uid`/`owner_gid` and the
/// permission bits `mode`, fsyncs it, and puts its name (at most 255 bytes plus NUL) in `temp_name`.
/// RUNVOY_EDIT_OWNER when the identity cannot give it that owner; the file is removed then.
int runvoy_edit_prepare(const struct runvoy_edit_identity *identity, const char *directory, const char *name,
                        const unsigned char *content, size_t length, mode_t mode, uid_t owner_uid, gid_t owner_gid,
                        char *temp_name, size_t temp_capacity);

/// Renames `temp_name` over `name` in `directory` if `name` is still the file `expected` describes (device,
/// inode, size, modification and change times), and fsyncs the directory; otherwise removes `temp_name` and
/// returns RUNVOY_EDIT_CONFLICT.
int runvoy_edit_commit(const struct runvoy_edit_identity *identity, const char *directory, const char *temp_name,
                       const char *name, const struct stat *expected);

/// Removes `temp_name` from `directory`.
int runvoy_edit_discard(const struct runvoy_edit_identity *identity, const char *directory, const char *temp_name);

#endif
