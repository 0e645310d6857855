#include "runtime/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Steps, for the parent's message. */
enum step {
    STEP_READY = 0, /* holder-ready: not an error */
    STEP_SYNC,
    STEP_SETSID,
    STEP_SETNS,
    STEP_UNSHARE_CGROUP,
    STEP_HOSTNAME,
    STEP_SYSCTL,
    STEP_LOOPBACK,
    STEP_OOM,
    STEP_PROPAGATION,
    STEP_ROOTFS,
    STEP_OP,
    STEP_PIVOT,
    STEP_READONLY_ROOT,
    STEP_RLIMIT,
    STEP_USERNS,
    STEP_SECCOMP,
    STEP_CAPS,
    STEP_GROUPS,
    STEP_UID,
    STEP_NNP,
    STEP_CWD,
    STEP_STDIO,
    STEP_TTY,
    STEP_EXEC,
};

static const char *const step_names[] = {
    [STEP_READY] = "ready",
    [STEP_SYNC] = "waiting for the runtime",
    [STEP_SETSID] = "starting a session",
    [STEP_SETNS] = "joining namespace",
    [STEP_UNSHARE_CGROUP] = "creating the cgroup namespace",
    [STEP_HOSTNAME] = "setting the hostname",
    [STEP_SYSCTL] = "setting sysctl",
    [STEP_LOOPBACK] = "bringing up lo",
    [STEP_OOM] = "setting oom_score_adj",
    [STEP_PROPAGATION] = "making mounts private",
    [STEP_ROOTFS] = "opening the root filesystem",
    [STEP_OP] = "preparing",
    [STEP_PIVOT] = "pivot_root",
    [STEP_READONLY_ROOT] = "making the root filesystem read-only",
    [STEP_RLIMIT] = "setting rlimit",
    [STEP_USERNS] = "joining the pod's user namespace",
    [STEP_SECCOMP] = "loading the seccomp profile",
    [STEP_CAPS] = "setting capabilities",
    [STEP_GROUPS] = "setting supplementary groups",
    [STEP_UID] = "switching user",
    [STEP_NNP] = "setting no_new_privs",
    [STEP_CWD] = "changing to the working directory",
    [STEP_STDIO] = "setting up stdio",
    [STEP_TTY] = "setting the controlling terminal",
    [STEP_EXEC] = "executing",
};

struct child_report {
    int32_t step;
    int32_t err;
    char what[256];
};

struct spawn_child {
    uv_loop_t *loop;
    pid_t pid;
    int pidfd;
    int sync_wr; /* release byte; closing it ends a holder */
    int err_rd;
    uv_poll_t poll;
    bool polling;
    bool released;
    bool execd;
    bool freeing;
    spawn_done_fn done;
    void *data;
};

static int self_pidns = -1;

int spawn_init(err_t *err)
{
    if (self_pidns >= 0)
        return 0;
    self_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (self_pidns < 0)
        return err_sys(err, errno, "opening /proc/self/ns/pid");
    return 0;
}

/* ==== the child: raw system calls only ===================================== */

static size_t child_strlen(const char *s)
{
    size_t n = 0;
    while (s && s[n])
        n++;
    return n;
}

static void child_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = src[i];
    dst[i] = '\0';
}

