/* The error object every fallible function fills (crun's libcrun_error_t
 * pattern). Functions return 0 or a negative errno and, on failure, leave a
 * human message in `err` saying what was being done and to what, e.g.
 * "mount overlay on /run/edgecri/c/3f…/rootfs: No such device".
 *
 * `code` is the status the caller will see. Its values are the gRPC status
 * codes, because that is where every error ends up, but domain modules never
 * include anything gRPC: they pick the meaning (NOT_FOUND, INVALID_ARGUMENT…)
 * and the CRI layer passes it through. */
#pragma once

#include <stdarg.h>

enum err_code {
    ERR_OK = 0,
    ERR_CANCELLED = 1,
    ERR_UNKNOWN = 2,
    ERR_INVALID_ARGUMENT = 3,
    ERR_DEADLINE_EXCEEDED = 4,
    ERR_NOT_FOUND = 5,
    ERR_ALREADY_EXISTS = 6,
    ERR_PERMISSION_DENIED = 7,
    ERR_RESOURCE_EXHAUSTED = 8,
    ERR_FAILED_PRECONDITION = 9,
    ERR_ABORTED = 10,
    ERR_OUT_OF_RANGE = 11,
    ERR_UNIMPLEMENTED = 12,
    ERR_INTERNAL = 13,
    ERR_UNAVAILABLE = 14,
    ERR_DATA_LOSS = 15,
    ERR_UNAUTHENTICATED = 16,
};

typedef struct err {
    enum err_code code;
    int errnum; /* the errno behind it, 0 when there is none */
    char *msg;  /* heap string, NULL when no error is set */
} err_t;

#define ERR_INIT                                                                                                       \
    {                                                                                                                  \
        0, 0, NULL                                                                                                     \
    }

/* Sets the error with an explicit status and returns -errnum (or -EINVAL when
 * errnum is 0) so callers can write `return err_set(...)`. */
int err_set(err_t *e, enum err_code code, int errnum, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sets the error from a failed system call: the message gets ": strerror"
 * appended and the status is derived from errnum (ENOENT → NOT_FOUND…). */
int err_sys(err_t *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends context to an error already set: "pulling busybox: " + old. */
int err_wrap(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Moves src into dst (dst is cleared first); src is left empty. */
void err_move(err_t *dst, err_t *src);

void err_clear(err_t *e);

/* The status a plain errno maps to. */
enum err_code err_code_from_errno(int errnum);

/* "OK", "NOT_FOUND"… as gRPC spells them. */
const char *err_code_name(enum err_code code);

static inline void cleanup_errp(err_t *e)
{
    err_clear(e);
}
#define _cleanup_err_ __attribute__((cleanup(cleanup_errp)))
