/* The cgroup v2 device filter, written from the kernel's documentation
 * (Documentation/bpf/, the BPF_PROG_TYPE_CGROUP_DEVICE context in
 * <linux/bpf.h>) and the v1 controller's rules (cgroup-v1/devices.rst).
 *
 * The rule list is first replayed the way the v1 controller applies writes,
 * leaving a default and a set of exceptions whose order no longer matters;
 * the program then tests the exceptions one after the other. Replaying
 * rather than testing rules newest-first keeps v1's merging: "c 4:1 r" then
 * "c 4:1 w" allow opening 4:1 read-write (one request carrying both bits),
 * which no single rule covers. */
#include "runtime/devfilter.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

/* ---- rules ------------------------------------------------------------- */

int devfilter_access_parse(const char *text, unsigned *out)
{
    unsigned bits = 0;
    if (!text || !*text)
        return -EINVAL;
    for (const char *c = text; *c; c++) {
        unsigned b = *c == 'r' ? DEVFILTER_READ : *c == 'w' ? DEVFILTER_WRITE : *c == 'm' ? DEVFILTER_MKNOD : 0;
        if (!b || (bits & b))
            return -EINVAL;
        bits |= b;
    }
    *out = bits;
    return 0;
}

int devfilter_rule_check(const struct devfilter_rule *r, err_t *err)
{
    if (r->type == DEVFILTER_ALL)
        return 0;
    if (r->type != DEVFILTER_CHAR && r->type != DEVFILTER_BLOCK)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device rule: type %#x is not a (all), c or b",
                       (unsigned char)r->type);
    if (r->major != DEVFILTER_ANY && (r->major < 0 || r->major > DEVFILTER_MAJOR_MAX))
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "device rule: major %d is not * or 0..%d", (int)r->major,
                       DEVFILTER_MAJOR_MAX);
    if (r->minor != DEVFILTER_ANY && (r->minor < 0 || r->minor > DEVFILTER_MINOR_MAX))
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "device rule: minor %d is not * or 0..%d", (int)r->minor,
                       DEVFILTER_MINOR_MAX);
    if (r->access == 0 || (r->access & ~(unsigned)DEVFILTER_RWM))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "device rule: access bits %#x are not a non-empty set of r, w, m", r->access);
    return 0;
}

/* A decimal device number up to `max`, or "*"; advances *p past it. */
static bool parse_number(const char **p, int32_t max, int32_t *out)
{
    const char *s = *p;
    if (*s == '*') {
        *out = DEVFILTER_ANY;
        *p = s + 1;
        return true;
    }
    int64_t v = 0;
    const char *start = s;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > max)
            return false;
        s++;
    }
    if (s == start)
        return false;
    *out = (int32_t)v;
    *p = s;
    return true;
}

int devfilter_rule_parse(const char *text, bool allow, struct devfilter_rule *out, err_t *err)
{
    if (!text)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device rule: none given");
    struct devfilter_rule r = {.allow = allow, .type = text[0]};
    if (strcmp(text, "a") == 0) {
        *out = (struct devfilter_rule){.allow = allow, .type = DEVFILTER_ALL};
        return 0;
    }
    const char *p = text + 1;
    bool ok = (r.type == DEVFILTER_CHAR || r.type == DEVFILTER_BLOCK) && *p++ == ' ' &&
              parse_number(&p, DEVFILTER_MAJOR_MAX, &r.major) && *p++ == ':' &&
              parse_number(&p, DEVFILTER_MINOR_MAX, &r.minor) && *p++ == ' ' && strlen(p) <= 3 &&
              devfilter_access_parse(p, &r.access) == 0;
    if (!ok)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "device rule \"%.64s\" is not \"a\" or \"<c|b> <major|*>:<minor|*> <r, w, m>\"", text);
    *out = r;
    return 0;
}

