#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const code_names[] = {
    [ERR_OK] = "OK",
    [ERR_CANCELLED] = "CANCELLED",
    [ERR_UNKNOWN] = "UNKNOWN",
    [ERR_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [ERR_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [ERR_NOT_FOUND] = "NOT_FOUND",
    [ERR_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [ERR_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [ERR_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [ERR_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [ERR_ABORTED] = "ABORTED",
    [ERR_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [ERR_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [ERR_INTERNAL] = "INTERNAL",
    [ERR_UNAVAILABLE] = "UNAVAILABLE",
    [ERR_DATA_LOSS] = "DATA_LOSS",
    [ERR_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *err_code_name(enum err_code code)
{
    if ((unsigned)code < sizeof(code_names) / sizeof(code_names[0]))
        return code_names[code];
    return "UNKNOWN";
}

enum err_code err_code_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return ERR_OK;
    case ENOENT:
    case ESRCH:
        return ERR_NOT_FOUND;
    case EEXIST:
        return ERR_ALREADY_EXISTS;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case ENOTDIR:
    case E2BIG:
        return ERR_INVALID_ARGUMENT;
    case EPERM:
    case EACCES:
        return ERR_PERMISSION_DENIED;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case EDQUOT:
    case EMSGSIZE:
        return ERR_RESOURCE_EXHAUSTED;
    case ETIMEDOUT:
        return ERR_DEADLINE_EXCEEDED;
    case ECANCELED:
        return ERR_CANCELLED;
    case ENOSYS:
    case EOPNOTSUPP:
        return ERR_UNIMPLEMENTED;
    case EBUSY:
    case ENOTEMPTY:
        return ERR_FAILED_PRECONDITION;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ESHUTDOWN:
        return ERR_UNAVAILABLE;
    default:
        return ERR_INTERNAL;
    }
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

/* When even the message cannot be allocated the error must still read as an
 * error; msg stays NULL and err_message users print the code name. */
static void replace_msg(err_t *e, char *msg)
{
    free(e->msg);
    e->msg = msg;
}

int err_set(err_t *e, enum err_code code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (e) {
        replace_msg(e, msg);
        e->code = code == ERR_OK ? ERR_UNKNOWN : code;
        e->errnum = errnum;
    } else {
        free(msg);
    }
    return errnum > 0 ? -errnum : -EINVAL;
}

int err_sys(err_t *e, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = vformat(fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (what && asprintf(&msg, "%s: %s", what, strerror(errnum)) < 0)
        msg = NULL;
    free(what);
    if (e) {
        replace_msg(e, msg);
        e->code = err_code_from_errno(errnum);
        if (e->code == ERR_OK)
            e->code = ERR_INTERNAL;
        e->errnum = errnum;
    } else {
        free(msg);
    }
    return errnum > 0 ? -errnum : -EINVAL;
}

int err_wrap(err_t *e, const char *fmt, ...)
{
    if (!e)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = vformat(fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (ctx && asprintf(&msg, "%s: %s", ctx, e->msg ? e->msg : err_code_name(e->code)) >= 0)
        replace_msg(e, msg);
    free(ctx);
    return e->errnum > 0 ? -e->errnum : -EINVAL;
}

void err_move(err_t *dst, err_t *src)
{
    err_clear(dst);
    *dst = *src;
    src->msg = NULL;
    src->code = ERR_OK;
    src->errnum = 0;
}

void err_clear(err_t *e)
{
    if (!e)
        return;
    free(e->msg);
    e->msg = NULL;
    e->code = ERR_OK;
    e->errnum = 0;
}
