#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include "runtime/caps.h"
#include "util/cleanup.h"
#include "unit.h"

#define BIT(n) (UINT64_C(1) << (n))

/* How many capabilities this build has names for (CAP_CHECKPOINT_RESTORE is 40). */
#define NAMED_LAST 40

static int kernel_last_cap(void)
{
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static uint64_t mask_of(const char *const *names, size_t n)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int c = caps_from_name(names[i]);
        CHECK_MSG(c >= 0, "caps_from_name(\"%s\") = %d", names[i], c);
        if (c >= 0)
            m |= BIT(c);
    }
    return m;
}

static void test_last_cap(void)
{
    int last = caps_last_cap();
    CHECK(last >= 0 && last <= 63);
    CHECK_EQ_INT(caps_last_cap(), last); /* cached, stable */
    int k = kernel_last_cap();
    if (k >= 0)
        CHECK_EQ_INT(last, k > 63 ? 63 : k);
    /* Every kernel with openat2 (5.6+) knows at least CAP_AUDIT_READ. */
    CHECK(last >= 37);

    uint64_t all = caps_all();
    for (int c = 0; c < 64; c++)
        CHECK_MSG(!!(all & BIT(c)) == (c <= last), "caps_all bit %d with last cap %d", c, last);
}

static void test_names_round_trip(void)
{
    int last = caps_last_cap();
    int top = last < NAMED_LAST ? NAMED_LAST : last;
    for (int c = 0; c <= top; c++) {
        const char *name = caps_name(c);
        if (c > NAMED_LAST) {
            /* A kernel newer than this build: no name, and no crash. */
            CHECK_MSG(name == NULL, "cap %d has a name \"%s\"", c, name);
            continue;
        }
        CHECK_MSG(name != NULL, "cap %d has no name", c);
        if (!name)
            continue;
        CHECK_MSG(strncmp(name, "CAP_", 4) == 0 && strlen(name) > 4, "cap %d name \"%s\"", c, name);
        CHECK_MSG(caps_from_name(name) == c, "from_name(\"%s\") != %d", name, c);
        CHECK_MSG(caps_from_name(name + 4) == c, "from_name(\"%s\") != %d", name + 4, c);

        char lower[64], mixed[64];
        snprintf(lower, sizeof(lower), "%s", name);
        snprintf(mixed, sizeof(mixed), "%s", name);
        for (size_t i = 0; lower[i]; i++) {
            lower[i] = (char)tolower((unsigned char)lower[i]);
            if (i % 2)
                mixed[i] = (char)tolower((unsigned char)mixed[i]);
        }
        CHECK_MSG(caps_from_name(lower) == c, "from_name(\"%s\") != %d", lower, c);
        CHECK_MSG(caps_from_name(lower + 4) == c, "from_name(\"%s\") != %d", lower + 4, c);
        CHECK_MSG(caps_from_name(mixed) == c, "from_name(\"%s\") != %d", mixed, c);

        /* Names are unique. */
        for (int d = 0; d < c; d++)
            CHECK_MSG(caps_name(d) == NULL || strcmp(caps_name(d), name) != 0, "caps %d and %d share \"%s\"", d, c,
                      name);
    }
}

