#include "runtime/crilog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/cleanup.h"

/* The start of a line that has not ended yet. The buffer is allocated when a
 * stream first leaves a line unfinished: many containers only ever write
 * whole lines per read, or never write to stderr at all. */
struct pending {
    uint8_t *buf; /* CRILOG_MAX_CONTENT bytes, or NULL */
    size_t len;
};

struct crilog {
    int fd;
    char *path;
    uint64_t bytes;
    /* A write failed after part of a record reached the file: the file ends
     * inside a line, and the next record must start on a line of its own. */
    bool torn;
    struct pending pending[2];
};

static const char *const stream_names[] = {[CRILOG_STDOUT] = "stdout", [CRILOG_STDERR] = "stderr"};

/* "<time> stdout F ": the header is the same for every record of one call. */
#define HEADER_LEN (CRILOG_TIME_LEN + 1 + 6 + 1 + 1 + 1)

/* Records are gathered into one writev: a chunk of short lines costs one
 * system call, not one per line, without copying the content into an output
 * buffer. Each record takes at most four vectors (header, pending start,
 * content from the chunk, a newline) and a batch may start with one more
 * (ending a torn line). */
#define BATCH_IOV  512
#define RECORD_IOV 4
_Static_assert(BATCH_IOV <= 1024, "writev takes at most IOV_MAX (1024) vectors");
static const uint8_t newline[1] = {'\n'};

struct batch {
    struct crilog *l;
    enum crilog_stream s;
    const struct timespec *now;
    err_t *err;
    int error; /* the first failure of this call; later records are dropped */
    bool have_header;
    char header_f[HEADER_LEN + 1], header_p[HEADER_LEN + 1];
    int n;
    struct iovec iov[BATCH_IOV];
};

static int open_log(const char *path, int *out, err_t *err)
{
    /* O_NONBLOCK only matters if something other than a regular file sits at
     * the path (a FIFO would block the open); it is refused right after. */
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
    if (fd < 0) {
        if (errno == ELOOP)
            return err_set(err, ERR_INVALID_ARGUMENT, ELOOP, "opening container log %s: refusing a symbolic link",
                           path);
        return err_sys(err, errno, "opening container log %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "opening container log %s", path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "opening container log %s: not a regular file", path);
    *out = steal_fd(&fd);
    return 0;
}

int crilog_open(const char *path, struct crilog **out, err_t *err)
{
    if (!path || !*path)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "opening container log: empty path");
    _cleanup_free_ struct crilog *l = calloc(1, sizeof(*l));
    _cleanup_free_ char *p = strdup(path);
    if (!l || !p)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "opening container log %s: out of memory", path);
    int r = open_log(path, &l->fd, err);
    if (r < 0)
        return r;
    l->path = steal_pointer(&p);
    *out = steal_pointer(&l);
    return 0;
}

int crilog_reopen(struct crilog *l, err_t *err)
{
    int fd;
    int r = open_log(l->path, &fd, err);
    if (r < 0)
        return r;
    close(l->fd);
    l->fd = fd;
    l->bytes = 0;
    l->torn = false;
    return 0;
}

uint64_t crilog_bytes(const struct crilog *l)
{
    return l->bytes;
}

void crilog_close(struct crilog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    free(l->pending[CRILOG_STDOUT].buf);
    free(l->pending[CRILOG_STDERR].buf);
    free(l->path);
    free(l);
}

