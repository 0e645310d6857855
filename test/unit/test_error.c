#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "unit.h"

static void test_err_set(void)
{
    err_t e = ERR_INIT;
    CHECK_EQ_INT(e.code, ERR_OK);
    CHECK(e.msg == NULL);

    int r = err_set(&e, ERR_NOT_FOUND, ENOENT, "container %s not found (%d)", "3f2a", 7);
    CHECK_EQ_INT(r, -ENOENT);
    CHECK_EQ_INT(e.code, ERR_NOT_FOUND);
    CHECK_EQ_INT(e.errnum, ENOENT);
    CHECK_STREQ(e.msg, "container 3f2a not found (7)");

    /* Setting again replaces everything (and frees the old message). */
    r = err_set(&e, ERR_INVALID_ARGUMENT, 0, "bad %s", "value");
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(e.code, ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(e.errnum, 0);
    CHECK_STREQ(e.msg, "bad value");

    /* An error is never OK. */
    r = err_set(&e, ERR_OK, EIO, "oops");
    CHECK_EQ_INT(r, -EIO);
    CHECK_EQ_INT(e.code, ERR_UNKNOWN);
    CHECK_STREQ(e.msg, "oops");

    /* The message is formatted, not taken as is. */
    r = err_set(&e, ERR_INTERNAL, EPERM, "%s", "100% literal");
    CHECK_EQ_INT(r, -EPERM);
    CHECK_STREQ(e.msg, "100% literal");
    err_clear(&e);

    /* A NULL error object still gives the return value. */
    CHECK_EQ_INT(err_set(NULL, ERR_NOT_FOUND, ENOENT, "x"), -ENOENT);
    CHECK_EQ_INT(err_set(NULL, ERR_NOT_FOUND, 0, "x"), -EINVAL);
}

static void test_err_sys(void)
{
    static const struct {
        int errnum;
        enum err_code code;
    } map[] = {
        {ENOENT, ERR_NOT_FOUND},
        {EEXIST, ERR_ALREADY_EXISTS},
        {EACCES, ERR_PERMISSION_DENIED},
        {EPERM, ERR_PERMISSION_DENIED},
        {ENOSPC, ERR_RESOURCE_EXHAUSTED},
        {ENOMEM, ERR_RESOURCE_EXHAUSTED},
        {EINVAL, ERR_INVALID_ARGUMENT},
        {ENAMETOOLONG, ERR_INVALID_ARGUMENT},
        {ETIMEDOUT, ERR_DEADLINE_EXCEEDED},
        {ECANCELED, ERR_CANCELLED},
        {ENOSYS, ERR_UNIMPLEMENTED},
        {EBUSY, ERR_FAILED_PRECONDITION},
        {ECONNREFUSED, ERR_UNAVAILABLE},
        {EXDEV, ERR_INTERNAL},
        {EIO, ERR_INTERNAL},
        {ESPIPE, ERR_INTERNAL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        err_t e = ERR_INIT;
        int n = map[i].errnum;
        int r = err_sys(&e, n, "open %s", "/etc/x");
        char want[256];
        snprintf(want, sizeof(want), "open /etc/x: %s", strerror(n));
        CHECK_MSG(r == -n, "err_sys(%s) returned %d", strerror(n), r);
        CHECK_MSG(e.code == map[i].code, "err_sys(%s): code %s, want %s", strerror(n), err_code_name(e.code),
                  err_code_name(map[i].code));
        CHECK_MSG(e.errnum == n, "err_sys(%s): errnum %d", strerror(n), e.errnum);
        CHECK_MSG(e.msg && strcmp(e.msg, want) == 0, "err_sys(%s): msg \"%s\", want \"%s\"", strerror(n),
                  e.msg ? e.msg : "(null)", want);
        CHECK_EQ_INT(err_code_from_errno(n), map[i].code);
        err_clear(&e);
    }
    CHECK_EQ_INT(err_code_from_errno(0), ERR_OK);

    /* A literal message, and replacing an earlier one. */
    err_t e = ERR_INIT;
    err_set(&e, ERR_ABORTED, EAGAIN, "earlier");
    CHECK_EQ_INT(err_sys(&e, ENOENT, "no file"), -ENOENT);
    CHECK_STREQ(e.msg, "no file: No such file or directory");
    CHECK_EQ_INT(e.code, ERR_NOT_FOUND);

    /* errno 0 is not an OK status; the return value is still negative. */
    CHECK_EQ_INT(err_sys(&e, 0, "weird"), -EINVAL);
    CHECK_EQ_INT(e.code, ERR_INTERNAL);
    CHECK_EQ_INT(e.errnum, 0);
    err_clear(&e);

    CHECK_EQ_INT(err_sys(NULL, EACCES, "x"), -EACCES);
}

static void test_err_wrap(void)
{
    err_t e = ERR_INIT;
    err_sys(&e, ENOENT, "open %s", "/x");
    int r = err_wrap(&e, "pulling %s", "busybox");
    CHECK_EQ_INT(r, -ENOENT);
    CHECK_STREQ(e.msg, "pulling busybox: open /x: No such file or directory");
    CHECK_EQ_INT(e.code, ERR_NOT_FOUND);
    CHECK_EQ_INT(e.errnum, ENOENT);

    r = err_wrap(&e, "pod %d", 2);
    CHECK_EQ_INT(r, -ENOENT);
    CHECK_STREQ(e.msg, "pod 2: pulling busybox: open /x: No such file or directory");

    /* With errnum 0 the return value is -EINVAL. */
    err_set(&e, ERR_OUT_OF_RANGE, 0, "inner");
    CHECK_EQ_INT(err_wrap(&e, "outer"), -EINVAL);
    CHECK_STREQ(e.msg, "outer: inner");
    CHECK_EQ_INT(e.code, ERR_OUT_OF_RANGE);
    err_clear(&e);

    /* No message (allocation failed earlier): the code name stands in. */
    e.code = ERR_UNAVAILABLE;
    e.errnum = EAGAIN;
    CHECK_EQ_INT(err_wrap(&e, "connecting"), -EAGAIN);
    CHECK_STREQ(e.msg, "connecting: UNAVAILABLE");
    err_clear(&e);

    CHECK_EQ_INT(err_wrap(NULL, "x"), -EINVAL);
}

static void test_err_move_clear(void)
{
    err_t a = ERR_INIT, b = ERR_INIT;
    err_set(&a, ERR_NOT_FOUND, ENOENT, "a");
    err_set(&b, ERR_ABORTED, EBUSY, "b");
    char *b_msg = b.msg;
    err_move(&a, &b); /* a's old message is freed (ASan checks) */
    CHECK(a.msg == b_msg);
    CHECK_STREQ(a.msg, "b");
    CHECK_EQ_INT(a.code, ERR_ABORTED);
    CHECK_EQ_INT(a.errnum, EBUSY);
    CHECK(b.msg == NULL);
    CHECK_EQ_INT(b.code, ERR_OK);
    CHECK_EQ_INT(b.errnum, 0);

    /* Moving an empty error clears the destination. */
    err_move(&a, &b);
    CHECK(a.msg == NULL);
    CHECK_EQ_INT(a.code, ERR_OK);
    CHECK_EQ_INT(a.errnum, 0);

    err_set(&a, ERR_INTERNAL, EIO, "x");
    err_clear(&a);
    CHECK(a.msg == NULL);
    CHECK_EQ_INT(a.code, ERR_OK);
    CHECK_EQ_INT(a.errnum, 0);
    err_clear(&a); /* twice is fine */
    CHECK(a.msg == NULL);
    err_clear(NULL);
}

static void test_err_code_name(void)
{
    static const char *const names[] = {
        "OK",        "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED",   "OUT_OF_RANGE",    "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED",
    };
    CHECK_EQ_INT(sizeof(names) / sizeof(names[0]), ERR_UNAUTHENTICATED + 1);
    for (int i = 0; i <= ERR_UNAUTHENTICATED; i++)
        CHECK_MSG(strcmp(err_code_name((enum err_code)i), names[i]) == 0, "err_code_name(%d) = \"%s\", want \"%s\"", i,
                  err_code_name((enum err_code)i), names[i]);
    CHECK_STREQ(err_code_name(ERR_NOT_FOUND), "NOT_FOUND");
    CHECK_STREQ(err_code_name((enum err_code)17), "UNKNOWN");
    CHECK_STREQ(err_code_name((enum err_code)1000), "UNKNOWN");
    CHECK_STREQ(err_code_name((enum err_code) - 1), "UNKNOWN");
}

/* _cleanup_err_: an observer declared before the error is cleaned up after
 * it (cleanups run in reverse order) and records what the error looked like
 * by then. */
static struct {
    int ran;
    enum err_code code;
    const char *msg;
} seen;

static void observe(err_t **e)
{
    seen.ran++;
    seen.code = (*e)->code;
    seen.msg = (*e)->msg;
}

static void test_cleanup_err(void)
{
    seen.ran = 0;
    seen.code = ERR_OK;
    seen.msg = "not run";
    {
        err_t *target __attribute__((cleanup(observe))) = NULL;
        _cleanup_err_ err_t e = ERR_INIT;
        target = &e;
        err_set(&e, ERR_NOT_FOUND, ENOENT, "scoped");
        CHECK_STREQ(e.msg, "scoped");
    }
    CHECK_EQ_INT(seen.ran, 1);
    CHECK_EQ_INT(seen.code, ERR_OK);
    CHECK(seen.msg == NULL);
}

int main(void)
{
    RUN(test_err_set);
    RUN(test_err_sys);
    RUN(test_err_wrap);
    RUN(test_err_move_clear);
    RUN(test_err_code_name);
    RUN(test_cleanup_err);
    return unit_summary();
}
