/* Pod and container cgroups on cgroup v1 (one hierarchy per controller) and
 * cgroup v2 (one unified hierarchy), detected at run time.
 *
 * Paths are relative to each hierarchy's root and start with '/'. All calls
 * are blocking file-system operations on cgroupfs: small writes, except
 * cgroup_destroy, which may wait up to a few seconds for killed processes to
 * leave. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum cgroup_version {
    CGROUP_V1 = 1,
    CGROUP_V2 = 2,
};

/* Same values as config.h's enum cgroup_driver. */
enum cgroup_driver_kind {
    CGROUP_DRIVER_KIND_CGROUPFS = 0,
    CGROUP_DRIVER_KIND_SYSTEMD = 1,
};

struct cgroup_manager;

/* Detects the layout from /proc/self/mountinfo: a cgroup2 mount whose root
 * has controllers → V2; otherwise v1 controller mounts → V1 (a writable
 * cgroup2 mount beside them, the "hybrid" layout, gets the same cgroups for
 * process bookkeeping: it offers cgroup.kill, never resource limits). */
int cgroup_manager_new(enum cgroup_driver_kind driver, struct cgroup_manager **out, err_t *err);

/* For tests: a manager over a tree at `root`. V2: `root` is the unified
 * hierarchy. V1: every directory under `root` is one hierarchy whose
 * controllers are its comma-separated name ("cpu,cpuacct"), except
 * "unified", which plays the hybrid cgroup2 mount. Interface files may be
 * plain files: nothing is created that the kernel would create. */
int cgroup_manager_new_at(enum cgroup_version v, const char *root, enum cgroup_driver_kind driver,
                          struct cgroup_manager **out, err_t *err);

void cgroup_manager_free(struct cgroup_manager *m);

enum cgroup_version cgroup_manager_version(const struct cgroup_manager *m);

/* The pod cgroup for CRI's cgroup_parent.
 *   cgroupfs: "/kubepods/burstable/pod<uid>" is the pod's cgroup, used as is
 *             (absolute, no "." or "..", no empty components).
 *   systemd:  "kubepods-burstable-pod<uid>.slice" expands the way systemd
 *             nests slices: /kubepods.slice/kubepods-burstable.slice/
 *             kubepods-burstable-pod<uid>.slice ("-.slice" is the root slice,
 *             refused: a pod needs a cgroup of its own).
 * An empty (or NULL) parent gives "/edgecri/<pod_id>" or
 * "/edgecri.slice/edgecri-<pod_id>.slice". Caller frees *out.
 * Invalid input → ERR_INVALID_ARGUMENT naming it. */
int cgroup_pod_path(const struct cgroup_manager *m, const char *cgroup_parent, const char *pod_id, char **out,
                    err_t *err);

/* "<pod>/<container_id>" (cgroupfs) or "<pod>/edgecri-<container_id>.scope"
 * (systemd naming; created with mkdir like everything else, no D-Bus). */
int cgroup_container_path(const struct cgroup_manager *m, const char *pod_path, const char *container_id, char **out,
                          err_t *err);

struct cgroup_hugepage_limit {
    char page_size[16]; /* "2MB", "1GB", "64KB" as CRI gives them */
    uint64_t limit;     /* bytes */
};

struct cgroup_resources {
    int64_t cpu_period, cpu_quota;         /* µs; 0 = unset; quota -1 = unlimited */
    int64_t cpu_shares;                    /* 0 = unset; v2: weight = 1 + ((shares - 2) * 9999) / 262142 */
    const char *cpuset_cpus, *cpuset_mems; /* NULL or "" = unset */
    int64_t memory_limit;                  /* bytes; 0 = unset, -1 = unlimited */
    int64_t memory_swap_limit;             /* memory + swap (v1 memsw semantics); 0 = unset, -1 = unlimited;
                                              v2 writes memory.swap.max = swap - memory. Needs memory_limit
                                              unless -1. */
    int64_t pids_limit;                    /* 0 = unset, -1 = max */
    const struct cgroup_hugepage_limit *hugepages;
    size_t n_hugepages;
    /* v2 only: raw interface-file writes, applied last. Names must be an
     * existing file of the cgroup, without '/', and not a core "cgroup.*"
     * file (those are edgecri's to manage). */
    const char *const *unified_keys, *const *unified_values;
    size_t n_unified;
};

/* mkdir -p in every hierarchy; on v2 enables the controllers edgecri uses in
 * each ancestor's cgroup.subtree_control; on v1 fills empty cpuset.cpus/mems
 * from the parent (an empty cpuset refuses tasks). Then applies `r` (may be
 * NULL). Idempotent. Every requested file is checked before anything is
 * written, so a missing controller fails without a half-applied update. */
int cgroup_create(struct cgroup_manager *m, const char *path, const struct cgroup_resources *r, err_t *err);

/* Applies `r` to an existing cgroup (NOT_FOUND when it does not exist). */
int cgroup_update(struct cgroup_manager *m, const char *path, const struct cgroup_resources *r, err_t *err);

/* Moves `pid` into the cgroup in every hierarchy. */
int cgroup_attach(struct cgroup_manager *m, const char *path, pid_t pid, err_t *err);

/* An O_DIRECTORY fd on the v2 cgroup for clone3(CLONE_INTO_CGROUP); on v1
 * -ENOTSUP (start the process, then cgroup_attach). Caller closes. */
int cgroup_open_v2(struct cgroup_manager *m, const char *path, err_t *err);

/* An O_DIRECTORY fd on the cgroup's directory in the cgroup2 hierarchy: the
 * only one on v2, the cgroup2 mount beside the controllers on a hybrid v1
 * node (where eBPF device programs can still be attached). -ENOTSUP
 * (ERR_FAILED_PRECONDITION) on v1 without a writable cgroup2 mount. Caller
 * closes. */
int cgroup_open_unified(struct cgroup_manager *m, const char *path, err_t *err);

/* SIGKILLs every process in the cgroup and its descendants (cgroup.kill
 * where the kernel has it, else cgroup.procs one by one) and removes the
 * cgroups bottom-up in every hierarchy, retrying for up to 5 s while they
 * are still populated. A missing cgroup is fine. */
int cgroup_destroy(struct cgroup_manager *m, const char *path, err_t *err);

/* Whether a process is left in the cgroup or below (v2: cgroup.events;
 * v1: cgroup.procs of the memory, else pids, hierarchy). NOT_FOUND when the
 * cgroup does not exist. */
int cgroup_populated(struct cgroup_manager *m, const char *path, bool *populated, err_t *err);

/* OOM kills the kernel recorded for the cgroup (v2: memory.events oom_kill,
 * which counts descendants too; v1: memory.oom_control oom_kill). */
int cgroup_oom_kills(struct cgroup_manager *m, const char *path, uint64_t *count, err_t *err);

/* The path of `file` of the cgroup in the hierarchy holding `controller`
 * (ignored on v2), or NULL when there is none or `path`/`file` is invalid.
 * Caller frees. */
char *cgroup_file(struct cgroup_manager *m, const char *path, const char *controller, const char *file);