__attribute__((noreturn)) static void child_fail(int errfd, enum step step, int e, const char *what)
{
    struct child_report r = {.step = step, .err = e};
    child_copy(r.what, sizeof(r.what), what);
    ssize_t n = write(errfd, &r, sizeof(r));
    (void)n;
    syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

/* "/proc/self/fd/<fd>" without snprintf. */
static void fd_path(char *buf, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    unsigned v = (unsigned)fd;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t p = 0;
    for (; prefix[p]; p++)
        buf[p] = prefix[p];
    while (n)
        buf[p++] = digits[--n];
    buf[p] = '\0';
}

static int open_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    if (!*path)
        path = ".";
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Appends src to dst (of capacity cap) at *len; false when it does not fit. */
static bool child_append(char *dst, size_t cap, size_t *len, const char *src)
{
    size_t n = child_strlen(src);
    if (*len + n + 1 > cap)
        return false;
    for (size_t k = 0; k < n; k++)
        dst[(*len)++] = src[k];
    dst[*len] = '\0';
    return true;
}

static int ensure_path_at(int rootfd, const char *path, bool file, mode_t mode, int depth);

/* The component `name` (in `parent`, reached by the root-relative `prefix`)
 * is a symlink to nothing yet: create what it points to, then the rest of
 * the path. RESOLVE_IN_ROOT keeps every step inside the root, however the
 * image's link is written ("/../../etc" is the root's /etc). */
static int ensure_through_link(int rootfd, int parent, const char *prefix, const char *name, const char *rest,
                               bool file, mode_t mode, int depth)
{
    char link[4096], next[4096];
    ssize_t n = readlinkat(parent, name, link, sizeof(link) - 1);
    if (n <= 0)
        return -ENOENT;
    if (depth >= 40)
        return -ELOOP;
    link[n] = '\0';
    size_t len = 0;
    next[0] = '\0';
    bool ok = true;
    if (link[0] != '/')
        ok = child_append(next, sizeof(next), &len, prefix) && child_append(next, sizeof(next), &len, "/");
    ok = ok && child_append(next, sizeof(next), &len, link);
    if (ok && *rest)
        ok = child_append(next, sizeof(next), &len, "/") && child_append(next, sizeof(next), &len, rest);
    if (!ok)
        return -ENAMETOOLONG;
    return ensure_path_at(rootfd, next, file, mode, depth + 1);
}

/* mkdir -p inside the root; a final file is created when `file`. */
static int ensure_path(int rootfd, const char *path, bool file, mode_t mode)
{
    return ensure_path_at(rootfd, path, file, mode, 0);
}

static int ensure_path_at(int rootfd, const char *path, bool file, mode_t mode, int depth)
{
    char buf[4096];
    size_t len = child_strlen(path);
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    child_copy(buf, sizeof(buf), path);
    size_t i = 0;
    while (buf[i] == '/')
        i++;
    int parent = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
    if (parent < 0)
        return -errno;
    while (buf[i]) {
        size_t start = i;
        while (buf[i] && buf[i] != '/')
            i++;
        bool last = true;
        for (size_t k = i; buf[k]; k++)
            if (buf[k] != '/')
                last = false;
        char saved = buf[i];
        buf[i] = '\0';
        /* the prefix up to and including this component */
        int fd = open_in_root(rootfd, buf, O_PATH);
        if (fd < 0 && errno == ENOENT) {
            const char *name = buf + start;
            char link[2];
            if (readlinkat(parent, name, link, sizeof(link)) > 0) {
                /* A dangling symlink (of a hostile or sloppy image). */
                char comp[256];
                if (i - start >= sizeof(comp)) {
                    close(parent);
                    return -ENAMETOOLONG;
                }
                child_copy(comp, sizeof(comp), name);
                buf[start] = '\0';
                const char *rest = path + i;
                while (*rest == '/')
                    rest++;
                int r = ensure_through_link(rootfd, parent, buf, comp, rest, file, mode, depth);
                close(parent);
                return r;
            }
            if (last && file) {
                int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f < 0 && errno != EEXIST) {
                    int e = errno;
                    close(parent);
                    return -e;
                }
                if (f >= 0)
                    close(f);
            } else if (mkdirat(parent, name, last ? mode : 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(parent);
                return -e;
            }
            fd = open_in_root(rootfd, buf, O_PATH);
        }
        if (fd < 0) {
            int e = errno;
            close(parent);
            return -e;
        }
        close(parent);
        parent = fd;
        buf[i] = saved;
        while (buf[i] == '/')
            i++;
    }
    close(parent);
    return 0;
}

static void split_parent(const char *path, char *dir, size_t cap, const char **name)
{
    child_copy(dir, cap, path);
    size_t n = child_strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    size_t slash = n;
    while (slash > 0 && dir[slash - 1] != '/')
        slash--;
    *name = path + slash;
    if (slash <= 1)
        child_copy(dir, cap, "/");
    else
        dir[slash - 1] = '\0';
}

/* A bind whose files appear with the ids of a user namespace: a detached
 * copy of the source tree (open_tree), idmapped (mount_setattr), attached
 * on the O_PATH fd `at`. Done with the host's privileges, before the user namespace is
 * joined. */
static void child_idmapped_bind(int errfd, const struct spawn_op *op, int at)
{
    unsigned rec = op->recursive ? AT_RECURSIVE : 0;
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, op->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
    if (tree < 0)
        child_fail(errfd, STEP_OP, errno, op->source);
    struct mount_attr ma = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)op->idmap_userns_fd};
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec, &ma, sizeof(ma)) < 0)
        child_fail(errfd, STEP_OP, errno, op->source);
    /* By fd: move_mount does not follow a /proc/self/fd link. */
    if (syscall(SYS_move_mount, tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        child_fail(errfd, STEP_OP, errno, op->target);
    close(tree);
}

static void child_op(int rootfd, int errfd, const struct spawn_op *op)
{
    char p[32];
    int fd;
    switch (op->kind) {
    case SPAWN_OP_MKDIR: {
        int r = ensure_path(rootfd, op->target, false, op->mode ? op->mode : 0755);
        if (r < 0)
            child_fail(errfd, STEP_OP, -r, op->target);
        return;
    }
    case SPAWN_OP_MKNOD:
    case SPAWN_OP_SYMLINK: {
        char dir[4096];
        const char *name;
        split_parent(op->target, dir, sizeof(dir), &name);
        int dfd = open_in_root(rootfd, dir, O_PATH | O_DIRECTORY);
        if (dfd < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        int r = op->kind == SPAWN_OP_MKNOD ? mknodat(dfd, name, op->mode, op->dev) : symlinkat(op->source, dfd, name);
        if (r < 0 && errno != EEXIST)
            child_fail(errfd, STEP_OP, errno, op->target);
        if (op->kind == SPAWN_OP_MKNOD) {
            /* mknod obeys the umask, and the mode must be what was asked */
            fchmodat(dfd, name, op->mode & 07777, 0);
        }
        close(dfd);
        return;
    }
    case SPAWN_OP_MOUNT: {
        int r = ensure_path(rootfd, op->target, false, 0755);
        if (r < 0)
            child_fail(errfd, STEP_OP, -r, op->target);
        fd = open_in_root(rootfd, op->target, O_PATH | O_DIRECTORY);
        if (fd < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        fd_path(p, fd);
        if (mount(op->source, p, op->fstype, op->flags, op->data) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
        break;
    }
    case SPAWN_OP_BIND: {
        struct stat st;
        if (stat(op->source, &st) < 0)
            child_fail(errfd, STEP_OP, errno, op->source);
        int r = ensure_path(rootfd, op->target, !S_ISDIR(st.st_mode), 0755);
        if (r < 0)
            child_fail(errfd, STEP_OP, -r, op->target);
        fd = open_in_root(rootfd, op->target, O_PATH);
        if (fd < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        fd_path(p, fd);
        if (op->idmap_userns_fd > 0)
            child_idmapped_bind(errfd, op, fd);
        else if (mount(op->source, p, NULL, MS_BIND | (op->recursive ? MS_REC : 0), NULL) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
        unsigned long attrs = op->flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        if (attrs) {
            /* Open again: the path now leads to the new mount. */
            fd = open_in_root(rootfd, op->target, O_PATH);
            if (fd < 0)
                child_fail(errfd, STEP_OP, errno, op->target);
            fd_path(p, fd);
            if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | attrs, NULL) < 0)
                child_fail(errfd, STEP_OP, errno, op->target);
            if ((op->flags & MS_RDONLY) && op->recursive_readonly) {
                struct mount_attr ma = {.attr_set = MOUNT_ATTR_RDONLY};
                if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof(ma)) < 0)
                    child_fail(errfd, STEP_OP, errno, op->target);
            }
            close(fd);
        }
        break;
    }
    case SPAWN_OP_MASK: {
        fd = open_in_root(rootfd, op->target, O_PATH);
        if (fd < 0) {
            if (errno == ENOENT && op->optional)
                return;
            child_fail(errfd, STEP_OP, errno, op->target);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        fd_path(p, fd);
        int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0")
                                    : mount("/dev/null", p, NULL, MS_BIND, NULL);
        if (r < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
        return;
    }
    case SPAWN_OP_READONLY: {
        fd = open_in_root(rootfd, op->target, O_PATH);
        if (fd < 0) {
            if (errno == ENOENT && op->optional)
                return;
            child_fail(errfd, STEP_OP, errno, op->target);
        }
        fd_path(p, fd);
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
        fd = open_in_root(rootfd, op->target, O_PATH);
        if (fd < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        fd_path(p, fd);
        if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
        return;
    }
    }
    if (op->propagation) {
        fd = open_in_root(rootfd, op->target, O_PATH);
        if (fd < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        fd_path(p, fd);
        if (mount(NULL, p, NULL, op->propagation, NULL) < 0)
            child_fail(errfd, STEP_OP, errno, op->target);
        close(fd);
    }
}

static void child_caps(int errfd, const struct spawn_plan *plan)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {
        {.effective = (uint32_t)plan->cap_effective,
         .permitted = (uint32_t)plan->cap_permitted,
         .inheritable = (uint32_t)plan->cap_inheritable},
        {.effective = (uint32_t)(plan->cap_effective >> 32),
         .permitted = (uint32_t)(plan->cap_permitted >> 32),
         .inheritable = (uint32_t)(plan->cap_inheritable >> 32)},
    };
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(errfd, STEP_CAPS, errno, "capset");
    for (int cap = 0; cap < 64; cap++)
        if ((plan->cap_ambient >> cap) & 1)
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                child_fail(errfd, STEP_CAPS, errno, "raising an ambient capability");
}

static void load_seccomp(int errfd, const struct sock_fprog *prog)
{
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
        child_fail(errfd, STEP_SECCOMP, errno, "seccomp");
}

__attribute__((noreturn)) static void child_main(const struct spawn_plan *plan, int sync_rd, int errfd)
{
    char b;
    /* Wait for the parent: it may still be placing us into cgroups. */
    ssize_t n;
    do
        n = read(sync_rd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        child_fail(errfd, STEP_SYNC, n < 0 ? errno : EPIPE, "the runtime went away");

    /* Dispositions the agent set (SIGPIPE ignored…) must not leak in. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    uint64_t empty = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, sizeof(empty));
    umask(0022);

    if (setsid() < 0)
        child_fail(errfd, STEP_SETSID, errno, "setsid");
    for (size_t i = 0; i < plan->n_join; i++)
        if (setns(plan->join[i].fd, plan->join[i].nstype) < 0)
            child_fail(errfd, STEP_SETNS, errno, "setns");
    if (plan->new_cgroupns_after_release && unshare(CLONE_NEWCGROUP) < 0)
        child_fail(errfd, STEP_UNSHARE_CGROUP, errno, "unshare");
    if (plan->hostname && sethostname(plan->hostname, child_strlen(plan->hostname)) < 0)
        child_fail(errfd, STEP_HOSTNAME, errno, plan->hostname);
    for (size_t i = 0; i < plan->n_sysctls; i++) {
        int dir = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct open_how how = {.flags = O_WRONLY | O_CLOEXEC, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
        int fd = dir < 0 ? -1 : (int)syscall(SYS_openat2, dir, plan->sysctl_paths[i], &how, sizeof(how));
        if (fd < 0 || write(fd, plan->sysctl_values[i], child_strlen(plan->sysctl_values[i])) < 0)
            child_fail(errfd, STEP_SYSCTL, errno, plan->sysctl_paths[i]);
        close(fd);
        close(dir);
    }
    if (plan->loopback_up) {
        /* A new network namespace starts with lo down; containerd brings
         * it up itself, whatever the CNI conflist has. */
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        child_copy(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
            child_fail(errfd, STEP_LOOPBACK, errno, "lo");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
            child_fail(errfd, STEP_LOOPBACK, errno, "lo");
        close(sock);
    }
    if (plan->set_oom_score_adj) {
        char v[16];
        int x = plan->oom_score_adj, k = 0;
        char tmp[12];
        bool neg = x < 0;
        unsigned u = neg ? (unsigned)-x : (unsigned)x;
        do {
            tmp[k++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        size_t p = 0;
        if (neg)
            v[p++] = '-';
        while (k)
            v[p++] = tmp[--k];
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, v, p) < 0)
            child_fail(errfd, STEP_OOM, errno, "oom_score_adj");
        close(fd);
    }

    if (plan->rootfs) {
        /* Nothing we mount may leak back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
            child_fail(errfd, STEP_PROPAGATION, errno, "/");
        /* pivot_root wants a mount point: bind the root onto itself (for
         * an overlay this is a bind of the overlay, at no cost). */
        if (mount(plan->rootfs, plan->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(errfd, STEP_ROOTFS, errno, plan->rootfs);
        int rootfd = open(plan->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            child_fail(errfd, STEP_ROOTFS, errno, plan->rootfs);
        for (size_t i = 0; i < plan->n_ops; i++)
            child_op(rootfd, errfd, &plan->ops[i]);
        if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
            chdir("/") < 0)
            child_fail(errfd, STEP_PIVOT, errno, plan->rootfs);
        close(rootfd);
        if (plan->readonly_rootfs && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
            child_fail(errfd, STEP_READONLY_ROOT, errno, "/");
    }

    for (size_t i = 0; i < plan->n_rlimits; i++)
        if (prlimit(0, plan->rlimits[i].resource, &plan->rlimits[i].limit, NULL) < 0)
            child_fail(errfd, STEP_RLIMIT, errno, "prlimit");

    /* From here on privileges count inside the pod's user namespace only:
     * every capability there, none on the host. */
    if (plan->join_userns && setns(plan->userns_fd, CLONE_NEWUSER) < 0)
        child_fail(errfd, STEP_USERNS, errno, "setns");
    if (plan->join_userns && plan->mntns_in_userns && unshare(CLONE_NEWNS) < 0)
        child_fail(errfd, STEP_USERNS, errno, "unshare(CLONE_NEWNS)");

    /* Without no_new_privs only CAP_SYS_ADMIN may load a filter: load it
     * while we still have it (the profile must allow what follows). */
    if (plan->seccomp && !plan->no_new_privs)
        load_seccomp(errfd, plan->seccomp);

    if (plan->set_caps) {
        for (int cap = 0; cap < 64; cap++)
            if (!((plan->cap_bounding >> cap) & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                child_fail(errfd, STEP_CAPS, errno, "dropping from the bounding set");
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            child_fail(errfd, STEP_CAPS, errno, "PR_SET_KEEPCAPS");
    }
    if (plan->set_identity) {
        /* Raw syscalls: glibc's wrappers would signal threads that only
         * exist in the parent. */
        if (syscall(SYS_setgroups, plan->n_groups, plan->groups) < 0)
            child_fail(errfd, STEP_GROUPS, errno, "setgroups");
        if (syscall(SYS_setresgid, plan->gid, plan->gid, plan->gid) < 0)
            child_fail(errfd, STEP_UID, errno, "setresgid");
        if (syscall(SYS_setresuid, plan->uid, plan->uid, plan->uid) < 0)
            child_fail(errfd, STEP_UID, errno, "setresuid");
    }
    if (plan->set_caps) {
        child_caps(errfd, plan);
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    if (plan->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(errfd, STEP_NNP, errno, "no_new_privs");
    if (plan->cwd && chdir(plan->cwd) < 0)
        child_fail(errfd, STEP_CWD, errno, plan->cwd);

    for (int i = 0; i < 3; i++)
        if (plan->stdio[i] != i && dup2(plan->stdio[i], i) < 0)
            child_fail(errfd, STEP_STDIO, errno, "dup2");
    if (plan->tty && ioctl(0, TIOCSCTTY, 0) < 0)
        child_fail(errfd, STEP_TTY, errno, "TIOCSCTTY");
    /* Everything else closes at exec, the error pipe included. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);

    if (plan->hold) {
        struct child_report ready = {.step = STEP_READY};
        n = write(errfd, &ready, sizeof(ready));
        (void)n;
        do
            n = read(sync_rd, &b, 1);
        while (n < 0 && errno == EINTR);
        syscall(SYS_exit_group, 0);
    }

    if (plan->seccomp && plan->no_new_privs)
        load_seccomp(errfd, plan->seccomp);

    if (plan->exec_fd >= 0) {
        syscall(SYS_execveat, plan->exec_fd, "", plan->argv, plan->envp, AT_EMPTY_PATH);
        child_fail(errfd, STEP_EXEC, errno, plan->argv[0]);
    }
    int last = ENOENT;
    for (const char *const *p = plan->exec_paths; p && *p; p++) {
        execve(*p, (char *const *)plan->argv, (char *const *)plan->envp);
        last = errno;
        if (errno != ENOENT && errno != ENOTDIR)
            child_fail(errfd, STEP_EXEC, errno, *p);
    }
    child_fail(errfd, STEP_EXEC, last, plan->argv[0]);
}

/* ==== the parent ============================================================ */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* One write each, as the kernel wants: the whole map at once. */
static int write_id_map(pid_t pid, const char *file, const char *map, err_t *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening %s", path);
    size_t len = map ? strlen(map) : 0;
    ssize_t n = len ? write(fd, map, len) : -1;
    int e = len ? errno : EINVAL;
    close(fd);
    if (n != (ssize_t)len)
        return err_sys(err, e, "writing the user namespace's %s", file);
    return 0;
}

static int write_id_maps(pid_t pid, const struct spawn_plan *plan, err_t *err)
{
    int r = write_id_map(pid, "uid_map", plan->uid_map, err);
    if (r == 0)
        r = write_id_map(pid, "gid_map", plan->gid_map, err);
    return r;
}

int spawn_start(uv_loop_t *loop, const struct spawn_plan *plan, struct spawn_child **out, err_t *err)
{
    int sync[2], errp[2];
    if (pipe2(sync, O_CLOEXEC) < 0)
        return err_sys(err, errno, "creating a pipe");
    if (pipe2(errp, O_CLOEXEC) < 0) {
        int e = errno;
        close(sync[0]);
        close(sync[1]);
        return err_sys(err, e, "creating a pipe");
    }
    struct spawn_child *c = calloc(1, sizeof(*c));
    if (!c) {
        close(sync[0]);
        close(sync[1]);
        close(errp[0]);
        close(errp[1]);
        return err_sys(err, ENOMEM, "starting a process");
    }
    c->loop = loop;
    c->pidfd = -1;
    int pidfd = -1;
    struct clone_args args = {
        .flags = CLONE_PIDFD | plan->clone_flags,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    if (plan->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)plan->cgroup_fd;
    }
    /* A PID namespace is entered for the children of the caller only: the
     * loop thread steps in for the clone and steps right back out. */
    if (plan->pidns_fd >= 0 && setns(plan->pidns_fd, CLONE_NEWPID) < 0) {
        int e = errno;
        free(c);
        close(sync[0]);
        close(sync[1]);
        close(errp[0]);
        close(errp[1]);
        return err_sys(err, e, "entering the pod's PID namespace");
    }
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    int clone_errno = errno;
    /* Only the parent steps back: the child is already inside the pod's
     * namespace and may not enter an ancestor (EINVAL). */
    if (pid != 0 && plan->pidns_fd >= 0 && setns(self_pidns, CLONE_NEWPID) < 0) {
        /* Every later child would start in the pod's namespace. */
        log_error("could not return to edgecri's PID namespace: %s", strerror(errno));
        abort();
    }
    if (pid == 0) {
        close(sync[1]);
        close(errp[0]);
        child_main(plan, sync[0], errp[1]);
    }
    close(sync[0]);
    close(errp[1]);
    if (pid < 0) {
        close(sync[1]);
        close(errp[0]);
        free(c);
        return err_sys(err, clone_errno, "clone3");
    }
    c->pid = (pid_t)pid;
    c->pidfd = pidfd;
    c->sync_wr = sync[1];
    c->err_rd = errp[0];
    fcntl(c->err_rd, F_SETFL, O_NONBLOCK);
    if ((plan->clone_flags & CLONE_NEWUSER) && write_id_maps(c->pid, plan, err) < 0) {
        spawn_child_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

static void finish(struct spawn_child *c, const err_t *err)
{
    if (c->polling) {
        uv_poll_stop(&c->poll);
    }
    spawn_done_fn done = c->done;
    c->done = NULL;
    if (done)
        done(c->data, c, err);
}

static void on_report(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct spawn_child *c = h->data;
    struct child_report r;
    ssize_t n = read(c->err_rd, &r, sizeof(r));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 0) {
        /* execve succeeded: the pipe closed with nothing in it. */
        c->execd = true;
        finish(c, NULL);
        return;
    }
    if (n == (ssize_t)sizeof(r) && r.step == STEP_READY) {
        finish(c, NULL);
        return;
    }
    err_t e = ERR_INIT;
    if (n != (ssize_t)sizeof(r)) {
        err_set(&e, ERR_INTERNAL, EIO, "the new process ended before reporting");
    } else {
        r.what[sizeof(r.what) - 1] = '\0';
        const char *step = (unsigned)r.step < ARRAY_SIZE(step_names) ? step_names[r.step] : "starting";
        err_sys(&e, r.err, "%s %s", step, r.what);
        if (r.step == STEP_EXEC && (r.err == ENOENT || r.err == EACCES || r.err == ENOEXEC))
            e.code = ERR_FAILED_PRECONDITION;
    }
    finish(c, &e);
    err_clear(&e);
}

int spawn_release(struct spawn_child *c, spawn_done_fn done, void *data, err_t *err)
{
    c->done = done;
    c->data = data;
    int r = uv_poll_init(c->loop, &c->poll, c->err_rd);
    if (r < 0)
        return err_sys(err, -r, "watching the new process");
    c->poll.data = c;
    c->polling = true;
    uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, on_report);
    char go = 1;
    if (write(c->sync_wr, &go, 1) != 1)
        return err_sys(err, errno, "releasing the new process");
    c->released = true;
    return 0;
}

void spawn_end_hold(struct spawn_child *c)
{
    close_fd(&c->sync_wr);
}

pid_t spawn_pid(const struct spawn_child *c)
{
    return c->pid;
}

int spawn_pidfd(const struct spawn_child *c)
{
    return c->pidfd;
}

int spawn_take_pidfd(struct spawn_child *c)
{
    int fd = c->pidfd;
    c->pidfd = -1;
    return fd;
}

static void on_poll_closed(uv_handle_t *h)
{
    struct spawn_child *c = h->data;
    close_fd(&c->err_rd);
    free(c);
}

void spawn_child_free(struct spawn_child *c)
{
    if (!c)
        return;
    if (!c->execd && c->pidfd >= 0) {
        /* A child that never got to exec is ours to end and reap. */
        syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
    }
    close_fd(&c->sync_wr);
    close_fd(&c->pidfd);
    c->done = NULL;
    /* The poll handle goes before its fd. */
    if (c->polling) {
        c->polling = false;
        uv_close((uv_handle_t *)&c->poll, on_poll_closed);
        return;
    }
    close_fd(&c->err_rd);
    free(c);
}
