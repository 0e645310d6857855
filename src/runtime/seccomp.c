/* Seccomp programs for containers: the RuntimeDefault profile (what
 * containerd's default profile allows, written down as this file's tables)
 * and OCI/Docker JSON profiles, compiled by libseccomp and exported as
 * classic BPF for the container's child to load. */
#include "runtime/seccomp.h"

#include <errno.h>
#include <jansson.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util/cleanup.h"

#define MAX_ARCHES    24 /* more than libseccomp knows */
#define MAX_ARGS      16 /* conditions in one rule (6 arguments, some repeated) */
#define MAX_ERRNO_RET 0xffff
#define NAME_MAX_LEN  64 /* longer is no syscall name; quoted as given */
#define QUOTE_MAX     64
#define QUOTE_BUF     (QUOTE_MAX * 4 + 8)

/* x32 calls arrive with x86_64's AUDIT_ARCH and this bit in the number. */
#define X32_SYSCALL_BIT 0x40000000u

/* ---- building: a libseccomp context plus what the ENOSYS stub needs ---- */

struct builder {
    scmp_filter_ctx ctx;
    uint32_t def_action;
    bool enosys_stub;
    size_t n_arches;
    uint32_t arches[MAX_ARCHES];
    /* The names rules were added for (borrowed: static tables or the JSON
     * document, both alive until the program is exported). */
    const char **names;
    size_t n_names, cap_names;
};

static void builder_release(struct builder *b)
{
    if (b->ctx)
        seccomp_release(b->ctx);
    b->ctx = NULL;
    free(b->names);
    b->names = NULL;
}

static int builder_init(struct builder *b, uint32_t def_action, err_t *err)
{
    memset(b, 0, sizeof(*b));
    b->def_action = def_action;
    /* A permissive default has nothing to deny with ENOSYS, and a default of
     * ENOSYS already gives it. */
    b->enosys_stub = def_action != SCMP_ACT_ALLOW && def_action != SCMP_ACT_LOG && def_action != SCMP_ACT_ERRNO(ENOSYS);
    b->ctx = seccomp_init(def_action);
    if (!b->ctx)
        return err_set(err, ERR_INTERNAL, EINVAL, "seccomp: libseccomp refused default action %#x", def_action);
    /* The runtime loads the program itself, in a single-threaded child, and
     * sets no_new_privs only when the pod asks for it. */
    int r = seccomp_attr_set(b->ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r == 0)
        r = seccomp_attr_set(b->ctx, SCMP_FLTATR_CTL_TSYNC, 0);
    if (r < 0) {
        builder_release(b);
        return err_sys(err, -r, "seccomp: setting filter attributes");
    }
    b->arches[b->n_arches++] = seccomp_arch_native();
    return 0;
}

static int builder_add_arch(struct builder *b, uint32_t arch, err_t *err)
{
    for (size_t i = 0; i < b->n_arches; i++)
        if (b->arches[i] == arch)
            return 0;
    if (b->n_arches == MAX_ARCHES)
        return err_set(err, ERR_INVALID_ARGUMENT, E2BIG, "seccomp: more than %d architectures", MAX_ARCHES);
    int r = seccomp_arch_add(b->ctx, arch);
    if (r < 0 && r != -EEXIST)
        return err_sys(err, -r, "seccomp: adding architecture %#x", arch);
    b->arches[b->n_arches++] = arch;
    return 0;
}

static bool repeats_an_argument(const struct scmp_arg_cmp *args, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = i + 1; j < n; j++)
            if (args[i].arg == args[j].arg)
                return true;
    return false;
}

/* Untrusted bytes for a message, in double quotes: printable ASCII as is,
 * anything else as \xNN, cut after QUOTE_MAX bytes with "...". */
static const char *quote(char *out, const char *s)
{
    size_t n = strnlen(s, QUOTE_MAX + 1), o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        }
    }
    out[o++] = '"';
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* Remembers a name the profile gives a rule for, for the ENOSYS stub. */
static int builder_note_name(struct builder *b, const char *name, err_t *err)
{
    if (b->n_names == b->cap_names) {
        size_t cap = b->cap_names ? 2 * b->cap_names : 512;
        const char **names = realloc(b->names, cap * sizeof(*names));
        if (!names)
            return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "seccomp: out of memory");
        b->names = names;
        b->cap_names = cap;
    }
    b->names[b->n_names++] = name;
    return 0;
}

/* Adds one rule for `name`; skips a name libseccomp does not know (newer
 * than its tables, or no syscall at all). `where` names the rule in
 * messages. */
static int builder_add(struct builder *b, const char *name, uint32_t action, const struct scmp_arg_cmp *args,
                       unsigned n_args, const char *where, err_t *err)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0;
    /* Named, so not "newer than the profile", even when the rule itself
     * changes nothing (as runc counts it). */
    int r = builder_note_name(b, name, err);
    if (r < 0)
        return r;
    /* libseccomp refuses a rule that changes nothing; runc skips it too. */
    if (action == b->def_action)
        return 0;
    if (repeats_an_argument(args, n_args)) {
        /* libseccomp takes one condition per argument; runc turns several on
         * the same argument into one rule each, and profiles rely on that. */
        for (unsigned i = 0; i < n_args && r == 0; i++)
            r = seccomp_rule_add_array(b->ctx, action, nr, 1, &args[i]);
    } else {
        r = seccomp_rule_add_array(b->ctx, action, nr, n_args, args);
    }
    char q[QUOTE_BUF];
    if (r == -EEXIST)
        return err_set(err, ERR_INVALID_ARGUMENT, EEXIST,
                       "seccomp profile: %s: the rule for %s conflicts with an earlier rule for it", where,
                       quote(q, name));
    if (r < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, -r, "seccomp profile: %s: libseccomp refused the rule for %s: %s",
                       where, quote(q, name), strerror(-r));
    return 0;
}

