/* The eBPF device filter: the generated program, run by a small interpreter
 * of exactly the instructions the generator may emit, must decide like a
 * plain model of cgroup v1's devices controller for many rule lists and
 * requests; malformed rules are refused; and, as root, a real cgroup with
 * the filter attached lets a child open /dev/null but not /dev/zero. */
#include "runtime/devfilter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/container_devices.h"
#include "unit.h"
#include "util/cleanup.h"

/* ---- an interpreter for the emitted subset ------------------------------ */

struct request {
    unsigned type;   /* BPF_DEVCG_DEV_* */
    unsigned access; /* BPF_DEVCG_ACC_* bits */
    uint32_t major, minor;
};

/* Runs the program on one request. Returns 1 (allow) or 0 (deny), or -1
 * (with a message in `why`) for anything the generator should never emit:
 * an unknown instruction, a backward or out-of-range jump, a read of an
 * unset register, a context access other than the three u32 fields, a
 * return value other than 0 and 1, or running off the end. */
static int interpret(const struct devfilter_program *p, const struct request *q, char *why, size_t why_size)
{
    uint32_t ctx[3] = {(uint32_t)q->access << 16 | q->type, q->major, q->minor};
    uint64_t reg[11] = {0};
    bool set[11] = {false}, is_ctx[11] = {false};
    set[BPF_REG_1] = is_ctx[BPF_REG_1] = true;
#define BAD(...)                                                                                                       \
    do {                                                                                                               \
        snprintf(why, why_size, __VA_ARGS__);                                                                          \
        return -1;                                                                                                     \
    } while (0)
    for (size_t pc = 0; pc < p->n; pc++) {
        const struct bpf_insn *i = &p->insns[pc];
        uint8_t d = i->dst_reg, s = i->src_reg;
        uint64_t imm = (uint64_t)(int64_t)i->imm;
        if (d > 9)
            BAD("insn %zu: destination r%u", pc, d);
        switch (i->code) {
        case BPF_LDX | BPF_MEM | BPF_W:
            if (!is_ctx[s] || i->off < 0 || i->off > 8 || i->off % 4 || i->imm)
                BAD("insn %zu: load from r%u%+d", pc, s, i->off);
            reg[d] = ctx[i->off / 4];
            break;
        case BPF_ALU64 | BPF_MOV | BPF_X:
            if (s > 9 || !set[s] || is_ctx[s])
                BAD("insn %zu: move from r%u", pc, s);
            reg[d] = reg[s];
            break;
        case BPF_ALU64 | BPF_MOV | BPF_K:
            reg[d] = imm;
            break;
        case BPF_ALU64 | BPF_RSH | BPF_K:
        case BPF_ALU64 | BPF_AND | BPF_K:
            if (!set[d] || is_ctx[d] || s || (BPF_OP(i->code) == BPF_RSH && i->imm > 63))
                BAD("insn %zu: ALU on r%u", pc, d);
            reg[d] = BPF_OP(i->code) == BPF_RSH ? reg[d] >> i->imm : reg[d] & imm;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
        case BPF_JMP | BPF_JNE | BPF_K:
        case BPF_JMP | BPF_JSET | BPF_K: {
            if (!set[d] || is_ctx[d] || s)
                BAD("insn %zu: jump on r%u", pc, d);
            if (i->off < 0 || pc + 1 + (size_t)i->off >= p->n)
                BAD("insn %zu: jump by %d", pc, i->off);
            bool taken = BPF_OP(i->code) == BPF_JEQ   ? reg[d] == imm
                         : BPF_OP(i->code) == BPF_JNE ? reg[d] != imm
                                                      : (reg[d] & imm) != 0;
            if (taken)
                pc += (size_t)i->off;
            continue; /* d is only read */
        }
        case BPF_JMP | BPF_EXIT:
            if (!set[BPF_REG_0] || reg[BPF_REG_0] > 1)
                BAD("insn %zu: exit with r0 %s %llu", pc, set[0] ? "=" : "unset", (unsigned long long)reg[0]);
            return (int)reg[BPF_REG_0];
        default:
            BAD("insn %zu: opcode %#x is not one the generator emits", pc, i->code);
        }
        set[d] = true;
        is_ctx[d] = false;
    }
    BAD("ran off the end of %zu instructions", p->n);
#undef BAD
}

/* ---- a reference model of the v1 devices controller ---------------------- */

/* As security/device_cgroup.c keeps it: a behavior and a list of
 * exceptions, each a key with access bits. */