static void test_names(void)
{
    CHECK_EQ_INT(caps_from_name("CAP_SYS_ADMIN"), 21);
    CHECK_EQ_INT(caps_from_name("SYS_ADMIN"), 21);
    CHECK_EQ_INT(caps_from_name("sys_admin"), 21);
    CHECK_EQ_INT(caps_from_name("cap_sys_admin"), 21);
    CHECK_EQ_INT(caps_from_name("Cap_Sys_Admin"), 21);
    CHECK_EQ_INT(caps_from_name("CaP_NeT_RaW"), 13);
    CHECK_EQ_INT(caps_from_name("CHOWN"), 0);
    CHECK_EQ_INT(caps_from_name("NET_BIND_SERVICE"), 10);
    CHECK_EQ_INT(caps_from_name("SETFCAP"), 31);
    CHECK_EQ_INT(caps_from_name("AUDIT_READ"), 37);
    CHECK_EQ_INT(caps_from_name("PERFMON"), 38);
    CHECK_EQ_INT(caps_from_name("BPF"), 39);
    CHECK_EQ_INT(caps_from_name("CHECKPOINT_RESTORE"), 40);
    CHECK_STREQ(caps_name(0), "CAP_CHOWN");
    CHECK_STREQ(caps_name(21), "CAP_SYS_ADMIN");
    CHECK_STREQ(caps_name(40), "CAP_CHECKPOINT_RESTORE");

    static const char *const unknown[] = {
        "",          "CAP_",          "cap_",   "CAP_FOO",    "FOO",       "ALL",        "CAP_ALL",
        "all",       "CAP_CAP_CHOWN", " CHOWN", "CHOWN ",     "CHOWNX",    "CHOW",       "CAP_SYS_ADMIN\n",
        "CAP-CHOWN", "CAPCHOWN",      "_CHOWN", "CAP__CHOWN", "SYS ADMIN", "SYS_ADMIN_", "0",
        "21",        "CAP_21",
    };
    for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
        CHECK_MSG(caps_from_name(unknown[i]) == -1, "from_name(\"%s\") = %d", unknown[i], caps_from_name(unknown[i]));
    CHECK_EQ_INT(caps_from_name(NULL), -1);

    CHECK(caps_name(-1) == NULL);
    CHECK(caps_name(NAMED_LAST + 1) == NULL);
    CHECK(caps_name(63) == NULL);
    CHECK(caps_name(64) == NULL);
    CHECK(caps_name(1000) == NULL);
}

static const char *const default_names[] = {
    "CHOWN",  "DAC_OVERRIDE", "FSETID",  "FOWNER",           "MKNOD",      "NET_RAW", "SETGID",
    "SETUID", "SETFCAP",      "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",    "AUDIT_WRITE",
};

static void test_default(void)
{
    uint64_t d = caps_default();
    CHECK_EQ_U64(d, mask_of(default_names, ARRAY_SIZE(default_names)));
    CHECK_EQ_INT(__builtin_popcountll(d), 14);
    CHECK(!(d & BIT(21))); /* SYS_ADMIN */
    CHECK(!(d & BIT(12))); /* NET_ADMIN */
    CHECK(!(d & BIT(19))); /* SYS_PTRACE */
    CHECK(!(d & BIT(2)));  /* DAC_READ_SEARCH */
    CHECK_EQ_U64(d & ~caps_all(), 0);
}

/* caps_compute expecting success. */
static uint64_t compute(uint64_t base, const char *const *add, size_t n_add, const char *const *drop, size_t n_drop,
                        int line)
{
    err_t err = ERR_INIT;
    uint64_t out = 0xdeadbeef;
    int r = caps_compute(base, add, n_add, drop, n_drop, &out, &err);
    CHECK_MSG(r == 0, "line %d: caps_compute failed: %d %s", line, r, err.msg ? err.msg : "");
    CHECK_MSG(err.msg == NULL && err.code == ERR_OK, "line %d: error left set on success", line);
    err_clear(&err);
    return out;
}
#define COMPUTE(base, add, drop) compute((base), (add), ARRAY_SIZE(add), (drop), ARRAY_SIZE(drop), __LINE__)
/* A list literal; the outer parentheses keep its commas out of ARRAY_SIZE's arguments. */
#define L(...) ((const char *const[]){__VA_ARGS__})

