/* Who a container's process runs as: uid, primary gid, supplementary groups,
 * user name and home, resolved from the CRI security context and the image's
 * User against the image's own /etc/passwd and /etc/group, as containerd
 * resolves them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct identity {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* every group the process gets, the primary gid first */
    size_t n_groups;
    char *username; /* "" for a numeric uid the image does not know */
    char *home;     /* "/" when unknown */
};

/* CRI SupplementalGroupsPolicy values. */
enum supplemental_policy {
    SUPPLEMENTAL_MERGE = 0,
    SUPPLEMENTAL_STRICT = 1,
};

struct identity_request {
    /* The image config's User: "", "name", "uid", "name:group", "uid:gid",
     * "name:gid", "uid:group". NULL reads as "". */
    const char *image_user;
    bool has_run_as_user;
    int64_t run_as_user;
    const char *run_as_username; /* "" (or NULL) when unset */
    bool has_run_as_group;
    int64_t run_as_group;
    const int64_t *supplemental_groups;
    size_t n_supplemental_groups;
    enum supplemental_policy policy;
};

/* Resolves `req` against the image's /etc/passwd and /etc/group, read through
 * `rootfd` (a directory fd of the container's root filesystem) with openat2
 * RESOLVE_IN_ROOT, so no symlink in the image can make us read a host file.
 * Missing files are fine (numeric ids then); a file that is not a regular
 * file, is over 1 MiB or holds a NUL byte is an error.
 *
 * - run_as_user wins over run_as_username, which wins over the image's User;
 *   with none of them the user is uid 0.
 * - A numeric user the image does not know is fine (gid 0, home "/", name
 *   ""); a user *name* the image does not know is an error naming it, and so
 *   is an unknown group name in the image's User.
 * - Primary gid: run_as_group if set; else the group part of the image's
 *   User when the user came from the image; else the passwd entry's gid;
 *   else 0.
 * - run_as_group without run_as_user or run_as_username is an error (CRI says
 *   the runtime MUST error, and containerd does, whatever the image says).
 * - Groups: the primary gid first; with SUPPLEMENTAL_MERGE then the groups
 *   /etc/group lists the user's name in; then supplemental_groups. Duplicates
 *   removed, at most NGROUPS_MAX (65536).
 * - Every id must be in 0..4294967294.
 *
 * Errors are ERR_INVALID_ARGUMENT for the request (and names the image does
 * not have), ERR_FAILED_PRECONDITION for unusable files in the image. On
 * failure *out is left empty (identity_free on it is harmless). */
int identity_resolve(int rootfd, const struct identity_request *req, struct identity *out, err_t *err);

/* Frees what identity_resolve filled and empties *id; twice is harmless. */
void identity_free(struct identity *id);