struct v1_cgroup {
    bool allow_by_default;
    size_t n;
    struct devfilter_rule ex[DEVFILTER_MAX_RULES];
};

static unsigned v1_type_bits(char type)
{
    return type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
}

static struct devfilter_rule *v1_find(struct v1_cgroup *cg, const struct devfilter_rule *r)
{
    for (size_t i = 0; i < cg->n; i++)
        if (cg->ex[i].type == r->type && cg->ex[i].major == r->major && cg->ex[i].minor == r->minor)
            return &cg->ex[i];
    return NULL;
}

/* One write to devices.allow (r->allow) or devices.deny. */
static void v1_write(struct v1_cgroup *cg, const struct devfilter_rule *r)
{
    if (r->type == 'a') {
        cg->allow_by_default = r->allow;
        cg->n = 0;
        return;
    }
    struct devfilter_rule *e = v1_find(cg, r);
    bool add = r->allow != cg->allow_by_default;
    if (add && e) {
        e->access |= r->access;
    } else if (add) {
        cg->ex[cg->n++] = *r;
    } else if (e) {
        e->access &= ~r->access;
        if (!e->access) {
            memmove(e, e + 1, (size_t)(&cg->ex[cg->n] - (e + 1)) * sizeof(*e));
            cg->n--;
        }
    }
}

static bool v1_key_matches(const struct devfilter_rule *e, const struct request *q)
{
    unsigned et = v1_type_bits(e->type);
    if ((q->type & BPF_DEVCG_DEV_BLOCK) && !(et & BPF_DEVCG_DEV_BLOCK))
        return false;
    if ((q->type & BPF_DEVCG_DEV_CHAR) && !(et & BPF_DEVCG_DEV_CHAR))
        return false;
    if (e->major != DEVFILTER_ANY && (uint32_t)e->major != q->major)
        return false;
    return e->minor == DEVFILTER_ANY || (uint32_t)e->minor == q->minor;
}

static bool v1_allows(const struct v1_cgroup *cg, const struct request *q)
{
    for (size_t i = 0; i < cg->n; i++) {
        const struct devfilter_rule *e = &cg->ex[i];
        if (!v1_key_matches(e, q))
            continue;
        if (cg->allow_by_default && (q->access & e->access))
            return false; /* any shared bit denies */
        if (!cg->allow_by_default && !(q->access & ~e->access))
            return true; /* one exception must cover every bit */
    }
    return cg->allow_by_default;
}

static void v1_replay(const struct devfilter_rules *l, struct v1_cgroup *cg)
{
    cg->allow_by_default = l->default_allow;
    cg->n = 0;
    for (size_t i = 0; i < l->n; i++)
        v1_write(cg, &l->rule[i]);
}

/* ---- helpers ------------------------------------------------------------- */

static struct devfilter_rules *rules_new(bool default_allow)
{
    struct devfilter_rules *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->default_allow = default_allow;
    return l;
}

static void add(struct devfilter_rules *l, bool allow, const char *text)
{
    err_t err = ERR_INIT;
    struct devfilter_rule r;
    int rc = devfilter_rule_parse(text, allow, &r, &err);
    CHECK_MSG(rc == 0, "parse \"%s\": %s", text, err.msg ? err.msg : "");
    if (rc == 0)
        CHECK_OK(devfilter_rules_add(l, &r, &err));
    err_clear(&err);
}

/* The verdict of the compiled list, -1 when it cannot be decided. */
static int verdict(const struct devfilter_rules *l, char type, uint32_t major, uint32_t minor, const char *access)
{
    struct request q = {.type = v1_type_bits(type), .major = major, .minor = minor};
    if (devfilter_access_parse(access, &q.access) < 0)
        abort();
    struct devfilter_program p;
    err_t err = ERR_INIT;
    if (devfilter_build(l, &p, &err) < 0) {
        UNIT_FAIL("build: %s", err.msg);
        err_clear(&err);
        return -1;
    }
    char why[160] = "";
    int v = interpret(&p, &q, why, sizeof(why));
    if (v < 0)
        UNIT_FAIL("interpret: %s", why);
    devfilter_program_free(&p);
    return v;
}

#define ALLOWED(l, t, ma, mi, acc) CHECK_MSG(verdict(l, t, ma, mi, acc) == 1, "%c %u:%u %s denied", t, ma, mi, acc)
#define DENIED(l, t, ma, mi, acc)  CHECK_MSG(verdict(l, t, ma, mi, acc) == 0, "%c %u:%u %s allowed", t, ma, mi, acc)

