/* Starting processes in containers without a shim: clone3() from the agent,
 * and a child that carries out a plan the parent prepared.
 *
 * Between clone3 and execve the child is a copy of a multi-threaded process
 * with only one thread left: glibc's locks may be held by threads that no
 * longer exist, so the child calls no malloc, no stdio, no locale, and no
 * glibc wrapper that synchronizes threads (the set*id family broadcasts to
 * every thread glibc believes exists: the child uses raw syscalls for them).
 * Everything it needs — paths, mount operations, argv, environment, the
 * seccomp program, capability masks — is laid out by the parent before the
 * clone; the child only reads it.
 *
 * The child waits for the parent's go (so the parent can put it into cgroups,
 * record its namespaces…), then works through the plan. A failing step
 * writes {step, errno, what} to an error pipe and exits 127; a successful
 * execve closes the pipe (O_CLOEXEC) with nothing written. The parent learns
 * which on the loop (a uv_poll on the pipe), never by blocking. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

#include "util/error.h"

enum spawn_op_kind {
    SPAWN_OP_MOUNT,   /* mount(source, target, fstype, flags, data) — a new filesystem */
    SPAWN_OP_BIND,    /* bind `source` (a host path) onto `target` */
    SPAWN_OP_MKDIR,   /* mkdir -p target */
    SPAWN_OP_MKNOD,   /* device node `target` (mode, dev) */
    SPAWN_OP_SYMLINK, /* symlink `target` → `source` (the link text) */
    SPAWN_OP_MASK,    /* hide target: /dev/null over a file, an empty read-only tmpfs over a directory */
    SPAWN_OP_READONLY /* make target (and below) read-only */
};

/* One filesystem step inside the container's mount namespace. Targets are
 * paths inside the container's root and are resolved with openat2
 * (RESOLVE_IN_ROOT), so no symlink in the image can point a mount outside. */
struct spawn_op {
    enum spawn_op_kind kind;
    const char *source;
    const char *target;
    const char *fstype;
    const char *data;
    unsigned long flags;       /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC… */
    unsigned long propagation; /* 0, or MS_PRIVATE / MS_SLAVE / MS_SHARED (with MS_REC) */
    bool recursive;            /* binds: MS_REC (submounts come along) */
    bool recursive_readonly;   /* binds: MS_RDONLY reaches every submount too */
    bool create_file;          /* binds: the target is a file (create it if missing) */
    bool optional;             /* a missing target is skipped (masked paths) */
    int idmap_userns_fd;       /* binds: > 0 makes it an idmapped mount with this user namespace's
                                  mapping (on-disk ids appear as the namespace's), else 0 */
    mode_t mode;
    dev_t dev;
};

struct spawn_ns {
    int fd;
    int nstype; /* CLONE_NEWNET… */
};

struct spawn_rlimit {
    int resource;
    struct rlimit limit;
};

struct spawn_plan {
    /* clone3 */
    uint64_t clone_flags; /* the CLONE_NEW* namespaces to create */
    /* With CLONE_NEWUSER: /proc/<pid>/{uid,gid}_map, written by the parent
     * before the child is released ("<inside> <outside> <count>\n"…). */
    const char *uid_map, *gid_map;
    int cgroup_fd; /* v2 cgroup to start in (CLONE_INTO_CGROUP), or -1 */
    int pidns_fd;  /* PID namespace to start in, or -1 (parent side, see spawn.c) */

    /* namespaces to join, in this order */
    const struct spawn_ns *join;
    size_t n_join;
    bool new_cgroupns_after_release; /* unshare(CLONE_NEWCGROUP) once placed (cgroup v1) */
    /* A user namespace joined last, after every mount and namespace step
     * (they need the host's privileges), just before the identity and
     * capabilities are set, which then count inside it. */
    bool join_userns;
    int userns_fd;
    /* After joining: a mount namespace of the user namespace's own (a copy,
     * every mount locked), so root inside may mount what its capabilities
     * allow without reaching the host's mounts. */
    bool mntns_in_userns;

    /* UTS and sysctls (written under /proc/sys in the new namespaces) */
    const char *hostname;
    const char *const *sysctl_paths; /* "net/ipv4/ip_forward" */
    const char *const *sysctl_values;
    size_t n_sysctls;
    bool loopback_up; /* set lo up in the (new) network namespace */

    /* filesystem; rootfs NULL keeps the agent's root (holders, exec into an
     * existing mount namespace joined above) */
    const char *rootfs;
    const struct spawn_op *ops;
    size_t n_ops;
    bool readonly_rootfs;

    /* process */
    bool set_oom_score_adj;
    int oom_score_adj;
    const struct spawn_rlimit *rlimits;
    size_t n_rlimits;
    bool set_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;
    bool set_caps;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    bool no_new_privs;
    const struct sock_fprog *seccomp; /* NULL: none */
    const char *cwd;
    int stdio[3]; /* fds for 0, 1, 2 (all must be valid) */
    bool tty;     /* stdio[0] is a terminal to make controlling */
    const char *const *argv;
    const char *const *envp;
    const char *const *exec_paths; /* candidates for argv[0], tried in order */
    int exec_fd;                   /* or execveat this fd (AT_EMPTY_PATH) when >= 0 */

    /* Holder mode: after setup the child reports ready and waits for the
     * parent to let it go, then exits — a pod's namespaces are captured
     * meanwhile, and no process stays behind. */
    bool hold;
};

struct spawn_child;

/* Why the child failed: the step and the errno it hit, in words. */
typedef void (*spawn_done_fn)(void *data, struct spawn_child *child, const err_t *err);

/* Clones the child (paused before its first step). The plan may be freed
 * when this returns. */
int spawn_start(uv_loop_t *loop, const struct spawn_plan *plan, struct spawn_child **out, err_t *err);

/* Lets the child run; `done` runs on the loop when it has exec'd (err NULL),
 * reached holder-ready (err NULL), or failed. */
int spawn_release(struct spawn_child *c, spawn_done_fn done, void *data, err_t *err);

/* Holder mode: tells the child to exit now. */
void spawn_end_hold(struct spawn_child *c);

pid_t spawn_pid(const struct spawn_child *c);
/* The pidfd; spawn_take_pidfd hands ownership to the caller. */
int spawn_pidfd(const struct spawn_child *c);
int spawn_take_pidfd(struct spawn_child *c);

/* Kills (if still paused or running and not exec'd yet) and frees. A child
 * that exec'd is left alone: it is the caller's (through its pidfd). */
void spawn_child_free(struct spawn_child *c);

/* Opens the agent's own PID namespace once at startup so the parent can go
 * back to it after starting a child in another one. */
int spawn_init(err_t *err);
