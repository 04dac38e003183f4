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

/// Where the file is: `name` in the directory `directory` (relative, no leading '/'; "" for `base` itself)
/// beneath `base` (absolute). The directory is opened with openat2, no symbolic link followed on the way
/// (RESOLVE_NO_SYMLINKS, and RESOLVE_BENEATH from `base`): ELOOP if one is there now, EXDEV if the path leaves
/// `base`, ENOSYS on a kernel without openat2 (before Linux 5.6).
struct runvoy_edit_place {
    const char *base;
    const char *directory;
    const char *name;
};

/// Results besides 0 (done) and -1 (errno says why; ELOOP: the file is a symbolic link).
enum {
    RUNVOY_EDIT_NOT_REGULAR = -2,
    RUNVOY_EDIT_TOO_LARGE = -3,
    RUNVOY_EDIT_CONFLICT = -4,
    RUNVOY_EDIT_OWNER = -5,
    RUNVOY_EDIT_ATTRIBUTE = -6,
};

/// Reads the regular file at `place` (its last component never followed if a link) into `buffer`, at most
/// `capacity` bytes; fills `length` and `info` (fstat of what was opened).
int runvoy_edit_read(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                     unsigned char *buffer, size_t capacity, size_t *length, struct stat *info);

/// The new file `runvoy_edit_prepare` writes, and what it reports.
struct runvoy_edit_new_file {
    const unsigned char *content;
    size_t length;
    /// The old file's permission bits and owner, given to the new one.
    mode_t mode;
    uid_t owner_uid;
    gid_t owner_gid;
    /// The old file as read (device and inode): its extended attributes are copied from it, once it is opened
    /// again and found to be that file.
    const struct stat *original;
    /// For tests: an attribute name to treat as one the kernel refused to set (EPERM); NULL otherwise.
    const char *refuse_attribute;
    /// Out: the new file's name (at most 255 bytes plus NUL).
    char *temp_name;
    size_t temp_capacity;
    /// Out, with RUNVOY_EDIT_ATTRIBUTE: the attribute that could not be copied (cut to fit, NUL-terminated).
    char *failed_attribute;
    size_t failed_capacity;
};

/// Writes `file->content` to a new file in the directory of `place` (O_EXCL, O_NOFOLLOW), gives it the owner,
/// the extended attributes of the old file `place->name` (the access ACL, user.*, security.* labels, trusted.*; not
/// security.capability, security.ima and security.evm, which the kernel removes or recomputes when a file's
/// content changes) and the permission bits, fsyncs it, and puts its name in `file->temp_name`.
/// RUNVOY_EDIT_OWNER when the identity cannot give it that owner; RUNVOY_EDIT_ATTRIBUTE (errno from the kernel,
/// the name in `file->failed_attribute`) when an attribute cannot be copied; RUNVOY_EDIT_CONFLICT when `name` is
/// no longer the file read. The new file is removed on every failure.
int runvoy_edit_prepare(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                        struct runvoy_edit_new_file *file);

/// Renames `temp_name` over `place->name` in its directory if that is still the file `expected` describes (device,
/// inode, size, modification and change times), and fsyncs the directory; otherwise removes `temp_name` and
/// returns RUNVOY_EDIT_CONFLICT.
int runvoy_edit_commit(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                       const char *temp_name, const struct stat *expected);

/// Removes `temp_name` from the directory of `place`.
int runvoy_edit_discard(const struct runvoy_edit_identity *identity, const struct runvoy_edit_place *place,
                        const char *temp_name);

#endif