/* ---- tests ------------------------------------------------------------------ */

static void test_parse_and_format(void)
{
    static const char *const good[] = {"a",          "c *:* m", "b *:* m",         "c 1:3 rwm",
                                       "c 136:* rw", "b 8:0 r", "c 4095:1048575 w"};
    err_t err = ERR_INIT;
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        struct devfilter_rule r;
        CHECK_OK(devfilter_rule_parse(good[i], true, &r, &err));
        CHECK_OK(devfilter_rule_check(&r, &err));
        char text[32];
        CHECK(devfilter_rule_format(&r, text, sizeof(text)) > 0);
        CHECK_STREQ(text, good[i]);
    }
    struct devfilter_rule r;
    CHECK_OK(devfilter_rule_parse("c 10:200 mwr", false, &r, &err));
    CHECK(!r.allow && r.type == 'c' && r.major == 10 && r.minor == 200 && r.access == DEVFILTER_RWM);
    char small[4];
    CHECK_EQ_INT(devfilter_rule_format(&r, small, sizeof(small)), -ENOSPC);

    static const char *const bad[] = {"",
                                      "x",
                                      "a *:* rwm",
                                      "c",
                                      "c 1:3",
                                      "c 1:3 ",
                                      "c 1:3 rwx",
                                      "c 1:3 rr",
                                      "c 1:3 rwmr",
                                      "c 1:3  r",
                                      "c  1:3 r",
                                      "c 1: r",
                                      "c :3 r",
                                      "c 1 3 r",
                                      "c -1:3 r",
                                      "c 4096:0 r",
                                      "c 1:1048576 r",
                                      "c 1:3 r ",
                                      "C 1:3 r",
                                      "b 99999999999999999999:1 r",
                                      "c 1:3 r\n",
                                      "c **:3 r"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int rc = devfilter_rule_parse(bad[i], true, &r, &err);
        CHECK_MSG(rc == -EINVAL && err.code == ERR_INVALID_ARGUMENT, "\"%s\" was accepted", bad[i]);
        err_clear(&err);
    }
    CHECK_EQ_INT(devfilter_rule_parse(NULL, true, &r, &err), -EINVAL);
    err_clear(&err);

    unsigned bits;
    CHECK_OK(devfilter_access_parse("wm", &bits));
    CHECK_EQ_INT(bits, DEVFILTER_WRITE | DEVFILTER_MKNOD);
    CHECK_EQ_INT(devfilter_access_parse("", &bits), -EINVAL);
    CHECK_EQ_INT(devfilter_access_parse("ww", &bits), -EINVAL);
    CHECK_EQ_INT(devfilter_access_parse("a", &bits), -EINVAL);
}

static void test_malformed_rules_refused(void)
{
    static const struct devfilter_rule bad[] = {
        {.allow = true, .type = 'x', .major = 1, .minor = 3, .access = DEVFILTER_READ},
        {.allow = true, .type = 0, .major = 1, .minor = 3, .access = DEVFILTER_READ},
        {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = 0},
        {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = 8},
        {.allow = true, .type = 'c', .major = -2, .minor = 3, .access = DEVFILTER_READ},
        {.allow = true, .type = 'b', .major = DEVFILTER_MAJOR_MAX + 1, .minor = 3, .access = DEVFILTER_READ},
        {.allow = true, .type = 'b', .major = 1, .minor = DEVFILTER_MINOR_MAX + 1, .access = DEVFILTER_READ},
        {.allow = false, .type = 'c', .major = 1, .minor = INT32_MIN, .access = DEVFILTER_READ},
    };
    err_t err = ERR_INIT;
    struct devfilter_rules *l = rules_new(false);
    add(l, true, "c 1:3 rwm");
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CHECK_MSG(devfilter_rules_add(l, &bad[i], &err) < 0 && err.code == ERR_INVALID_ARGUMENT, "rule %zu added", i);
        err_clear(&err);
        /* Put in behind the checks' back: the generator refuses it too. */
        l->rule[1] = bad[i];
        l->n = 2;
        struct devfilter_program p = {(struct bpf_insn *)1, 1};
        CHECK_MSG(devfilter_build(l, &p, &err) < 0 && err.code == ERR_INVALID_ARGUMENT, "rule %zu built", i);
        CHECK_CONTAINS(err.msg, "device rule 1");
        CHECK(p.insns == NULL && p.n == 0);
        err_clear(&err);
    }
    /* The bound. */
    l->n = 0;
    struct devfilter_rule r = {.allow = true, .type = 'c', .major = 1, .minor = 0, .access = DEVFILTER_READ};
    for (int i = 0; i < DEVFILTER_MAX_RULES; i++) {
        r.minor = i;
        CHECK_OK(devfilter_rules_add(l, &r, &err));
    }
    CHECK_EQ_INT(devfilter_rules_add(l, &r, &err), -E2BIG);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    err_clear(&err);
    /* The largest list compiles within the kernel's unprivileged limit too. */
    struct devfilter_program p;
    CHECK_OK(devfilter_build(l, &p, &err));
    CHECK_MSG(p.n > DEVFILTER_MAX_RULES && p.n <= BPF_MAXINSNS, "%zu instructions", p.n);
    devfilter_program_free(&p);
    l->n = DEVFILTER_MAX_RULES + 1;
    CHECK_EQ_INT(devfilter_build(l, &p, &err), -E2BIG);
    err_clear(&err);
    free(l);
}