static int add_names(struct builder *b, const char *const *names, uint32_t action, const struct scmp_arg_cmp *args,
                     unsigned n_args, err_t *err)
{
    for (size_t i = 0; names[i]; i++) {
        int r = builder_add(b, names[i], action, args, n_args, "default profile", err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the ENOSYS stub ----
 *
 * "Newer than the profile" is, per architecture, above the highest number in
 * its table whose name some rule was added for (a reverse lookup, so calls
 * libseccomp handles in two forms, like x86's socket and socketcall, count
 * by their direct number too). The stub runs before libseccomp's program,
 * which starts by loading the arch itself:
 *
 *       ld  [arch]
 *   per architecture:
 *       jeq  AUDIT_ARCH, 0, <next architecture>
 *       ld   [nr]
 *       (x86_64: jset X32_SYSCALL_BIT, <x32 lines>, 0)
 *       jgt  last, 0, FILTER
 *       jge  end, FILTER, ENOSYS
 *       (x86_64: the same two lines for x32)
 *   FILTER: ja 1
 *   ENOSYS: ret ERRNO(ENOSYS)
 *           <libseccomp's program>
 *
 * `end` keeps private ranges numbered above the common table with the
 * filter: x32's legacy entries from 512, ARM's from 0xf0000 (cacheflush,
 * set_tls). Only architectures whose new calls share one numbering get a
 * block; s390 (numbers past 255 go through setup(2)) and mips (a base per
 * ABI) are left to the default action. */

#define STUB_MAX   64
#define TABLE_SCAN 1024 /* past every common syscall number for years */

struct stub_mode {
    uint32_t last, end; /* last = UINT32_MAX: never ENOSYS */
};

struct stub_arch {
    uint32_t audit;
    bool x86_64;
    struct stub_mode native, x32;
};

static bool numbered_in_common(uint32_t arch)
{
    switch (arch) {
    case SCMP_ARCH_X86_64:
    case SCMP_ARCH_X32:
    case SCMP_ARCH_X86:
    case SCMP_ARCH_AARCH64:
    case SCMP_ARCH_ARM:
    case SCMP_ARCH_PPC:
    case SCMP_ARCH_PPC64:
    case SCMP_ARCH_PPC64LE:
    case SCMP_ARCH_RISCV64:
        return true;
    default:
        return false;
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The highest number below `end` (from `base`) whose name is in the sorted
 * `names`; UINT32_MAX when there is none. */
static uint32_t last_named(uint32_t arch, uint32_t base, uint32_t end, const char **names, size_t n_names)
{
    uint32_t top = end - base < TABLE_SCAN ? end - base : TABLE_SCAN;
    for (uint32_t i = top; i-- > 0;) {
        char *name = seccomp_syscall_resolve_num_arch(arch, (int)(base + i));
        bool named = name && bsearch(&name, names, n_names, sizeof(*names), cmp_names);
        free(name);
        if (named)
            return base + i;
    }
    return UINT32_MAX;
}

static size_t enosys_stub(struct builder *b, struct sock_filter *out)
{
    struct stub_arch sa[MAX_ARCHES];
    size_t n_sa = 0;
    if (!b->enosys_stub || b->n_names == 0)
        return 0;
    qsort(b->names, b->n_names, sizeof(*b->names), cmp_names);
    for (size_t i = 0; i < b->n_arches; i++) {
        uint32_t arch = b->arches[i];
        if (!numbered_in_common(arch))
            continue;
        /* libseccomp's tokens are the kernel's AUDIT_ARCH values, except
         * x32's, which is x86_64 with numbers marked by X32_SYSCALL_BIT. */
        bool x32 = arch == SCMP_ARCH_X32;
        uint32_t audit = x32 ? SCMP_ARCH_X86_64 : arch;
        size_t k = 0;
        while (k < n_sa && sa[k].audit != audit)
            k++;
        if (k == n_sa)
            sa[n_sa++] = (struct stub_arch){
                audit, audit == SCMP_ARCH_X86_64, {UINT32_MAX, UINT32_MAX}, {UINT32_MAX, UINT32_MAX}};
        struct stub_mode *m = x32 ? &sa[k].x32 : &sa[k].native;
        uint32_t base = x32 ? X32_SYSCALL_BIT : 0;
        m->end = x32 ? X32_SYSCALL_BIT + 512 : arch == SCMP_ARCH_ARM ? 0xf0000 : X32_SYSCALL_BIT;
        m->last = last_named(arch, base, m->end, b->names, b->n_names);
    }

    size_t filter = 1;
    for (size_t k = 0; k < n_sa; k++)
        filter += sa[k].x86_64 ? 7 : 4;
    size_t enosys = filter + 1, n = 0;
#define JUMP_TO(t) ((unsigned char)((t)-n - 1))
#define MODE_LINES(m)                                                                                                  \
    do {                                                                                                               \
        out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (m).last, 0, JUMP_TO(filter));                \
        n++;                                                                                                           \
        out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (m).end, JUMP_TO(filter), JUMP_TO(enosys));   \
        n++;                                                                                                           \
    } while (0)
    out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    for (size_t k = 0; k < n_sa; k++) {
        out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, sa[k].audit, 0, sa[k].x86_64 ? 6 : 3);
        n++;
        out[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        if (sa[k].x86_64) {
            out[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 2, 0);
            n++;
        }
        MODE_LINES(sa[k].native);
        if (sa[k].x86_64)
            MODE_LINES(sa[k].x32);
    }
#undef MODE_LINES
#undef JUMP_TO
    out[n++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 1);
    out[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SCMP_ACT_ERRNO(ENOSYS));
    return n;
}

/* libseccomp 2.5 exports only to a file descriptor: into a memfd, then back. */
static int builder_finish(struct builder *b, struct seccomp_program *out, err_t *err)
{
    _cleanup_close_ int fd = memfd_create("edgecri-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "seccomp: memfd_create");
    int r = seccomp_export_bpf(b->ctx, fd);
    if (r < 0)
        return err_sys(err, -r, "seccomp: exporting the BPF program");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "seccomp: fstat of the exported program");
    if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0)
        return err_set(err, ERR_INTERNAL, EINVAL, "seccomp: libseccomp exported %lld bytes, not whole instructions",
                       (long long)st.st_size);

    struct sock_filter stub[STUB_MAX];
    size_t n_stub = enosys_stub(b, stub);
    size_t n_prog = (size_t)st.st_size / sizeof(struct sock_filter), total = n_stub + n_prog;
    if (total > BPF_MAXINSNS)
        return err_set(err, ERR_INVALID_ARGUMENT, E2BIG,
                       "seccomp profile: compiles to %zu BPF instructions, more than the kernel's limit of %d", total,
                       BPF_MAXINSNS);
    _cleanup_free_ struct sock_filter *prog = calloc(total, sizeof(*prog));
    if (!prog)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "seccomp: out of memory");
    memcpy(prog, stub, n_stub * sizeof(*prog));
    char *dst = (char *)(prog + n_stub);
    size_t want = n_prog * sizeof(*prog), got = 0;
    while (got < want) {
        ssize_t k = pread(fd, dst + got, want - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return err_sys(err, errno, "seccomp: reading the exported program");
        if (k == 0)
            return err_set(err, ERR_INTERNAL, EIO, "seccomp: the exported program ended early");
        got += (size_t)k;
    }
    out->filter = steal_pointer(&prog);
    out->len = (unsigned short)total;
    return 0;
}

void seccomp_program_free(struct seccomp_program *p)
{
    if (!p)
        return;
    free(p->filter);
    p->filter = NULL;
    p->len = 0;
}

/* ---- the running kernel ---- */

struct kver {
    unsigned long v[3];
};

/* "6.18.44-foo" or "4.8": two or three numbers; the rest ignored when
 * `trailing` (uname), refused otherwise (a profile's minKernel). */
static bool parse_kver(const char *s, bool trailing, struct kver *k)
{
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < 3; i++) {
        if (*s < '0' || *s > '9')
            return false;
        char *end;
        errno = 0;
        k->v[i] = strtoul(s, &end, 10);
        if (errno)
            return false;
        s = end;
        if (*s != '.') {
            if (i == 0)
                return false;
            return trailing || *s == '\0';
        }
        if (i < 2)
            s++;
    }
    return trailing || *s == '\0';
}

static int kver_cmp(const struct kver *a, const struct kver *b)
{
    for (int i = 0; i < 3; i++)
        if (a->v[i] != b->v[i])
            return a->v[i] < b->v[i] ? -1 : 1;
    return 0;
}

/* Unparseable reads as 0.0.0: kernel-gated allowances stay out. */
static void running_kernel(struct kver *k)
{
    struct utsname u;
    if (uname(&u) != 0 || !parse_kver(u.release, true, k))
        memset(k, 0, sizeof(*k));
}

/* ---- the RuntimeDefault profile ---- */

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Allowed without conditions on any architecture that has them. This is
 * containerd 2's list less io_uring_setup/enter/register, which containerd
 * and Moby dropped from their defaults (io_uring runs operations the filter
 * never sees). Names this libseccomp does not know are skipped. */
static const char *const default_allow[] = {"accept",
                                            "accept4",
                                            "access",
                                            "adjtimex",
                                            "alarm",
                                            "bind",
                                            "brk",
                                            "cachestat",
                                            "capget",
                                            "capset",
                                            "chdir",
                                            "chmod",
                                            "chown",
                                            "chown32",
                                            "clock_adjtime",
                                            "clock_adjtime64",
                                            "clock_getres",
                                            "clock_getres_time64",
                                            "clock_gettime",
                                            "clock_gettime64",
                                            "clock_nanosleep",
                                            "clock_nanosleep_time64",
                                            "close",
                                            "close_range",
                                            "connect",
                                            "copy_file_range",
                                            "creat",
                                            "dup",
                                            "dup2",
                                            "dup3",
                                            "epoll_create",
                                            "epoll_create1",
                                            "epoll_ctl",
                                            "epoll_ctl_old",
                                            "epoll_pwait",
                                            "epoll_pwait2",
                                            "epoll_wait",
                                            "epoll_wait_old",
                                            "eventfd",
                                            "eventfd2",
                                            "execve",
                                            "execveat",
                                            "exit",
                                            "exit_group",
                                            "faccessat",
                                            "faccessat2",
                                            "fadvise64",
                                            "fadvise64_64",
                                            "fallocate",
                                            "fanotify_mark",
                                            "fchdir",
                                            "fchmod",
                                            "fchmodat",
                                            "fchmodat2",
                                            "fchown",
                                            "fchown32",
                                            "fchownat",
                                            "fcntl",
                                            "fcntl64",
                                            "fdatasync",
                                            "fgetxattr",
                                            "flistxattr",
                                            "flock",
                                            "fork",
                                            "fremovexattr",
                                            "fsetxattr",
                                            "fstat",
                                            "fstat64",
                                            "fstatat64",
                                            "fstatfs",
                                            "fstatfs64",
                                            "fsync",
                                            "ftruncate",
                                            "ftruncate64",
                                            "futex",
                                            "futex_requeue",
                                            "futex_time64",
                                            "futex_wait",
                                            "futex_waitv",
                                            "futex_wake",
                                            "futimesat",
                                            "getcpu",
                                            "getcwd",
                                            "getdents",
                                            "getdents64",
                                            "getegid",
                                            "getegid32",
                                            "geteuid",
                                            "geteuid32",
                                            "getgid",
                                            "getgid32",
                                            "getgroups",
                                            "getgroups32",
                                            "getitimer",
                                            "getpeername",
                                            "getpgid",
                                            "getpgrp",
                                            "getpid",
                                            "getppid",
                                            "getpriority",
                                            "getrandom",
                                            "getresgid",
                                            "getresgid32",
                                            "getresuid",
                                            "getresuid32",
                                            "getrlimit",
                                            "get_robust_list",
                                            "getrusage",
                                            "getsid",
                                            "getsockname",
                                            "getsockopt",
                                            "get_thread_area",
                                            "gettid",
                                            "gettimeofday",
                                            "getuid",
                                            "getuid32",
                                            "getxattr",
                                            "inotify_add_watch",
                                            "inotify_init",
                                            "inotify_init1",
                                            "inotify_rm_watch",
                                            "io_cancel",
                                            "ioctl",
                                            "io_destroy",
                                            "io_getevents",
                                            "io_pgetevents",
                                            "io_pgetevents_time64",
                                            "ioprio_get",
                                            "ioprio_set",
                                            "io_setup",
                                            "io_submit",
                                            "ipc",
                                            "kill",
                                            "landlock_add_rule",
                                            "landlock_create_ruleset",
                                            "landlock_restrict_self",
                                            "lchown",
                                            "lchown32",
                                            "lgetxattr",
                                            "link",
                                            "linkat",
                                            "listen",
                                            "listxattr",
                                            "llistxattr",
                                            "_llseek",
                                            "lremovexattr",
                                            "lseek",
                                            "lsetxattr",
                                            "lstat",
                                            "lstat64",
                                            "madvise",
                                            "map_shadow_stack",
                                            "membarrier",
                                            "memfd_create",
                                            "memfd_secret",
                                            "mincore",
                                            "mkdir",
                                            "mkdirat",
                                            "mknod",
                                            "mknodat",
                                            "mlock",
                                            "mlock2",
                                            "mlockall",
                                            "mmap",
                                            "mmap2",
                                            "mprotect",
                                            "mq_getsetattr",
                                            "mq_notify",
                                            "mq_open",
                                            "mq_timedreceive",
                                            "mq_timedreceive_time64",
                                            "mq_timedsend",
                                            "mq_timedsend_time64",
                                            "mq_unlink",
                                            "mremap",
                                            "msgctl",
                                            "msgget",
                                            "msgrcv",
                                            "msgsnd",
                                            "msync",
                                            "munlock",
                                            "munlockall",
                                            "munmap",
                                            "name_to_handle_at",
                                            "nanosleep",
                                            "newfstatat",
                                            "_newselect",
                                            "open",
                                            "openat",
                                            "openat2",
                                            "pause",
                                            "pidfd_open",
                                            "pidfd_send_signal",
                                            "pipe",
                                            "pipe2",
                                            "pkey_alloc",
                                            "pkey_free",
                                            "pkey_mprotect",
                                            "poll",
                                            "ppoll",
                                            "ppoll_time64",
                                            "prctl",
                                            "pread64",
                                            "preadv",
                                            "preadv2",
                                            "prlimit64",
                                            "process_mrelease",
                                            "pselect6",
                                            "pselect6_time64",
                                            "pwrite64",
                                            "pwritev",
                                            "pwritev2",
                                            "read",
                                            "readahead",
                                            "readlink",
                                            "readlinkat",
                                            "readv",
                                            "recv",
                                            "recvfrom",
                                            "recvmmsg",
                                            "recvmmsg_time64",
                                            "recvmsg",
                                            "remap_file_pages",
                                            "removexattr",
                                            "rename",
                                            "renameat",
                                            "renameat2",
                                            "restart_syscall",
                                            "rmdir",
                                            "rseq",
                                            "rt_sigaction",
                                            "rt_sigpending",
                                            "rt_sigprocmask",
                                            "rt_sigqueueinfo",
                                            "rt_sigreturn",
                                            "rt_sigsuspend",
                                            "rt_sigtimedwait",
                                            "rt_sigtimedwait_time64",
                                            "rt_tgsigqueueinfo",
                                            "sched_getaffinity",
                                            "sched_getattr",
                                            "sched_getparam",
                                            "sched_get_priority_max",
                                            "sched_get_priority_min",
                                            "sched_getscheduler",
                                            "sched_rr_get_interval",
                                            "sched_rr_get_interval_time64",
                                            "sched_setaffinity",
                                            "sched_setattr",
                                            "sched_setparam",
                                            "sched_setscheduler",
                                            "sched_yield",
                                            "seccomp",
                                            "select",
                                            "semctl",
                                            "semget",
                                            "semop",
                                            "semtimedop",
                                            "semtimedop_time64",
                                            "send",
                                            "sendfile",
                                            "sendfile64",
                                            "sendmmsg",
                                            "sendmsg",
                                            "sendto",
                                            "setfsgid",
                                            "setfsgid32",
                                            "setfsuid",
                                            "setfsuid32",
                                            "setgid",
                                            "setgid32",
                                            "setgroups",
                                            "setgroups32",
                                            "setitimer",
                                            "setpgid",
                                            "setpriority",
                                            "setregid",
                                            "setregid32",
                                            "setresgid",
                                            "setresgid32",
                                            "setresuid",
                                            "setresuid32",
                                            "setreuid",
                                            "setreuid32",
                                            "setrlimit",
                                            "set_robust_list",
                                            "setsid",
                                            "setsockopt",
                                            "set_thread_area",
                                            "set_tid_address",
                                            "setuid",
                                            "setuid32",
                                            "setxattr",
                                            "shmat",
                                            "shmctl",
                                            "shmdt",
                                            "shmget",
                                            "shutdown",
                                            "sigaltstack",
                                            "signalfd",
                                            "signalfd4",
                                            "sigprocmask",
                                            "sigreturn",
                                            "socketcall",
                                            "socketpair",
                                            "splice",
                                            "stat",
                                            "stat64",
                                            "statfs",
                                            "statfs64",
                                            "statx",
                                            "symlink",
                                            "symlinkat",
                                            "sync",
                                            "sync_file_range",
                                            "syncfs",
                                            "sysinfo",
                                            "tee",
                                            "tgkill",
                                            "time",
                                            "timer_create",
                                            "timer_delete",
                                            "timer_getoverrun",
                                            "timer_gettime",
                                            "timer_gettime64",
                                            "timer_settime",
                                            "timer_settime64",
                                            "timerfd_create",
                                            "timerfd_gettime",
                                            "timerfd_gettime64",
                                            "timerfd_settime",
                                            "timerfd_settime64",
                                            "times",
                                            "tkill",
                                            "truncate",
                                            "truncate64",
                                            "ugetrlimit",
                                            "umask",
                                            "uname",
                                            "unlink",
                                            "unlinkat",
                                            "utime",
                                            "utimensat",
                                            "utimensat_time64",
                                            "utimes",
                                            "vfork",
                                            "vmsplice",
                                            "wait4",
                                            "waitid",
                                            "waitpid",
                                            "write",
                                            "writev",
                                            NULL};

/* personality(2) only for the personas containers run under (Linux,
 * Linux32, each with or without UNAME26) and for the query: others can turn
 * off address-space randomization or read-implies-exec. */
static const uint64_t default_personas[] = {PER_LINUX,           PER_LINUX32,           UNAME26,
                                            PER_LINUX | UNAME26, PER_LINUX32 | UNAME26, 0xffffffff};

/* The namespace flags clone(2) may not carry without CAP_SYS_ADMIN. */
#define CLONE_NAMESPACE_FLAGS                                                                                          \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

/* What a capability adds: the calls the capability is the kernel's gate for. */
static const struct {
    int cap;
    const char *const *names;
} default_cap_allow[] = {
    {CAP_DAC_READ_SEARCH, NAMES("open_by_handle_at")},
    {CAP_SYS_ADMIN,
     NAMES("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
           "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
           "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare")},
    {CAP_SYS_BOOT, NAMES("reboot")},
    {CAP_SYS_CHROOT, NAMES("chroot")},
    {CAP_SYS_MODULE, NAMES("delete_module", "init_module", "finit_module")},
    {CAP_SYS_PACCT, NAMES("acct")},
    {CAP_SYS_PTRACE,
     NAMES("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace")},
    {CAP_SYS_RAWIO, NAMES("iopl", "ioperm")},
    {CAP_SYS_TIME, NAMES("settimeofday", "stime", "clock_settime", "clock_settime64")},
    {CAP_SYS_TTY_CONFIG, NAMES("vhangup")},
    {CAP_SYS_NICE, NAMES("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")},
    {CAP_SYSLOG, NAMES("syslog")},
    {CAP_BPF, NAMES("bpf")},
    {CAP_PERFMON, NAMES("perf_event_open")},
};

/* Calls only some architectures have, by the native architecture (the
 * rules then apply to its compat architectures too, as in containerd). */
static const char *const *default_arch_allow(uint32_t native)
{
    static const char *const x86_64[] = {"arch_prctl", "modify_ldt", NULL};
    static const char *const x86[] = {"modify_ldt", NULL};
    static const char *const arm[] = {
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls", NULL};
    static const char *const ppc64le[] = {"sync_file_range2", "swapcontext", NULL};
    static const char *const s390[] = {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr", NULL};
    static const char *const riscv64[] = {"riscv_flush_icache", NULL};
    static const char *const none[] = {NULL};
    switch (native) {
    case SCMP_ARCH_X86_64:
        return x86_64;
    case SCMP_ARCH_X86:
        return x86;
    case SCMP_ARCH_AARCH64:
    case SCMP_ARCH_ARM:
        return arm;
    case SCMP_ARCH_PPC64LE:
        return ppc64le;
    case SCMP_ARCH_S390:
    case SCMP_ARCH_S390X:
        return s390;
    case SCMP_ARCH_RISCV64:
        return riscv64;
    default:
        return none;
    }
}

/* The architectures a native one also runs binaries for (Moby's archMap). */
static const uint32_t *default_compat_arches(uint32_t native)
{
    static const uint32_t x86_64[] = {SCMP_ARCH_X86, SCMP_ARCH_X32, 0};
    static const uint32_t aarch64[] = {SCMP_ARCH_ARM, 0};
    static const uint32_t s390x[] = {SCMP_ARCH_S390, 0};
    static const uint32_t mips64[] = {SCMP_ARCH_MIPS, SCMP_ARCH_MIPS64N32, 0};
    static const uint32_t mips64n32[] = {SCMP_ARCH_MIPS, SCMP_ARCH_MIPS64, 0};
    static const uint32_t mipsel64[] = {SCMP_ARCH_MIPSEL, SCMP_ARCH_MIPSEL64N32, 0};
    static const uint32_t mipsel64n32[] = {SCMP_ARCH_MIPSEL, SCMP_ARCH_MIPSEL64, 0};
    static const uint32_t none[] = {0};
    switch (native) {
    case SCMP_ARCH_X86_64:
        return x86_64;
    case SCMP_ARCH_AARCH64:
        return aarch64;
    case SCMP_ARCH_S390X:
        return s390x;
    case SCMP_ARCH_MIPS64:
        return mips64;
    case SCMP_ARCH_MIPS64N32:
        return mips64n32;
    case SCMP_ARCH_MIPSEL64:
        return mipsel64;
    case SCMP_ARCH_MIPSEL64N32:
        return mipsel64n32;
    default:
        return none;
    }
}

static bool has_cap(uint64_t caps, int cap)
{
    return cap >= 0 && cap < 64 && (caps >> cap) & 1;
}

static int build_default(struct builder *b, uint64_t caps, err_t *err)
{
    uint32_t native = b->arches[0];
    int r = 0;
    for (const uint32_t *a = default_compat_arches(native); *a && r == 0; a++)
        r = builder_add_arch(b, *a, err);
    if (r == 0)
        r = add_names(b, default_allow, SCMP_ACT_ALLOW, NULL, 0, err);

    /* socket(2) for every family but AF_VSOCK, which reaches the host (or
     * other VMs) past the pod's network namespace. */
    struct scmp_arg_cmp not_vsock = SCMP_A0(SCMP_CMP_NE, AF_VSOCK);
    if (r == 0)
        r = add_names(b, NAMES("socket"), SCMP_ACT_ALLOW, &not_vsock, 1, err);
    for (size_t i = 0; i < ARRAY_SIZE(default_personas) && r == 0; i++) {
        struct scmp_arg_cmp persona = SCMP_A0(SCMP_CMP_EQ, default_personas[i]);
        r = add_names(b, NAMES("personality"), SCMP_ACT_ALLOW, &persona, 1, err);
    }

    /* From 4.8 the kernel runs seccomp again after a tracer changes a call,
     * so ptrace can no longer carry a container past its filter. */
    struct kver kernel, k4_8 = {{4, 8, 0}};
    running_kernel(&kernel);
    if (r == 0 && kver_cmp(&kernel, &k4_8) >= 0)
        r = add_names(b, NAMES("ptrace", "process_vm_readv", "process_vm_writev"), SCMP_ACT_ALLOW, NULL, 0, err);

    if (r == 0)
        r = add_names(b, default_arch_allow(native), SCMP_ACT_ALLOW, NULL, 0, err);
    for (size_t i = 0; i < ARRAY_SIZE(default_cap_allow) && r == 0; i++)
        if (has_cap(caps, default_cap_allow[i].cap))
            r = add_names(b, default_cap_allow[i].names, SCMP_ACT_ALLOW, NULL, 0, err);

    if (r == 0 && !has_cap(caps, CAP_SYS_ADMIN)) {
        /* s390's clone takes the stack first and the flags second. */
        bool s390 = native == SCMP_ARCH_S390X || native == SCMP_ARCH_S390;
        struct scmp_arg_cmp no_ns = {s390 ? 1 : 0, SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0};
        r = add_names(b, NAMES("clone"), SCMP_ACT_ALLOW, &no_ns, 1, err);
        /* clone3's flags are in memory the filter cannot read: answer as a
         * kernel without clone3 would, and libc falls back to clone. */
        if (r == 0)
            r = add_names(b, NAMES("clone3"), SCMP_ACT_ERRNO(ENOSYS), NULL, 0, err);
    }
    return r;
}

int seccomp_build_default(uint64_t caps, struct seccomp_program *out, err_t *err)
{
    struct builder b;
    memset(out, 0, sizeof(*out));
    int r = builder_init(&b, SCMP_ACT_ERRNO(EPERM), err);
    if (r < 0)
        return r;
    r = build_default(&b, caps, err);
    if (r == 0)
        r = builder_finish(&b, out, err);
    builder_release(&b);
    if (r < 0)
        return err_wrap(err, "building the RuntimeDefault seccomp profile");
    return 0;
}

/* ---- JSON profiles ---- */

struct profile_parse {
    uint64_t caps;
    uint32_t native;
    struct kver kernel;
    size_t n_names;
};

static int invalid(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(err_t *err, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "seccomp profile: out of memory");
    int r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "seccomp profile: %s", msg);
    free(msg);
    return r;
}

/* Messages read "syscalls[3] (\"mkdir\"): action …" or, for the profile's
 * own fields, "defaultAction …": `where` is "" there. */
#define SEP(where) (*(where) ? ": " : "")

/* A member that is absent or null reads as NULL. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static int check_string(json_t *v, const char *where, const char *key, err_t *err)
{
    if (!json_is_string(v))
        return invalid(err, "%s%s%s must be a string", where, SEP(where), key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return invalid(err, "%s%s%s contains a NUL byte", where, SEP(where), key);
    return 0;
}

static int get_u64(json_t *v, const char *where, const char *key, uint64_t max, uint64_t *out, err_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return invalid(err, "%s%s%s must be an integer from 0 to %llu", where, SEP(where), key,
                       (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static const struct {
    const char *name;
    uint32_t action;
    bool takes_errno;
} action_names[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
};

/* An action and its errno (errnoRet / defaultErrnoRet; EPERM when absent,
 * as runc does). */
static int parse_action(json_t *v, json_t *errno_v, const char *where, const char *key, const char *errno_key,
                        uint32_t *out, err_t *err)
{
    char q[QUOTE_BUF];
    if (!v)
        return invalid(err, "%s%s%s is missing", where, SEP(where), key);
    int r = check_string(v, where, key, err);
    if (r < 0)
        return r;
    const char *name = json_string_value(v);
    if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
        return invalid(err, "%s%s%s SCMP_ACT_NOTIFY is not supported (no seccomp notification listener)", where,
                       SEP(where), key);
    for (size_t i = 0; i < ARRAY_SIZE(action_names); i++) {
        if (strcmp(name, action_names[i].name) != 0)
            continue;
        uint64_t data = EPERM;
        if (errno_v && !action_names[i].takes_errno)
            return invalid(err, "%s%s%s is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not %s", where, SEP(where),
                           errno_key, name);
        if (errno_v && (r = get_u64(errno_v, where, errno_key, MAX_ERRNO_RET, &data, err)) < 0)
            return r;
        *out = action_names[i].action | (action_names[i].takes_errno ? (uint32_t)data : 0);
        return 0;
    }
    return invalid(err, "%s%s%s: unknown action %s", where, SEP(where), key, quote(q, name));
}

static const struct {
    const char *name;
    enum scmp_compare op;
} op_names[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

static int parse_args(json_t *v, const char *where, struct scmp_arg_cmp *out, unsigned *n_out, err_t *err)
{
    *n_out = 0;
    if (!v)
        return 0;
    if (!json_is_array(v))
        return invalid(err, "%s: args must be a list", where);
    if (json_array_size(v) > MAX_ARGS)
        return invalid(err, "%s: more than %d args", where, MAX_ARGS);
    size_t i;
    json_t *a;
    json_array_foreach(v, i, a)
    {
        char what[64], q[QUOTE_BUF];
        uint64_t index, value = 0, value_two = 0;
        int r;
        if (!json_is_object(a))
            return invalid(err, "%s: args[%zu] is not an object", where, i);
        json_t *idx = member(a, "index"), *op = member(a, "op"), *val = member(a, "value"),
               *val2 = member(a, "valueTwo");
        snprintf(what, sizeof(what), "args[%zu].index", i);
        if (!idx)
            return invalid(err, "%s: %s is missing", where, what);
        if ((r = get_u64(idx, where, what, 5, &index, err)) < 0)
            return r;
        snprintf(what, sizeof(what), "args[%zu].value", i);
        if (val && (r = get_u64(val, where, what, INT64_MAX, &value, err)) < 0)
            return r;
        snprintf(what, sizeof(what), "args[%zu].valueTwo", i);
        if (val2 && (r = get_u64(val2, where, what, INT64_MAX, &value_two, err)) < 0)
            return r;
        snprintf(what, sizeof(what), "args[%zu].op", i);
        if (!op)
            return invalid(err, "%s: %s is missing", where, what);
        if ((r = check_string(op, where, what, err)) < 0)
            return r;
        size_t k = 0;
        while (k < ARRAY_SIZE(op_names) && strcmp(op_names[k].name, json_string_value(op)) != 0)
            k++;
        if (k == ARRAY_SIZE(op_names))
            return invalid(err, "%s: %s: unknown operator %s", where, what, quote(q, json_string_value(op)));
        out[i] = (struct scmp_arg_cmp){(unsigned)index, op_names[k].op, value, value_two};
    }
    *n_out = (unsigned)json_array_size(v);
    return 0;
}

/* Architecture names: "SCMP_ARCH_X86_64" in architectures and archMap, Go's
 * names (amd64, arm64…, and Moby's x86/x32) in includes/excludes. */
static uint32_t arch_from_scmp_name(const char *s)
{
    static const char prefix[] = "SCMP_ARCH_";
    char lower[32];
    size_t n = strlen(s), p = sizeof(prefix) - 1;
    if (n <= p || n - p >= sizeof(lower) || strncmp(s, prefix, p) != 0)
        return 0;
    for (size_t i = p; i <= n; i++)
        lower[i - p] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    if (strcmp(lower, "native") == 0)
        return 0;
    return seccomp_arch_resolve_name(lower); /* 0 when unknown */
}

static uint32_t arch_from_go_name(const char *s)
{
    static const struct {
        const char *name;
        uint32_t token;
    } go_arches[] = {
        {"amd64", SCMP_ARCH_X86_64},
        {"386", SCMP_ARCH_X86},
        {"x86", SCMP_ARCH_X86},
        {"x32", SCMP_ARCH_X32},
        {"arm64", SCMP_ARCH_AARCH64},
        {"arm", SCMP_ARCH_ARM},
        {"mips", SCMP_ARCH_MIPS},
        {"mipsle", SCMP_ARCH_MIPSEL},
        {"mipsel", SCMP_ARCH_MIPSEL},
        {"mips64", SCMP_ARCH_MIPS64},
        {"mips64le", SCMP_ARCH_MIPSEL64},
        {"mipsel64", SCMP_ARCH_MIPSEL64},
        {"mips64n32", SCMP_ARCH_MIPS64N32},
        {"mipsel64n32", SCMP_ARCH_MIPSEL64N32},
        {"ppc", SCMP_ARCH_PPC},
        {"ppc64", SCMP_ARCH_PPC64},
        {"ppc64le", SCMP_ARCH_PPC64LE},
        {"s390", SCMP_ARCH_S390},
        {"s390x", SCMP_ARCH_S390X},
        {"riscv64", SCMP_ARCH_RISCV64},
        {"parisc", SCMP_ARCH_PARISC},
        {"parisc64", SCMP_ARCH_PARISC64},
    };
    for (size_t i = 0; i < ARRAY_SIZE(go_arches); i++)
        if (strcmp(s, go_arches[i].name) == 0)
            return go_arches[i].token;
    return arch_from_scmp_name(s);
}

static const char *const cap_names[] = {
    [CAP_CHOWN] = "CAP_CHOWN",
    [CAP_DAC_OVERRIDE] = "CAP_DAC_OVERRIDE",
    [CAP_DAC_READ_SEARCH] = "CAP_DAC_READ_SEARCH",
    [CAP_FOWNER] = "CAP_FOWNER",
    [CAP_FSETID] = "CAP_FSETID",
    [CAP_KILL] = "CAP_KILL",
    [CAP_SETGID] = "CAP_SETGID",
    [CAP_SETUID] = "CAP_SETUID",
    [CAP_SETPCAP] = "CAP_SETPCAP",
    [CAP_LINUX_IMMUTABLE] = "CAP_LINUX_IMMUTABLE",
    [CAP_NET_BIND_SERVICE] = "CAP_NET_BIND_SERVICE",
    [CAP_NET_BROADCAST] = "CAP_NET_BROADCAST",
    [CAP_NET_ADMIN] = "CAP_NET_ADMIN",
    [CAP_NET_RAW] = "CAP_NET_RAW",
    [CAP_IPC_LOCK] = "CAP_IPC_LOCK",
    [CAP_IPC_OWNER] = "CAP_IPC_OWNER",
    [CAP_SYS_MODULE] = "CAP_SYS_MODULE",
    [CAP_SYS_RAWIO] = "CAP_SYS_RAWIO",
    [CAP_SYS_CHROOT] = "CAP_SYS_CHROOT",
    [CAP_SYS_PTRACE] = "CAP_SYS_PTRACE",
    [CAP_SYS_PACCT] = "CAP_SYS_PACCT",
    [CAP_SYS_ADMIN] = "CAP_SYS_ADMIN",
    [CAP_SYS_BOOT] = "CAP_SYS_BOOT",
    [CAP_SYS_NICE] = "CAP_SYS_NICE",
    [CAP_SYS_RESOURCE] = "CAP_SYS_RESOURCE",
    [CAP_SYS_TIME] = "CAP_SYS_TIME",
    [CAP_SYS_TTY_CONFIG] = "CAP_SYS_TTY_CONFIG",
    [CAP_MKNOD] = "CAP_MKNOD",
    [CAP_LEASE] = "CAP_LEASE",
    [CAP_AUDIT_WRITE] = "CAP_AUDIT_WRITE",
    [CAP_AUDIT_CONTROL] = "CAP_AUDIT_CONTROL",
    [CAP_SETFCAP] = "CAP_SETFCAP",
    [CAP_MAC_OVERRIDE] = "CAP_MAC_OVERRIDE",
    [CAP_MAC_ADMIN] = "CAP_MAC_ADMIN",
    [CAP_SYSLOG] = "CAP_SYSLOG",
    [CAP_WAKE_ALARM] = "CAP_WAKE_ALARM",
    [CAP_BLOCK_SUSPEND] = "CAP_BLOCK_SUSPEND",
    [CAP_AUDIT_READ] = "CAP_AUDIT_READ",
    [CAP_PERFMON] = "CAP_PERFMON",
    [CAP_BPF] = "CAP_BPF",
    [CAP_CHECKPOINT_RESTORE] = "CAP_CHECKPOINT_RESTORE",
};

/* A list of strings (null or absent: empty). */
static int string_list(json_t *v, const char *where, const char *key, size_t max, err_t *err)
{
    if (!v)
        return 0;
    if (!json_is_array(v))
        return invalid(err, "%s%s%s must be a list", where, SEP(where), key);
    if (json_array_size(v) > max)
        return invalid(err, "%s%s%s has more than %zu entries", where, SEP(where), key, max);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s)
    {
        char what[48];
        snprintf(what, sizeof(what), "%s[%zu]", key, i);
        int r = check_string(s, where, what, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* includes / excludes: does each condition given hold here? */
struct conditions {
    bool caps_given, all_caps, any_cap;
    bool arches_given, arch_matches;
    bool kernel_given, kernel_at_least;
};

static int parse_conditions(json_t *v, const char *where, const char *key, const struct profile_parse *ps,
                            struct conditions *c, err_t *err)
{
    memset(c, 0, sizeof(*c));
    if (!v)
        return 0;
    if (!json_is_object(v))
        return invalid(err, "%s: %s must be an object", where, key);
    char what[48], q[QUOTE_BUF];
    json_t *caps = member(v, "caps"), *arches = member(v, "arches"), *min_kernel = member(v, "minKernel");
    snprintf(what, sizeof(what), "%s.caps", key);
    int r = string_list(caps, where, what, 64, err);
    if (r < 0)
        return r;
    size_t i;
    json_t *s;
    c->all_caps = true;
    json_array_foreach(caps, i, s)
    {
        const char *name = json_string_value(s);
        size_t cap = 0;
        while (cap < ARRAY_SIZE(cap_names) && (!cap_names[cap] || strcmp(cap_names[cap], name) != 0))
            cap++;
        if (cap == ARRAY_SIZE(cap_names))
            return invalid(err, "%s: %s: unknown capability %s", where, what, quote(q, name));
        c->caps_given = true;
        if (has_cap(ps->caps, (int)cap))
            c->any_cap = true;
        else
            c->all_caps = false;
    }
    snprintf(what, sizeof(what), "%s.arches", key);
    if ((r = string_list(arches, where, what, 64, err)) < 0)
        return r;
    json_array_foreach(arches, i, s)
    {
        uint32_t token = arch_from_go_name(json_string_value(s));
        if (!token)
            return invalid(err, "%s: %s: unknown architecture %s", where, what, quote(q, json_string_value(s)));
        c->arches_given = true;
        if (token == ps->native)
            c->arch_matches = true;
    }
    if (min_kernel) {
        snprintf(what, sizeof(what), "%s.minKernel", key);
        if ((r = check_string(min_kernel, where, what, err)) < 0)
            return r;
        struct kver want;
        if (!parse_kver(json_string_value(min_kernel), false, &want))
            return invalid(err, "%s: %s: %s is not a kernel version like 4.8", where, what,
                           quote(q, json_string_value(min_kernel)));
        c->kernel_given = true;
        c->kernel_at_least = kver_cmp(&ps->kernel, &want) >= 0;
    }
    return 0;
}

/* Docker's reading: a rule applies when every includes condition holds (all
 * of its caps held) and no excludes condition does (none of its caps held). */
static bool rule_applies(const struct conditions *inc, const struct conditions *exc)
{
    if (inc->arches_given && !inc->arch_matches)
        return false;
    if (inc->caps_given && !inc->all_caps)
        return false;
    if (inc->kernel_given && !inc->kernel_at_least)
        return false;
    if (exc->arches_given && exc->arch_matches)
        return false;
    if (exc->caps_given && exc->any_cap)
        return false;
    if (exc->kernel_given && exc->kernel_at_least)
        return false;
    return true;
}

static int parse_rule(struct builder *b, struct profile_parse *ps, json_t *rule, size_t index, err_t *err)
{
    char where[48 + QUOTE_BUF], q[QUOTE_BUF];
    int r;
    snprintf(where, sizeof(where), "syscalls[%zu]", index);
    if (!json_is_object(rule))
        return invalid(err, "%s is not an object", where);

    json_t *name = member(rule, "name"), *names = member(rule, "names");
    if (name && names)
        return invalid(err, "%s: has both name and names; use one", where);
    if (name && (r = check_string(name, where, "name", err)) < 0)
        return r;
    if (names && (r = string_list(names, where, "names", SECCOMP_PROFILE_MAX_NAMES, err)) < 0)
        return r;
    size_t n_names = name ? 1 : names ? json_array_size(names) : 0;
    if (n_names > SECCOMP_PROFILE_MAX_NAMES - ps->n_names)
        return invalid(err, "%s: more than %d syscall names in the profile", where, SECCOMP_PROFILE_MAX_NAMES);
    ps->n_names += n_names;
    if (n_names) {
        const char *first = name ? json_string_value(name) : json_string_value(json_array_get(names, 0));
        snprintf(where, sizeof(where), "syscalls[%zu] (%s%s)", index, quote(q, first), n_names > 1 ? ", ..." : "");
    }

    uint32_t action;
    if ((r = parse_action(member(rule, "action"), member(rule, "errnoRet"), where, "action", "errnoRet", &action,
                          err)) < 0)
        return r;
    struct scmp_arg_cmp args[MAX_ARGS];
    unsigned n_args;
    if ((r = parse_args(member(rule, "args"), where, args, &n_args, err)) < 0)
        return r;
    struct conditions inc, exc;
    if ((r = parse_conditions(member(rule, "includes"), where, "includes", ps, &inc, err)) < 0)
        return r;
    if ((r = parse_conditions(member(rule, "excludes"), where, "excludes", ps, &exc, err)) < 0)
        return r;
    if (!rule_applies(&inc, &exc))
        return 0;

    for (size_t i = 0; i < n_names; i++) {
        json_t *s = name ? name : json_array_get(names, i);
        if (json_string_length(s) > NAME_MAX_LEN)
            continue; /* no syscall is called that */
        if ((r = builder_add(b, json_string_value(s), action, args, n_args, where, err)) < 0)
            return r;
    }
    return 0;
}

static int parse_arch_list(json_t *v, const char *key, uint32_t *out, size_t *n_out, err_t *err)
{
    char q[QUOTE_BUF];
    int r = string_list(v, "", key, MAX_ARCHES, err);
    if (r < 0)
        return r;
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s)
    {
        uint32_t token = arch_from_scmp_name(json_string_value(s));
        if (!token)
            return invalid(err, "%s[%zu]: unknown architecture %s", key, i, quote(q, json_string_value(s)));
        out[(*n_out)++] = token;
    }
    return 0;
}

/* architectures, or Docker's archMap: the entry for the native architecture
 * gives it and its subArchitectures. Neither: the native one alone. */
static int parse_arches(json_t *root, uint32_t native, uint32_t *out, size_t *n_out, err_t *err)
{
    json_t *arches = member(root, "architectures"), *map = member(root, "archMap");
    int r = parse_arch_list(arches, "architectures", out, n_out, err);
    if (r < 0)
        return r;
    if (!map)
        return 0;
    if (!json_is_array(map))
        return invalid(err, "archMap must be a list");
    if (*n_out && json_array_size(map))
        return invalid(err, "architectures and archMap are both given; use one");
    if (json_array_size(map) > MAX_ARCHES)
        return invalid(err, "archMap has more than %d entries", MAX_ARCHES);
    size_t i;
    json_t *e;
    json_array_foreach(map, i, e)
    {
        char what[64], q[QUOTE_BUF];
        uint32_t tokens[MAX_ARCHES];
        size_t n = 0;
        if (!json_is_object(e))
            return invalid(err, "archMap[%zu] is not an object", i);
        json_t *arch = member(e, "architecture");
        snprintf(what, sizeof(what), "archMap[%zu]", i);
        if (!arch)
            return invalid(err, "%s: architecture is missing", what);
        if ((r = check_string(arch, what, "architecture", err)) < 0)
            return r;
        uint32_t token = arch_from_scmp_name(json_string_value(arch));
        if (!token)
            return invalid(err, "%s: unknown architecture %s", what, quote(q, json_string_value(arch)));
        snprintf(what, sizeof(what), "archMap[%zu].subArchitectures", i);
        if ((r = parse_arch_list(member(e, "subArchitectures"), what, tokens, &n, err)) < 0)
            return r;
        if (token != native)
            continue;
        out[(*n_out)++] = token;
        for (size_t k = 0; k < n && *n_out < MAX_ARCHES; k++)
            out[(*n_out)++] = tokens[k];
    }
    return 0;
}

static int parse_flags(json_t *v, err_t *err)
{
    static const char *const known[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
    int r = string_list(v, "", "flags", 16, err);
    if (r < 0)
        return r;
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s)
    {
        char q[QUOTE_BUF];
        size_t k = 0;
        while (k < ARRAY_SIZE(known) && strcmp(known[k], json_string_value(s)) != 0)
            k++;
        if (k == ARRAY_SIZE(known))
            return invalid(err, "flags[%zu]: unknown flag %s", i, quote(q, json_string_value(s)));
    }
    return 0;
}

static int build_from_json(struct builder *b, json_t *root, uint64_t caps, err_t *err)
{
    char q[QUOTE_BUF];
    int r;
    if (!json_is_object(root))
        return invalid(err, "not a JSON object");
    json_t *listener = member(root, "listenerPath");
    if (listener && (!json_is_string(listener) || json_string_length(listener) > 0))
        return invalid(err, "listenerPath %s: seccomp notification listeners are not supported",
                       json_is_string(listener) ? quote(q, json_string_value(listener)) : "(not a string)");

    uint32_t def_action;
    if ((r = parse_action(member(root, "defaultAction"), member(root, "defaultErrnoRet"), "", "defaultAction",
                          "defaultErrnoRet", &def_action, err)) < 0)
        return r;
    if ((r = parse_flags(member(root, "flags"), err)) < 0)
        return r;
    uint32_t arches[2 * MAX_ARCHES];
    size_t n_arches = 0;
    if ((r = parse_arches(root, seccomp_arch_native(), arches, &n_arches, err)) < 0)
        return r;
    json_t *rules = member(root, "syscalls");
    if (rules && !json_is_array(rules))
        return invalid(err, "syscalls must be a list");
    if (json_array_size(rules) > SECCOMP_PROFILE_MAX_RULES)
        return invalid(err, "syscalls has %zu rules, more than %d", json_array_size(rules), SECCOMP_PROFILE_MAX_RULES);

    if ((r = builder_init(b, def_action, err)) < 0)
        return r;
    for (size_t i = 0; i < n_arches; i++)
        if ((r = builder_add_arch(b, arches[i], err)) < 0)
            return r;
    struct profile_parse ps = {.caps = caps, .native = seccomp_arch_native()};
    running_kernel(&ps.kernel);
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        if ((r = parse_rule(b, &ps, rule, i, err)) < 0)
            return r;
    }
    return 0;
}

int seccomp_build_from_json(const char *json, size_t len, uint64_t caps, struct seccomp_program *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (len > SECCOMP_PROFILE_MAX_SIZE)
        return invalid(err, "%zu bytes, more than %u", len, SECCOMP_PROFILE_MAX_SIZE);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return invalid(err, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    struct builder b = {0};
    int r = build_from_json(&b, root, caps, err);
    if (r == 0)
        r = builder_finish(&b, out, err);
    builder_release(&b);
    json_decref(root);
    return r;
}