static void put_digits(char *p, unsigned long v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t crilog_format_time(const struct timespec *t, char *buf, size_t n)
{
    if (n < CRILOG_TIME_LEN + 1) {
        if (n > 0)
            buf[0] = '\0';
        return 0;
    }
    /* 0000-01-01 and 9999-12-31T23:59:59 in seconds since the epoch. */
    const time_t min = -62167219200LL, max = 253402300799LL;
    time_t sec = t->tv_sec;
    long nsec = t->tv_nsec;
    if (nsec < 0 || nsec > 999999999)
        nsec = nsec < 0 ? 0 : 999999999;
    if (sec < min) {
        sec = min;
        nsec = 0;
    } else if (sec > max) {
        sec = max;
        nsec = 999999999;
    }
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) { /* cannot happen within the clamped range */
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    char *p = buf;
    put_digits(p, (unsigned long)(tm.tm_year + 1900), 4);
    p[4] = '-';
    put_digits(p + 5, (unsigned long)tm.tm_mon + 1, 2);
    p[7] = '-';
    put_digits(p + 8, (unsigned long)tm.tm_mday, 2);
    p[10] = 'T';
    put_digits(p + 11, (unsigned long)tm.tm_hour, 2);
    p[13] = ':';
    put_digits(p + 14, (unsigned long)tm.tm_min, 2);
    p[16] = ':';
    put_digits(p + 17, (unsigned long)tm.tm_sec, 2);
    p[19] = '.';
    put_digits(p + 20, (unsigned long)nsec, 9);
    p[29] = 'Z';
    p[30] = '\0';
    return CRILOG_TIME_LEN;
}

/* ---- writing ---------------------------------------------------------------- */

static void batch_init(struct batch *b, struct crilog *l, enum crilog_stream s, const struct timespec *now, err_t *err)
{
    b->l = l;
    b->s = s;
    b->now = now;
    b->err = err;
    b->error = 0;
    b->have_header = false;
    b->n = 0;
}

static void batch_add(struct batch *b, const void *p, size_t len)
{
    b->iov[b->n].iov_base = (void *)p;
    b->iov[b->n].iov_len = len;
    b->n++;
}

/* Writes the gathered records. A short write is continued: on a regular file
 * it only happens when the file system fills up or on a signal, and the
 * retry either completes the record or reports the error. */
static int batch_write(struct batch *b)
{
    struct crilog *l = b->l;
    struct iovec *iov = b->iov;
    int cnt = b->n;
    bool wrote = false;
    uint8_t last = '\n';
    b->n = 0;
    while (cnt > 0) {
        ssize_t w = writev(l->fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            if (wrote)
                l->torn = last != '\n';
            b->error = err_sys(b->err, e, "writing container log %s", l->path);
            return b->error;
        }
        if (w == 0) { /* not expected of a regular file; do not spin */
            if (wrote)
                l->torn = last != '\n';
            b->error = err_set(b->err, ERR_INTERNAL, EIO, "writing container log %s: wrote nothing", l->path);
            return b->error;
        }
        wrote = true;
        l->bytes += (uint64_t)w;
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            last = ((const uint8_t *)iov->iov_base)[iov->iov_len - 1];
            iov++;
            cnt--;
        }
        if (left > 0) {
            last = ((const uint8_t *)iov->iov_base)[left - 1];
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    l->torn = false; /* every batch ends with a record's newline */
    return 0;
}

/* Adds a record whose content is pend[0..plen) followed by data[0..dlen);
 * when `ends_line`, data's last byte is the line's newline and ends the
 * record (F), else the line goes on (P) and a newline is added. */
static void batch_record(struct batch *b, bool ends_line, const uint8_t *pend, size_t plen, const uint8_t *data,
                         size_t dlen)
{
    if (b->error)
        return; /* dropped: the file failed earlier in this call */
    if (b->n + RECORD_IOV > BATCH_IOV && batch_write(b) < 0)
        return;
    if (!b->have_header) {
        char t[CRILOG_TIME_LEN + 1];
        crilog_format_time(b->now, t, sizeof(t));
        snprintf(b->header_f, sizeof(b->header_f), "%s %s F ", t, stream_names[b->s]);
        memcpy(b->header_p, b->header_f, sizeof(b->header_p));
        b->header_p[HEADER_LEN - 2] = 'P';
        b->have_header = true;
    }
    if (b->n == 0 && b->l->torn)
        batch_add(b, newline, 1);
    batch_add(b, ends_line ? b->header_f : b->header_p, HEADER_LEN);
    if (plen)
        batch_add(b, pend, plen);
    if (dlen)
        batch_add(b, data, dlen);
    if (!ends_line)
        batch_add(b, newline, 1);
}

static int batch_finish(struct batch *b)
{
    if (b->error)
        return b->error;
    if (b->n == 0)
        return 0;
    return batch_write(b);
}

static int check_stream(struct crilog *l, enum crilog_stream s, err_t *err)
{
    if (s != CRILOG_STDOUT && s != CRILOG_STDERR)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "writing container log %s: no stream %d", l->path, (int)s);
    return 0;
}

int crilog_write(struct crilog *l, enum crilog_stream s, const uint8_t *data, size_t len, const struct timespec *now,
                 err_t *err)
{
    int r = check_stream(l, s, err);
    if (r < 0 || len == 0)
        return r;
    struct pending *pd = &l->pending[s];
    struct batch b;
    batch_init(&b, l, s, now, err);

    /* Only the first record of a call can start with the pending bytes;
     * they stay in place until the batch is written, and `plen` is what of
     * them is still unwritten. */
    size_t plen = pd->len;
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        size_t avail = (size_t)(end - p);
        size_t room = CRILOG_MAX_CONTENT - plen;
        /* A newline right after a full record's worth still ends that
         * record: a line of exactly 16 KiB is one F record. */
        const uint8_t *nl = memchr(p, '\n', avail < room + 1 ? avail : room + 1);
        if (nl) {
            batch_record(&b, true, pd->buf, plen, p, (size_t)(nl - p) + 1);
            p = nl + 1;
            plen = 0;
        } else if (avail > room) {
            /* More of the line follows than fits: a full P record. */
            batch_record(&b, false, pd->buf, plen, p, room);
            p += room;
            plen = 0;
        } else {
            break;
        }
    }

    /* The unfinished rest (at most what fits) waits for its newline. */
    size_t tail = (size_t)(end - p);
    if (tail > 0 && !pd->buf) {
        pd->buf = malloc(CRILOG_MAX_CONTENT);
        if (!pd->buf) {
            /* Without memory to wait in, the rest goes out now as a P
             * record: the line is split, nothing is lost. */
            batch_record(&b, false, NULL, 0, p, tail);
            tail = 0;
        }
    }
    r = batch_finish(&b);
    if (tail > 0)
        memcpy(pd->buf + plen, p, tail);
    pd->len = plen + tail;
    return r;
}