static void test_container_defaults(void)
{
    struct devfilter_rules *l = rules_new(true);
    err_t err = ERR_INIT;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    CHECK_OK(container_device_rules(&cfg, false, l, &err));
    CHECK(!l->default_allow);
    CHECK_EQ_INT(l->n, 12);
    ALLOWED(l, 'c', 1, 3, "rw");    /* null */
    ALLOWED(l, 'c', 1, 9, "r");     /* urandom */
    ALLOWED(l, 'c', 5, 2, "rw");    /* ptmx */
    ALLOWED(l, 'c', 136, 7, "rw");  /* a pty */
    ALLOWED(l, 'c', 10, 200, "rw"); /* tun */
    ALLOWED(l, 'c', 250, 0, "m");   /* mknod of anything */
    ALLOWED(l, 'b', 8, 0, "m");
    DENIED(l, 'b', 8, 0, "r");  /* a disk */
    DENIED(l, 'c', 1, 1, "r");  /* /dev/mem */
    DENIED(l, 'c', 1, 11, "w"); /* /dev/kmsg */
    DENIED(l, 'c', 10, 237, "r");
    DENIED(l, 'b', 1, 3, "r"); /* numbers of null, block type */

    /* A requested device, read-only. */
    struct stat st;
    if (stat("/dev/loop-control", &st) == 0 && S_ISCHR(st.st_mode)) {
        Runtime__V1__Device dev = RUNTIME__V1__DEVICE__INIT, *devs[] = {&dev};
        dev.host_path = "/dev/loop-control";
        dev.container_path = "/dev/lc";
        dev.permissions = "r";
        cfg.devices = devs;
        cfg.n_devices = 1;
        CHECK_OK(container_device_rules(&cfg, false, l, &err));
        CHECK_EQ_INT(l->n, 13);
        ALLOWED(l, 'c', major(st.st_rdev), minor(st.st_rdev), "r");
        DENIED(l, 'c', major(st.st_rdev), minor(st.st_rdev), "w");
        DENIED(l, 'c', major(st.st_rdev), minor(st.st_rdev), "rw");
        dev.permissions = "";
        CHECK_OK(container_device_rules(&cfg, false, l, &err));
        ALLOWED(l, 'c', major(st.st_rdev), minor(st.st_rdev), "rw");
        dev.permissions = "rwx";
        CHECK(container_device_rules(&cfg, false, l, &err) < 0 && err.code == ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(err.msg, "rwx");
        err_clear(&err);
        dev.permissions = "rwmr";
        CHECK(container_device_rules(&cfg, false, l, &err) < 0 && err.code == ERR_INVALID_ARGUMENT);
        err_clear(&err);
        dev.permissions = "r";
        dev.host_path = "/etc/hostname";
        CHECK(container_device_rules(&cfg, false, l, &err) < 0 && err.code == ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(err.msg, "not a device node");
        err_clear(&err);
        dev.host_path = "/dev/does-not-exist";
        CHECK(container_device_rules(&cfg, false, l, &err) < 0 && err.code == ERR_NOT_FOUND);
        err_clear(&err);
        /* Privileged: everything, the request's devices or not. */
        CHECK_OK(container_device_rules(&cfg, true, l, &err));
        CHECK(l->default_allow && l->n == 0);
        ALLOWED(l, 'b', 8, 0, "rwm");
        ALLOWED(l, 'c', 1, 1, "w");
    } else {
        printf("test_container_defaults: no /dev/loop-control, the requested-device part skipped\n");
    }
    free(l);
}

static void test_semantics_by_hand(void)
{
    /* Empty, deny by default: nothing, not even mknod. */
    struct devfilter_rules *l = rules_new(false);
    DENIED(l, 'c', 1, 3, "r");
    DENIED(l, 'b', 0, 0, "m");
    /* Empty, allow by default: everything. */
    l->default_allow = true;
    ALLOWED(l, 'c', 1, 3, "rwm");
    ALLOWED(l, 'b', 4095, 1048575, "w");

    /* A later deny of the same key narrows an earlier allow. */
    l->default_allow = false;
    add(l, true, "c 1:3 rwm");
    add(l, false, "c 1:3 w");
    ALLOWED(l, 'c', 1, 3, "r");
    ALLOWED(l, 'c', 1, 3, "m");
    DENIED(l, 'c', 1, 3, "w");
    DENIED(l, 'c', 1, 3, "rw");
    /* ...and a later allow widens it again. */
    add(l, true, "c 1:3 w");
    ALLOWED(l, 'c', 1, 3, "rw");

    /* Two rules of one key merge: an O_RDWR open (one request, r|w) is
     * allowed though neither rule alone covers it. Testing rules
     * newest-first would deny it. */
    l->n = 0;
    add(l, true, "c 4:1 r");
    add(l, true, "c 4:1 w");
    ALLOWED(l, 'c', 4, 1, "rw");
    DENIED(l, 'c', 4, 1, "rwm");

    /* A deny of one device does not punch a hole in a wildcard allow (v1
     * removes only the exception of exactly that key). */
    l->n = 0;
    add(l, true, "c 1:* rw");
    add(l, false, "c 1:5 rw");
    ALLOWED(l, 'c', 1, 5, "rw");
    /* Nor do wildcards of different widths merge. */
    add(l, true, "c *:5 m");
    DENIED(l, 'c', 1, 5, "rm");
    ALLOWED(l, 'c', 7, 5, "m");
    DENIED(l, 'b', 7, 5, "m");

    /* "a" resets: the rules before it no longer count. */
    add(l, false, "a");
    DENIED(l, 'c', 1, 5, "r");
    add(l, true, "c 1:5 r");
    ALLOWED(l, 'c', 1, 5, "r");
    add(l, true, "a");
    ALLOWED(l, 'b', 8, 0, "rw");
    /* Allow by default: a deny exception refuses every request sharing a
     * bit with it, wildcards included. */
    add(l, false, "b 8:* w");
    DENIED(l, 'b', 8, 3, "rw");
    ALLOWED(l, 'b', 8, 3, "rm");
    ALLOWED(l, 'c', 8, 3, "w");
    add(l, true, "b 8:* w"); /* the same key removes it again */
    ALLOWED(l, 'b', 8, 3, "w");
    free(l);
}

/* xorshift64*: reproducible rule lists without libc's rand state. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

static void test_random_lists_match_v1(void)
{
    static const int32_t majors[] = {DEVFILTER_ANY, 1, 5, 136, 0};
    static const int32_t minors[] = {DEVFILTER_ANY, 3, 5, 0, DEVFILTER_MINOR_MAX};
    static const uint32_t req_majors[] = {1, 5, 136, 0, 7, DEVFILTER_MAJOR_MAX};
    static const uint32_t req_minors[] = {3, 5, 0, DEVFILTER_MINOR_MAX, 9};
    struct devfilter_rules *l = rules_new(false);
    struct v1_cgroup *cg = calloc(1, sizeof(*cg));
    err_t err = ERR_INIT;
    size_t decided = 0;
    for (int list = 0; list < 3000; list++) {
        l->default_allow = rnd(2);
        l->n = rnd(list < 2000 ? 10 : 40);
        for (size_t i = 0; i < l->n; i++) {
            struct devfilter_rule *r = &l->rule[i];
            r->allow = rnd(2);
            r->type = rnd(12) == 0 ? 'a' : rnd(2) ? 'c' : 'b';
            r->major = majors[rnd(ARRAY_SIZE(majors))];
            r->minor = minors[rnd(ARRAY_SIZE(minors))];
            r->access = 1 + rnd(7);
        }
        v1_replay(l, cg);
        struct devfilter_program p;
        if (devfilter_build(l, &p, &err) < 0) {
            UNIT_FAIL("list %d: %s", list, err.msg);
            err_clear(&err);
            continue;
        }
        int mismatches = 0;
        char first[200] = "";
        for (unsigned type = 1; type <= 2; type++)
            for (size_t ma = 0; ma < ARRAY_SIZE(req_majors); ma++)
                for (size_t mi = 0; mi < ARRAY_SIZE(req_minors); mi++)
                    for (unsigned acc = 1; acc <= 7; acc++) {
                        struct request q = {type, acc, req_majors[ma], req_minors[mi]};
                        char why[160] = "";
                        int got = interpret(&p, &q, why, sizeof(why));
                        int want = v1_allows(cg, &q);
                        decided++;
                        if (got != want && mismatches++ == 0)
                            snprintf(first, sizeof(first), "type %u %u:%u access %u: program %d%s%s, v1 %d", type,
                                     q.major, q.minor, acc, got, *why ? " " : "", why, want);
                    }
        CHECK_MSG(mismatches == 0, "list %d (%zu rules, default %s): %d mismatches, first %s", list, l->n,
                  l->default_allow ? "allow" : "deny", mismatches, first);
        devfilter_program_free(&p);
    }
    printf("%zu requests compared with the v1 model\n", decided);
    free(cg);
    free(l);
}

/* ---- which failures stop a start -------------------------------------------- */

static void make_dirs(const char *root, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    mkdir(root, 0755);
    for (char *c = p + strlen(root) + 1; (c = strchr(c, '/')); c++) {
        *c = '\0';
        mkdir(p, 0755);
        *c = '/';
    }
    mkdir(p, 0755);
}

static void make_file(const char *root, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

static char *file_text(const char *root, const char *rel)
{
    char p[512];
    static char buf[128];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    buf[0] = '\0';
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return buf;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static int apply_on(enum cgroup_version v, const char *root, const struct devfilter_rules *l, err_t *err)
{
    struct cgroup_manager *m = NULL;
    int r = cgroup_manager_new_at(v, root, CGROUP_DRIVER_KIND_CGROUPFS, &m, err);
    if (r == 0)
        r = container_devices_apply(m, "/pod/ctr", l, err);
    cgroup_manager_free(m);
    return r;
}

/* Trees of plain directories: cgroup2 calls on them fail as they would
 * on a kernel that cannot attach the filter, which shows when that stops a
 * start (the filter is the only enforcement) and when it does not. */
static void test_attach_failure_policy(void)
{
    char root[] = "/tmp/devfilter-tree-XXXXXX";
    if (!mkdtemp(root)) {
        UNIT_FAIL("mkdtemp: %s", strerror(errno));
        return;
    }
    char v2[600], hybrid[600], v1_only[600], bare[600];
    snprintf(v2, sizeof(v2), "%s/v2", root);
    snprintf(hybrid, sizeof(hybrid), "%s/hybrid", root);
    snprintf(v1_only, sizeof(v1_only), "%s/v1", root);
    snprintf(bare, sizeof(bare), "%s/bare", root);
    make_dirs(v2, "pod/ctr");
    make_dirs(hybrid, "devices/pod/ctr");
    make_file(hybrid, "devices/pod/ctr/devices.allow");
    make_file(hybrid, "devices/pod/ctr/devices.deny");
    make_dirs(hybrid, "unified/pod/ctr");
    make_dirs(v1_only, "devices/pod/ctr");
    make_file(v1_only, "devices/pod/ctr/devices.allow");
    make_file(v1_only, "devices/pod/ctr/devices.deny");
    make_dirs(bare, "memory/pod/ctr");
    make_dirs(bare, "unified/pod/ctr");

    struct devfilter_rules *l = rules_new(false);
    add(l, true, "b 8:* r");
    add(l, true, "c 1:3 rwm");
    err_t err = ERR_INIT;
    /* Pure v2: the filter is everything, its failure stops the start. */
    CHECK(apply_on(CGROUP_V2, v2, l, &err) < 0);
    CHECK_CONTAINS(err.msg, "cgroup /pod/ctr: device filter: ");
    err_clear(&err);
    /* Hybrid with a v1 devices controller: v1 is written, the failure only
     * logged. (Plain files keep each write at offset 0: the default went
     * to devices.deny, the longest and last rule shows in devices.allow.) */
    CHECK_OK(apply_on(CGROUP_V1, hybrid, l, &err));
    CHECK_STREQ(file_text(hybrid, "devices/pod/ctr/devices.deny"), "a");
    CHECK_STREQ(file_text(hybrid, "devices/pod/ctr/devices.allow"), "c 1:3 rwm");
    /* v1 without a cgroup2 tree: v1 alone, as before. */
    CHECK_OK(apply_on(CGROUP_V1, v1_only, l, &err));
    CHECK_STREQ(file_text(v1_only, "devices/pod/ctr/devices.deny"), "a");
    /* Hybrid without a v1 devices controller: the filter is everything. */
    CHECK(apply_on(CGROUP_V1, bare, l, &err) < 0);
    CHECK_CONTAINS(err.msg, "device filter");
    err_clear(&err);
    /* Privileged on v1: "a" to devices.allow. */
    l->n = 0;
    l->default_allow = true;
    CHECK_OK(apply_on(CGROUP_V1, hybrid, l, &err));
    CHECK_STREQ(file_text(hybrid, "devices/pod/ctr/devices.allow"), "a 1:3 rwm");
    err_clear(&err);
    free(l);
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the real kernel ------------------------------------------------------ */

static int count_fds(void)
{
    int n = 0;
    _cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    return n;
}

/* The ids of the device programs attached to the cgroup itself. */
static int attached(int cgfd, uint32_t *ids, uint32_t cap)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = (uint32_t)cgfd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uintptr_t)ids;
    a.query.prog_cnt = cap;
    if (syscall(SYS_bpf, BPF_PROG_QUERY, &a, sizeof(a)) < 0)
        return -errno;
    return (int)a.query.prog_cnt;
}

/* How opening /dev/null read-write and /dev/zero read-only ends (0 or an
 * errno) for a child started inside the cgroup, which reports through a
 * pipe. */
static void child_opens(int cgfd, int *null_errno, int *zero_errno)
{
    int pipefd[2];
    *null_errno = *zero_errno = -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return;
    struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd};
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
        int res[2];
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        res[0] = fd < 0 ? errno : 0;
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        res[1] = fd < 0 ? errno : 0;
        _exit(write(pipefd[1], res, sizeof(res)) == sizeof(res) ? 0 : 1);
    }
    close(pipefd[1]);
    CHECK_MSG(pid > 0, "clone3 into the cgroup: %s", strerror(errno));
    int res[2], status = 0;
    if (pid > 0 && read(pipefd[0], res, sizeof(res)) == sizeof(res)) {
        *null_errno = res[0];
        *zero_errno = res[1];
    }
    close(pipefd[0]);
    if (pid > 0)
        CHECK_EQ_INT(waitpid((pid_t)pid, &status, 0), pid);
}

static bool prog_exists(uint32_t id)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    int fd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &a, sizeof(a));
    if (fd >= 0)
        close(fd);
    return fd >= 0 || errno != ENOENT;
}

