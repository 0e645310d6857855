/* Device access rules in the words of cgroup v1's devices controller, and
 * their cgroup v2 equivalent: a BPF_PROG_TYPE_CGROUP_DEVICE program the
 * kernel runs on every open(2) and mknod(2) of a device node by a process
 * of the cgroup.
 *
 * A rule list is what one would write, in order, to devices.allow and
 * devices.deny of a new v1 cgroup whose default is `default_allow`. The
 * program decides exactly as the v1 controller would after those writes
 * (Documentation/admin-guide/cgroup-v1/devices.rst and
 * security/device_cgroup.c): "a" resets the default and forgets every
 * exception; in a deny-by-default cgroup an allow rule adds (or widens) the
 * exception of exactly its type and numbers and a deny rule narrows or
 * removes that one exception, and the other way round by default allow. A
 * request is allowed by default deny when one exception covers all its
 * access bits, and denied by default allow when any exception shares one.
 *
 * Only the cgroup's own rules are compiled: ancestors' programs run too (the
 * program is attached with BPF_F_ALLOW_MULTI), and every one must allow, as
 * a v1 child can never exceed its parent. */
#pragma once

#include <linux/bpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* More rules than any container needs; bounds the program's size (a few
 * instructions each, well under the kernel's limits). */
#define DEVFILTER_MAX_RULES 512

/* A major or minor that matches every number ("*" in v1 syntax). */
#define DEVFILTER_ANY (-1)

/* The kernel's device numbers: 12-bit majors, 20-bit minors. */
#define DEVFILTER_MAJOR_MAX 0xfff
#define DEVFILTER_MINOR_MAX 0xfffff

/* Access bits: the values of both v1 (DEVCG_ACC_*) and BPF
 * (BPF_DEVCG_ACC_*). */
enum {
    DEVFILTER_MKNOD = BPF_DEVCG_ACC_MKNOD,
    DEVFILTER_READ = BPF_DEVCG_ACC_READ,
    DEVFILTER_WRITE = BPF_DEVCG_ACC_WRITE,
    DEVFILTER_RWM = DEVFILTER_MKNOD | DEVFILTER_READ | DEVFILTER_WRITE,
};

/* What a rule applies to: v1's first letter. */
enum devfilter_type {
    DEVFILTER_ALL = 'a', /* every device: sets the default, clears the exceptions */
    DEVFILTER_CHAR = 'c',
    DEVFILTER_BLOCK = 'b',
};

struct devfilter_rule {
    bool allow;           /* a devices.allow write; else devices.deny */
    char type;            /* enum devfilter_type */
    int32_t major, minor; /* DEVFILTER_ANY or 0..*_MAX; ignored for 'a' */
    unsigned access;      /* DEVFILTER_READ|…, not 0; ignored for 'a' */
};

/* An ordered rule list and the default it starts from. */
struct devfilter_rules {
    bool default_allow;
    size_t n;
    struct devfilter_rule rule[DEVFILTER_MAX_RULES];
};

/* "rwm", "r", "mw"… (each letter at most once, none other, not empty) →
 * access bits; -EINVAL for anything else. */
int devfilter_access_parse(const char *text, unsigned *out);

/* One line of v1 syntax: "a", or "<c|b> <major|*>:<minor|*> <access>" with
 * single spaces. Malformed text → ERR_INVALID_ARGUMENT quoting it. */
int devfilter_rule_parse(const char *text, bool allow, struct devfilter_rule *out, err_t *err);

/* Checks one rule: type, number ranges, access bits. ERR_INVALID_ARGUMENT
 * saying what is wrong. */
int devfilter_rule_check(const struct devfilter_rule *r, err_t *err);

/* The rule in v1 syntax, as devices.allow/deny take it ("a" for 'a').
 * Returns the length, or -ENOSPC when `size` is too small (32 always
 * suffices). The rule must have passed devfilter_rule_check. */
int devfilter_rule_format(const struct devfilter_rule *r, char *buf, size_t size);

/* Appends a checked rule; ERR_RESOURCE_EXHAUSTED past DEVFILTER_MAX_RULES. */
int devfilter_rules_add(struct devfilter_rules *l, const struct devfilter_rule *r, err_t *err);

/* The compiled program: `n` instructions, heap-allocated. */
struct devfilter_program {
    struct bpf_insn *insns;
    size_t n;
};

/* Compiles the list (every rule checked; more than DEVFILTER_MAX_RULES
 * refused) into a program reading struct bpf_cgroup_dev_ctx and returning 1
 * (allow) or 0 (deny). Pure: no system call. Free with
 * devfilter_program_free. */
int devfilter_build(const struct devfilter_rules *l, struct devfilter_program *out, err_t *err);

void devfilter_program_free(struct devfilter_program *p);

/* Loads a program into the kernel and returns its fd (caller closes). A
 * refusal is ERR_* from the errno with the tail of the verifier's log in the
 * message. */
int devfilter_load(const struct devfilter_program *p, err_t *err);

/* Compiles the list, loads the program (on a verifier refusal the error
 * carries the verifier's log) and attaches it to the cgroup directory
 * `cgroup_dirfd` (cgroup v2) with BPF_F_ALLOW_MULTI, then detaches the
 * device programs attached to that cgroup before, so calling it again
 * replaces the filter rather than stacking one more. The cgroup holds the
 * program from then on: no fd stays open, and removing the cgroup frees it. */
int devfilter_attach(int cgroup_dirfd, const struct devfilter_rules *l, err_t *err);