int devfilter_rule_format(const struct devfilter_rule *r, char *buf, size_t size)
{
    if (r->type == DEVFILTER_ALL)
        return (size_t)snprintf(buf, size, "a") < size ? 1 : -ENOSPC;
    char major[12] = "*", minor[12] = "*", access[4];
    size_t k = 0;
    if (r->major != DEVFILTER_ANY)
        snprintf(major, sizeof(major), "%d", (int)r->major);
    if (r->minor != DEVFILTER_ANY)
        snprintf(minor, sizeof(minor), "%d", (int)r->minor);
    if (r->access & DEVFILTER_READ)
        access[k++] = 'r';
    if (r->access & DEVFILTER_WRITE)
        access[k++] = 'w';
    if (r->access & DEVFILTER_MKNOD)
        access[k++] = 'm';
    access[k] = '\0';
    int n = snprintf(buf, size, "%c %s:%s %s", r->type, major, minor, access);
    return n >= 0 && (size_t)n < size ? n : -ENOSPC;
}

int devfilter_rules_add(struct devfilter_rules *l, const struct devfilter_rule *r, err_t *err)
{
    int rc = devfilter_rule_check(r, err);
    if (rc < 0)
        return rc;
    if (l->n >= DEVFILTER_MAX_RULES)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, E2BIG, "more than %d device rules", DEVFILTER_MAX_RULES);
    l->rule[l->n++] = *r;
    return 0;
}

/* ---- the v1 replay --------------------------------------------------------- */

/* One v1 exception: a device key (type and numbers, wildcards included) and
 * the access bits that differ from the default for it. */
struct exception {
    char type;
    int32_t major, minor;
    unsigned access;
};

/* Applies the writes in order, as security/device_cgroup.c does. A rule
 * that agrees with the default removes bits from the exception of exactly
 * its key (never from a wider or narrower one); a rule that disagrees adds
 * them. Returns the number of exceptions left in `ex`. */
static size_t replay(const struct devfilter_rules *l, bool *default_allow, struct exception *ex)
{
    size_t n = 0;
    *default_allow = l->default_allow;
    for (size_t i = 0; i < l->n; i++) {
        const struct devfilter_rule *r = &l->rule[i];
        if (r->type == DEVFILTER_ALL) {
            *default_allow = r->allow;
            n = 0;
            continue;
        }
        size_t k = 0;
        while (k < n && !(ex[k].type == r->type && ex[k].major == r->major && ex[k].minor == r->minor))
            k++;
        if (r->allow != *default_allow) {
            if (k == n)
                ex[n++] = (struct exception){.type = r->type, .major = r->major, .minor = r->minor};
            ex[k].access |= r->access;
        } else if (k < n && (ex[k].access &= ~r->access) == 0) {
            ex[k] = ex[--n]; /* order does not matter */
        }
    }
    return n;
}

/* ---- code generation --------------------------------------------------------- */

/* Registers while the exceptions are tested: the context's fields, split. */
enum {
    R_RET = BPF_REG_0,
    R_CTX = BPF_REG_1,
    R_TYPE = BPF_REG_2,
    R_ACCESS = BPF_REG_3,
    R_MAJOR = BPF_REG_4,
    R_MINOR = BPF_REG_5,
};

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

static struct bpf_insn load_ctx_u32(uint8_t dst, size_t offset)
{
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, R_CTX, (int16_t)offset, 0);
}

static struct bpf_insn alu_imm(uint8_t op, uint8_t dst, int32_t imm)
{
    return insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}

static struct bpf_insn mov_reg(uint8_t dst, uint8_t src)
{
    return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}

/* A conditional jump whose offset is filled in once the block's end is
 * known. */
static struct bpf_insn jump_imm(uint8_t op, uint8_t dst, int32_t imm)
{
    return insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm);
}