static void test_real_kernel(void)
{
    if (geteuid() != 0) {
        printf("test_real_kernel: skipped (needs root)\n");
        return;
    }
    err_t err = ERR_INIT;
    struct cgroup_manager *m = NULL;
    if (cgroup_manager_new(CGROUP_DRIVER_KIND_CGROUPFS, &m, &err) < 0) {
        UNIT_FAIL("cgroup_manager_new: %s", err.msg);
        err_clear(&err);
        return;
    }
    char path[96];
    snprintf(path, sizeof(path), "/edgecri-devfilter-test-%d-%ld", (int)getpid(), (long)time(NULL));
    struct devfilter_rules *l = rules_new(false);
    int cgfd = -1, null_e, zero_e;
    uint32_t ids[64] = {0};
    int r = cgroup_create(m, path, NULL, &err);
    CHECK_MSG(r == 0, "create %s: %s", path, err.msg ? err.msg : "");
    if (r < 0)
        goto out;
    cgfd = cgroup_open_unified(m, path, &err);
    if (cgfd == -ENOTSUP) {
        printf("test_real_kernel: no cgroup2 hierarchy, skipped\n");
        goto out;
    }
    CHECK_MSG(cgfd >= 0, "open: %s", err.msg ? err.msg : "");
    if (cgfd < 0)
        goto out;

    /* A program the verifier refuses (r0 never set) is reported with the
     * verifier's own words. */
    struct bpf_insn unset_r0[] = {{.code = BPF_JMP | BPF_EXIT}};
    struct devfilter_program bad = {unset_r0, 1};
    r = devfilter_load(&bad, &err);
    CHECK(r < 0 && err.code != ERR_OK);
    CHECK_CONTAINS(err.msg, "loading the device filter program (1 instructions)");
    CHECK_CONTAINS(err.msg, "verifier log: ");
    CHECK_CONTAINS(err.msg, "R0");
    if (r >= 0)
        close(r);
    err_clear(&err);

    /* Without a filter both open. */
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, 0);
    CHECK_EQ_INT(zero_e, 0);

    add(l, true, "c 1:3 rw");
    int fds = count_fds();
    r = devfilter_attach(cgfd, l, &err);
    CHECK_MSG(r == 0, "attach: %s", err.msg ? err.msg : "");
    err_clear(&err);
    CHECK_EQ_INT(count_fds(), fds);
    CHECK_EQ_INT(attached(cgfd, ids, 64), 1);
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, 0);
    CHECK_EQ_INT(zero_e, EPERM);

    /* Attaching again replaces the filter instead of adding one: now only
     * /dev/zero, read-only. */
    l->n = 0;
    add(l, true, "c 1:5 r");
    r = devfilter_attach(cgfd, l, &err);
    CHECK_MSG(r == 0, "attach again: %s", err.msg ? err.msg : "");
    err_clear(&err);
    CHECK_EQ_INT(count_fds(), fds);
    CHECK_EQ_INT(attached(cgfd, ids, 64), 1);
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, EPERM);
    CHECK_EQ_INT(zero_e, 0);

    /* Allow by default with a deny exception (the other code shape). */
    l->n = 0;
    l->default_allow = true;
    add(l, false, "c 1:5 r");
    CHECK_OK(devfilter_attach(cgfd, l, &err));
    err_clear(&err);
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, 0);
    CHECK_EQ_INT(zero_e, EPERM);

    /* The largest list passes the verifier: DEVFILTER_MAX_RULES deny
     * exceptions by default allow, the longest blocks. */
    l->n = 0;
    for (int i = 0; i < DEVFILTER_MAX_RULES; i++) {
        struct devfilter_rule big = {.allow = false, .type = 'c', .major = 2, .minor = i, .access = DEVFILTER_WRITE};
        CHECK_OK(devfilter_rules_add(l, &big, &err));
    }
    l->rule[DEVFILTER_MAX_RULES - 1].major = 1;
    l->rule[DEVFILTER_MAX_RULES - 1].minor = 5;
    l->rule[DEVFILTER_MAX_RULES - 1].access = DEVFILTER_READ;
    r = devfilter_attach(cgfd, l, &err);
    CHECK_MSG(r == 0, "attach %d rules: %s", DEVFILTER_MAX_RULES, err.msg ? err.msg : "");
    err_clear(&err);
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, 0);
    CHECK_EQ_INT(zero_e, EPERM);

    /* A privileged container's: every device. */
    l->n = 0;
    CHECK_OK(devfilter_attach(cgfd, l, &err));
    child_opens(cgfd, &null_e, &zero_e);
    CHECK_EQ_INT(null_e, 0);
    CHECK_EQ_INT(zero_e, 0);
    CHECK_EQ_INT(attached(cgfd, ids, 64), 1);
    err_clear(&err);

out:
    if (cgfd >= 0)
        close(cgfd);
    /* The cgroup goes with the program attached; the kernel then frees the
     * program, as nothing of ours holds it. */
    r = cgroup_destroy(m, path, &err);
    CHECK_MSG(r == 0, "destroy %s: %s", path, err.msg ? err.msg : "");
    err_clear(&err);
    _cleanup_free_ char *procs = cgroup_file(m, path, "pids", "cgroup.procs");
    CHECK(procs && access(procs, F_OK) < 0 && errno == ENOENT);
    if (ids[0]) {
        bool gone = false;
        for (int i = 0; i < 500 && !gone; i++) {
            gone = !prog_exists(ids[0]);
            if (!gone)
                nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
        CHECK_MSG(gone, "program %u outlived its cgroup", ids[0]);
    }
    free(l);
    cgroup_manager_free(m);
}

int main(void)
{
    RUN(test_parse_and_format);
    RUN(test_malformed_rules_refused);
    RUN(test_semantics_by_hand);
    RUN(test_container_defaults);
    RUN(test_random_lists_match_v1);
    RUN(test_attach_failure_policy);
    RUN(test_real_kernel);
    return unit_summary();
}