static void test_compute(void)
{
    uint64_t d = caps_default(), all = caps_all();
    const uint64_t chown = BIT(0), kill = BIT(5), net_bind = BIT(10), net_admin = BIT(12), sys_admin = BIT(21);

    CHECK_EQ_U64(compute(d, NULL, 0, NULL, 0, __LINE__), d);
    CHECK_EQ_U64(compute(0, NULL, 0, NULL, 0, __LINE__), 0);
    CHECK_EQ_U64(COMPUTE(d, L("ALL"), L("CHOWN")) & chown, 0);

    /* ALL on either side. */
    CHECK_EQ_U64(compute(d, L("ALL"), 1, NULL, 0, __LINE__), all);
    CHECK_EQ_U64(compute(d, L("all"), 1, NULL, 0, __LINE__), all);
    CHECK_EQ_U64(compute(d, L("CAP_ALL"), 1, NULL, 0, __LINE__), all);
    CHECK_EQ_U64(compute(d, NULL, 0, L("ALL"), 1, __LINE__), 0);
    CHECK_EQ_U64(compute(d, NULL, 0, L("All"), 1, __LINE__), 0);
    CHECK_EQ_U64(COMPUTE(d, L("ALL"), L("ALL")), 0);
    CHECK_EQ_U64(COMPUTE(0, L("ALL"), L("ALL")), 0);

    /* drop ALL + add X = only X, whatever the order in the lists. */
    CHECK_EQ_U64(COMPUTE(d, L("NET_BIND_SERVICE"), L("ALL")), net_bind);
    CHECK_EQ_U64(COMPUTE(d, L("CAP_NET_BIND_SERVICE", "SYS_ADMIN"), L("ALL")), net_bind | sys_admin);
    CHECK_EQ_U64(COMPUTE(all, L("ALL", "NET_BIND_SERVICE"), L("ALL")), net_bind);
    CHECK_EQ_U64(COMPUTE(d, L("NET_BIND_SERVICE", "ALL"), L("CHOWN", "ALL")), net_bind);

    /* add ALL + drop X = everything but X. */
    CHECK_EQ_U64(COMPUTE(0, L("ALL"), L("CHOWN")), all & ~chown);
    CHECK_EQ_U64(COMPUTE(0, L("ALL"), L("CHOWN", "cap_kill")), all & ~(chown | kill));

    /* add X + drop X: the drop wins, in or out of the base. */
    CHECK_EQ_U64(COMPUTE(d, L("SYS_ADMIN"), L("SYS_ADMIN")), d);
    CHECK_EQ_U64(COMPUTE(d, L("CHOWN"), L("CHOWN")), d & ~chown);
    CHECK_EQ_U64(COMPUTE(d, L("sys_admin"), L("CAP_SYS_ADMIN")), d);
    CHECK_EQ_U64(COMPUTE(d, L("NET_ADMIN"), L("ALL", "NET_ADMIN")), 0);

    /* Plain adds and drops. */
    CHECK_EQ_U64(compute(d, L("SYS_ADMIN"), 1, NULL, 0, __LINE__), d | sys_admin);
    CHECK_EQ_U64(compute(d, NULL, 0, L("CHOWN", "KILL"), 2, __LINE__), d & ~(chown | kill));
    CHECK_EQ_U64(compute(d, NULL, 0, L("SYS_ADMIN"), 1, __LINE__), d); /* dropping one not there */
    CHECK_EQ_U64(compute(d, L("CHOWN"), 1, NULL, 0, __LINE__), d);     /* adding one already there */

    /* Duplicates. */
    CHECK_EQ_U64(compute(0, L("NET_ADMIN", "net_admin", "CAP_NET_ADMIN"), 3, NULL, 0, __LINE__), net_admin);
    CHECK_EQ_U64(COMPUTE(d, L("ALL", "ALL"), L("CHOWN", "chown", "CAP_CHOWN")), all & ~chown);
    CHECK_EQ_U64(COMPUTE(d, L("KILL"), L("ALL", "all")), kill);

    /* Bits the kernel does not have are not handed out. */
    if (caps_last_cap() < 63) {
        CHECK_EQ_U64(compute(UINT64_MAX, NULL, 0, NULL, 0, __LINE__), all);
        CHECK_EQ_U64(compute(BIT(63) | chown, NULL, 0, NULL, 0, __LINE__), chown);
    }
}