static struct bpf_insn exit_insn(void)
{
    return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* The longest exception block: type, major and minor tests, three
 * instructions for the access test by default allow, the verdict and exit. */
#define BLOCK_MAX 8

/* One exception: when it applies to the request, return its verdict (allow
 * under default deny when it covers every requested bit; deny under default
 * allow when it shares one); else fall through to the next block. */
static size_t emit_exception(const struct exception *e, bool default_allow, struct bpf_insn *out)
{
    size_t n = 0, jumps[BLOCK_MAX], n_jumps = 0;
    /* v1 skips an exception whose type lacks the request's type bit. */
    int32_t other_type = e->type == DEVFILTER_CHAR ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    jumps[n_jumps++] = n;
    out[n++] = jump_imm(BPF_JSET, R_TYPE, other_type);
    if (e->major != DEVFILTER_ANY) {
        jumps[n_jumps++] = n;
        out[n++] = jump_imm(BPF_JNE, R_MAJOR, e->major);
    }
    if (e->minor != DEVFILTER_ANY) {
        jumps[n_jumps++] = n;
        out[n++] = jump_imm(BPF_JNE, R_MINOR, e->minor);
    }
    if (!default_allow) {
        /* any requested bit outside the exception: not this one */
        jumps[n_jumps++] = n;
        out[n++] = jump_imm(BPF_JSET, R_ACCESS, (int32_t)~e->access);
    } else {
        /* no requested bit in the exception: not this one */
        out[n++] = mov_reg(R_RET, R_ACCESS);
        out[n++] = alu_imm(BPF_AND, R_RET, (int32_t)e->access);
        jumps[n_jumps++] = n;
        out[n++] = jump_imm(BPF_JEQ, R_RET, 0);
    }
    out[n++] = alu_imm(BPF_MOV, R_RET, default_allow ? 0 : 1);
    out[n++] = exit_insn();
    for (size_t i = 0; i < n_jumps; i++)
        out[jumps[i]].off = (int16_t)(n - jumps[i] - 1);
    return n;
}

int devfilter_build(const struct devfilter_rules *l, struct devfilter_program *out, err_t *err)
{
    *out = (struct devfilter_program){0};
    if (l->n > DEVFILTER_MAX_RULES)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, E2BIG, "%zu device rules, more than %d", l->n, DEVFILTER_MAX_RULES);
    for (size_t i = 0; i < l->n; i++) {
        int r = devfilter_rule_check(&l->rule[i], err);
        if (r < 0)
            return err_wrap(err, "device rule %zu", i);
    }
    struct exception ex[DEVFILTER_MAX_RULES];
    bool default_allow;
    size_t n_ex = replay(l, &default_allow, ex);

    enum { PROLOGUE = 6, EPILOGUE = 2 };
    size_t cap = PROLOGUE + n_ex * BLOCK_MAX + EPILOGUE;
    _cleanup_free_ struct bpf_insn *p = calloc(cap, sizeof(*p));
    if (!p)
        return err_sys(err, ENOMEM, "building the device filter program");
    size_t n = 0;
    /* access_type is (access << 16) | type; a 32-bit load zero-extends. */
    p[n++] = load_ctx_u32(R_TYPE, offsetof(struct bpf_cgroup_dev_ctx, access_type));
    p[n++] = mov_reg(R_ACCESS, R_TYPE);
    p[n++] = alu_imm(BPF_RSH, R_ACCESS, 16);
    p[n++] = alu_imm(BPF_AND, R_TYPE, 0xffff);
    p[n++] = load_ctx_u32(R_MAJOR, offsetof(struct bpf_cgroup_dev_ctx, major));
    p[n++] = load_ctx_u32(R_MINOR, offsetof(struct bpf_cgroup_dev_ctx, minor));
    for (size_t i = 0; i < n_ex; i++)
        n += emit_exception(&ex[i], default_allow, p + n);
    p[n++] = alu_imm(BPF_MOV, R_RET, default_allow ? 1 : 0);
    p[n++] = exit_insn();
    out->insns = steal_pointer(&p);
    out->n = n;
    return 0;
}

void devfilter_program_free(struct devfilter_program *p)
{
    free(p->insns);
    *p = (struct devfilter_program){0};
}

