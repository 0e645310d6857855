/* Linux capabilities for containers (capabilities(7)): names, the kernel's
 * set, containerd's default set and CRI's add/drop arithmetic. A set is a
 * uint64_t with bit N for capability N, which is what the spawner hands to
 * capset(2) and PR_CAPBSET_DROP. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The highest capability number this kernel knows, read once from
 * /proc/sys/kernel/cap_last_cap (the compile-time CAP_LAST_CAP when that
 * cannot be read); never above 63. */
int caps_last_cap(void);

/* Every capability this kernel knows (bits 0..caps_last_cap()). */
uint64_t caps_all(void);

/* containerd's (and Docker's) default set for unprivileged containers:
 * CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP
 * SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE. */
uint64_t caps_default(void);

/* Our own bounding set: what a child of ours can be given at all. */
uint64_t caps_bounding_self(void);

/* "CAP_SYS_ADMIN", "SYS_ADMIN", "cap_sys_admin", "sys_admin" → 21; -1 for an
 * unknown or empty name. Names are those this build knows, whatever the
 * running kernel supports. "ALL" is not a capability here. */
int caps_from_name(const char *name);

/* 21 → "CAP_SYS_ADMIN"; NULL for a number this build has no name for. */
const char *caps_name(int cap);

/* CRI add/drop applied to `base` with containerd's semantics, in this order:
 * "ALL" in add makes the set every capability; "ALL" in drop empties it (so
 * drop wins over add for ALL); then the named capabilities of add are added;
 * then the named capabilities of drop are removed (so add X + drop X drops
 * X). Names are case-insensitive, with or without "CAP_". The result is
 * limited to what this kernel knows (caps_all()): a name it does not support
 * is accepted and left out, as runc does. An unknown name fails with
 * ERR_INVALID_ARGUMENT naming it; *out is untouched then. */
int caps_compute(uint64_t base, const char *const *add, size_t n_add, const char *const *drop, size_t n_drop,
                 uint64_t *out, err_t *err);

/* "cap_chown,cap_kill" for logs and status ("" for the empty set; a bit this
 * build has no name for prints as "cap_41"). Caller frees; NULL when out of
 * memory. */
char *caps_format(uint64_t set);