static void expect_compute_error(const char *const *add, size_t n_add, const char *const *drop, size_t n_drop,
                                 const char *needle, int line)
{
    err_t err = ERR_INIT;
    uint64_t out = 0x1234;
    int r = caps_compute(caps_default(), add, n_add, drop, n_drop, &out, &err);
    CHECK_MSG(r < 0, "line %d: expected an error", line);
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "line %d: code %s", line, err_code_name(err.code));
    CHECK_MSG(err.msg && strstr(err.msg, needle), "line %d: message \"%s\" lacks \"%s\"", line,
              err.msg ? err.msg : "(null)", needle);
    CHECK_MSG(out == 0x1234, "line %d: *out written on error", line);
    err_clear(&err);
}

static void test_compute_errors(void)
{
    expect_compute_error(L("CAP_FOO"), 1, NULL, 0, "CAP_FOO", __LINE__);
    expect_compute_error(L("CHOWN", "BOGUS"), 2, NULL, 0, "BOGUS", __LINE__);
    expect_compute_error(NULL, 0, L("NOT_A_CAP"), 1, "NOT_A_CAP", __LINE__);
    expect_compute_error(L("ALL", "WHATEVER"), 2, L("ALL"), 1, "WHATEVER", __LINE__);
    expect_compute_error(L("ALL"), 1, L("ALL", "nope"), 2, "nope", __LINE__);
    expect_compute_error(L(""), 1, NULL, 0, "\"\"", __LINE__);
    expect_compute_error(L("SYS ADMIN"), 1, NULL, 0, "SYS ADMIN", __LINE__);
    expect_compute_error(L("CHOWN", NULL), 2, NULL, 0, "missing", __LINE__);
    /* Which list it was in. */
    expect_compute_error(L("X1"), 1, NULL, 0, "add", __LINE__);
    expect_compute_error(NULL, 0, L("X2"), 1, "drop", __LINE__);
}

static void check_format(uint64_t set, const char *want, int line)
{
    char *s = caps_format(set);
    CHECK_MSG(s && strcmp(s, want) == 0, "line %d: caps_format(%#llx) = \"%s\", want \"%s\"", line,
              (unsigned long long)set, s ? s : "(null)", want);
    free(s);
}

static void test_format(void)
{
    check_format(0, "", __LINE__);
    check_format(BIT(0), "cap_chown", __LINE__);
    check_format(BIT(0) | BIT(5), "cap_chown,cap_kill", __LINE__);
    check_format(BIT(21) | BIT(0), "cap_chown,cap_sys_admin", __LINE__);
    check_format(caps_default(),
                 "cap_chown,cap_dac_override,cap_fowner,cap_fsetid,cap_kill,cap_setgid,cap_setuid,cap_setpcap,"
                 "cap_net_bind_service,cap_net_raw,cap_sys_chroot,cap_mknod,cap_audit_write,cap_setfcap",
                 __LINE__);
    check_format(BIT(40), "cap_checkpoint_restore", __LINE__);
    check_format(BIT(63), "cap_63", __LINE__);
    check_format(BIT(41) | BIT(1), "cap_dac_override,cap_41", __LINE__);

    /* Every bit: 64 names, and the named ones parse back. */
    char *s = caps_format(UINT64_MAX);
    CHECK(s != NULL);
    if (s) {
        size_t commas = 0;
        for (char *p = s; *p; p++)
            commas += *p == ',';
        CHECK_EQ_INT(commas, 63);
        uint64_t back = 0;
        char *save = NULL;
        for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int c = caps_from_name(tok);
            if (c >= 0)
                back |= BIT(c);
        }
        CHECK_EQ_U64(back, BIT(NAMED_LAST + 1) - 1);
        free(s);
    }
}

int main(void)
{
    RUN(test_last_cap);
    RUN(test_names_round_trip);
    RUN(test_names);
    RUN(test_default);
    RUN(test_compute);
    RUN(test_compute_errors);
    RUN(test_format);
    return unit_summary();
}