static int write_pending(struct crilog *l, enum crilog_stream s, bool full, const struct timespec *now, err_t *err)
{
    int r = check_stream(l, s, err);
    if (r < 0)
        return r;
    struct pending *pd = &l->pending[s];
    if (pd->len == 0)
        return 0;
    struct batch b;
    batch_init(&b, l, s, now, err);
    /* A full record's newline comes from `data` (see batch_record). */
    batch_record(&b, full, pd->buf, pd->len, full ? newline : NULL, full ? 1 : 0);
    pd->len = 0; /* written or, on error, dropped: a dead disk must not pin it */
    return batch_finish(&b);
}

int crilog_flush(struct crilog *l, enum crilog_stream s, const struct timespec *now, err_t *err)
{
    return write_pending(l, s, false, now, err);
}

int crilog_end(struct crilog *l, enum crilog_stream s, const struct timespec *now, err_t *err)
{
    return write_pending(l, s, true, now, err);
}

/* ---- parsing ----------------------------------------------------------------- */

static bool digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 0): whole years
 * counted from year 0 (a leap year) and the epoch's own offset subtracted. */
static int64_t days_since_epoch(int y, int m, int d)
{
    static const int before_month[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t leaps_before = (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400;
    int64_t days = 365LL * y + leaps_before + before_month[m - 1] + (m > 2 && is_leap(y)) + (d - 1);
    return days - 719528; /* 0000-01-01 to 1970-01-01 */
}

/* RFC 3339 as Go's RFC3339Nano layout parses it: the pieces of a fixed
 * layout, seconds 00-59 (no leap second), an optional fraction. Returns the
 * length consumed or -1. */
static int parse_time(const char *p, size_t len, struct timespec *out)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, s;
    if (len < 20 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d) || p[10] != 'T' || !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) ||
        p[16] != ':' || !digits(p + 17, 2, &s))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !is_leap(y)) || h > 23 || mi > 59 ||
        s > 59)
        return -1;
    size_t i = 19;
    long nsec = 0;
    if (p[i] == '.') {
        i++;
        int nd = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9' && nd < 9) {
            nsec = nsec * 10 + (p[i] - '0');
            i++;
            nd++;
        }
        if (nd == 0 || (i < len && p[i] >= '0' && p[i] <= '9'))
            return -1;
        for (; nd < 9; nd++)
            nsec *= 10;
    }
    int offset = 0;
    if (i < len && p[i] == 'Z') {
        i++;
    } else if (i + 6 <= len && (p[i] == '+' || p[i] == '-')) {
        int oh, om;
        if (!digits(p + i + 1, 2, &oh) || p[i + 3] != ':' || !digits(p + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = (oh * 60 + om) * 60 * (p[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    int64_t t = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
    out->tv_sec = (time_t)t;
    out->tv_nsec = nsec;
    return (int)i;
}

int crilog_parse_line(const char *line, size_t len, struct crilog_record *out)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    struct crilog_record rec;
    int n = parse_time(line, len, &rec.time);
    if (n < 0 || (size_t)n >= len || line[n] != ' ')
        return -EINVAL;
    size_t i = (size_t)n + 1;
    if (len - i < 7 || line[i + 6] != ' ')
        return -EINVAL;
    if (memcmp(line + i, "stdout", 6) == 0)
        rec.stream = CRILOG_STDOUT;
    else if (memcmp(line + i, "stderr", 6) == 0)
        rec.stream = CRILOG_STDERR;
    else
        return -EINVAL;
    i += 7;
    if (i >= len || (line[i] != 'F' && line[i] != 'P'))
        return -EINVAL;
    rec.partial = line[i] == 'P';
    i++;
    if (i < len && line[i] == ':') { /* further tags: kept by kubelet for forward compatibility */
        while (i < len && line[i] != ' ' && line[i] != '\n')
            i++;
        if (line[i - 1] == ':')
            return -EINVAL;
    }
    if (i >= len || line[i] != ' ')
        return -EINVAL;
    i++;
    if (memchr(line + i, '\n', len - i))
        return -EINVAL;
    rec.content = line + i;
    rec.content_len = len - i;
    *out = rec;
    return 0;
}