/* ---- the kernel -------------------------------------------------------------- */

/* The kernel allows 64 programs per cgroup and attach type. */
#define ATTACHED_MAX 64
/* Enough verifier log for the lines that explain a refusal. */
#define VERIFIER_LOG_SIZE (64 * 1024)
#define VERIFIER_LOG_TAIL 1500

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r;
    do
        r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
    while (r < 0 && (errno == EINTR || errno == EAGAIN));
    return (int)r;
}

static int prog_load(const struct devfilter_program *p, char *log, size_t log_size)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uintptr_t)p->insns;
    a.insn_cnt = (uint32_t)p->n;
    /* No GPL-only helper is called; the project's own license. */
    a.license = (uintptr_t) "Apache-2.0";
    /* How bpftool and the like name it. */
    snprintf(a.prog_name, sizeof(a.prog_name), "edgecri_devices");
    if (log) {
        log[0] = '\0';
        a.log_level = 1;
        a.log_buf = (uintptr_t)log;
        a.log_size = (uint32_t)log_size;
    }
    return sys_bpf(BPF_PROG_LOAD, &a);
}

/* Loads without a log first: a log costs the verifier time and, when it
 * overflows, fails the load by itself. Only a refusal is loaded again with
 * one, for the error message. */
int devfilter_load(const struct devfilter_program *p, err_t *err)
{
    int fd = prog_load(p, NULL, 0);
    if (fd >= 0)
        return fd;
    int e = errno;
    _cleanup_free_ char *log = malloc(VERIFIER_LOG_SIZE);
    if (!log)
        return err_sys(err, e, "loading the device filter program (%zu instructions)", p->n);
    fd = prog_load(p, log, VERIFIER_LOG_SIZE);
    if (fd >= 0)
        return fd;
    log[VERIFIER_LOG_SIZE - 1] = '\0';
    for (char *c = log; *c; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    size_t len = strlen(log);
    while (len > 0 && log[len - 1] == ' ')
        log[--len] = '\0';
    const char *tail = len > VERIFIER_LOG_TAIL ? log + len - VERIFIER_LOG_TAIL : log;
    return err_set(err, err_code_from_errno(e), e, "loading the device filter program (%zu instructions): %s%s%s%s",
                   p->n, strerror(e), *tail ? "; verifier log: " : "", tail != log ? "…" : "", tail);
}

/* The ids of the device programs attached to the cgroup itself. */
static int query_attached(int cgroup_dirfd, uint32_t *ids, uint32_t *n)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = (uint32_t)cgroup_dirfd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uintptr_t)ids;
    a.query.prog_cnt = *n;
    if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
        return -errno;
    *n = a.query.prog_cnt;
    return 0;
}

static int detach_id(int cgroup_dirfd, uint32_t id)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    _cleanup_close_ int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno; /* gone meanwhile */
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgroup_dirfd;
    a.attach_bpf_fd = (uint32_t)fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int devfilter_attach(int cgroup_dirfd, const struct devfilter_rules *l, err_t *err)
{
    struct devfilter_program p;
    int r = devfilter_build(l, &p, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = devfilter_load(&p, err);
    devfilter_program_free(&p);
    if (fd < 0)
        return fd;
    uint32_t old[ATTACHED_MAX], n_old = ATTACHED_MAX;
    if ((r = query_attached(cgroup_dirfd, old, &n_old)) < 0)
        return err_sys(err, -r, "listing the device programs attached to the cgroup");
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgroup_dirfd;
    a.attach_bpf_fd = (uint32_t)fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
        return err_sys(err, errno, "attaching the device filter program to the cgroup");
    /* Only now: the cgroup is never without a filter in between. */
    for (uint32_t i = 0; i < n_old; i++)
        if ((r = detach_id(cgroup_dirfd, old[i])) < 0)
            return err_sys(err, -r, "detaching the cgroup's earlier device filter program %u", old[i]);
    return 0;
}
