/* edgecri's own tiny unit-test framework. Every CHECK counts one check; a
 * failing one prints "file:line: [test] what failed" to stderr and the run
 * goes on. main() calls RUN(test_fn) for each test and ends with
 * `return unit_summary();`, which prints "N checks, M failed" and returns 1
 * when anything failed. */
#pragma once

#include <stdio.h>
#include <string.h>

static int unit_checks, unit_failures;
static const char *unit_current = "?";

#define UNIT_FAIL(...)                                                                                                 \
    do {                                                                                                               \
        unit_failures++;                                                                                               \
        fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__, unit_current);                                             \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
    } while (0)

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        unit_checks++;                                                                                                 \
        if (!(cond))                                                                                                   \
            UNIT_FAIL("CHECK(%s) failed", #cond);                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                             \
    do {                                                                                                               \
        long long ua_ = (long long)(a), ub_ = (long long)(b);                                                          \
        unit_checks++;                                                                                                 \
        if (ua_ != ub_)                                                                                                \
            UNIT_FAIL("CHECK_EQ_INT(%s, %s): %lld != %lld", #a, #b, ua_, ub_);                                         \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                                             \
    do {                                                                                                               \
        unsigned long long ua_ = (unsigned long long)(a), ub_ = (unsigned long long)(b);                               \
        unit_checks++;                                                                                                 \
        if (ua_ != ub_)                                                                                                \
            UNIT_FAIL("CHECK_EQ_U64(%s, %s): %llu != %llu", #a, #b, ua_, ub_);                                         \
    } while (0)

#define CHECK_STREQ(a, b)                                                                                              \
    do {                                                                                                               \
        const char *sa_ = (a), *sb_ = (b);                                                                             \
        unit_checks++;                                                                                                 \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                                     \
            UNIT_FAIL("CHECK_STREQ(%s, %s): \"%s\" != \"%s\"", #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");    \
    } while (0)

/* CHECK with a printf-style explanation, for checks inside loops. */
#define CHECK_MSG(cond, ...)                                                                                           \
    do {                                                                                                               \
        unit_checks++;                                                                                                 \
        if (!(cond))                                                                                                   \
            UNIT_FAIL(__VA_ARGS__);                                                                                    \
    } while (0)

/* The string `hay` contains `needle` (for error messages). */
#define CHECK_CONTAINS(hay, needle)                                                                                    \
    do {                                                                                                               \
        const char *sh_ = (hay), *sn_ = (needle);                                                                      \
        unit_checks++;                                                                                                 \
        if (!sh_ || !strstr(sh_, sn_))                                                                                 \
            UNIT_FAIL("CHECK_CONTAINS(%s, %s): \"%s\" lacks \"%s\"", #hay, #needle, sh_ ? sh_ : "(null)", sn_);        \
    } while (0)

/* A 0-or-negative-errno result is 0. */
#define CHECK_OK(r)                                                                                                    \
    do {                                                                                                               \
        long long ur_ = (long long)(r);                                                                                \
        unit_checks++;                                                                                                 \
        if (ur_ != 0)                                                                                                  \
            UNIT_FAIL("CHECK_OK(%s): returned %lld (%s)", #r, ur_, strerror((int)-ur_));                               \
    } while (0)

#define RUN(fn)                                                                                                        \
    do {                                                                                                               \
        unit_current = #fn;                                                                                            \
        fn();                                                                                                          \
        unit_current = "?";                                                                                            \
    } while (0)

static inline int unit_summary(void)
{
    fflush(stderr);
    printf("%d checks, %d failed\n", unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}
