#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_journal;
/* Per thread: pool threads log without the loop thread's RPC context. */
static __thread char *context;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities journald understands: err, warning, info, debug */
static const int journal_priority[] = {3, 4, 6, 7};

void log_init(void)
{
    /* JOURNAL_STREAM is "device:inode" of the stream journald gave us; it only
     * counts when stderr is still that stream (not redirected by a wrapper). */
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    to_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                 (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

int log_level_parse(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(name, "warning") == 0)
        return LOG_LEVEL_WARN;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "?";
}

char *log_context_push(const char *ctx)
{
    char *previous = context;
    context = ctx && *ctx ? strdup(ctx) : NULL;
    return previous;
}

void log_context_restore(char *previous)
{
    free(context);
    context = previous;
}

const char *log_context(void)
{
    return context;
}

/* Appends src to dst[*len..cap) escaping control bytes; always leaves room
 * for the final newline. */
static void append_escaped(char *dst, size_t *len, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)src; *p && *len + 5 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            dst[(*len)++] = '\\';
            dst[(*len)++] = 'x';
            dst[(*len)++] = hex[*p >> 4];
            dst[(*len)++] = hex[*p & 15];
        } else {
            dst[(*len)++] = (char)*p;
        }
    }
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char line[LOG_LINE_MAX + 256];
    size_t len = 0;
    if (to_journal) {
        len = (size_t)snprintf(line, sizeof(line), "<%d>%s ", journal_priority[level], level_names[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        len +=
            (size_t)snprintf(line + len, sizeof(line) - len, ".%03ldZ %-5s ", ts.tv_nsec / 1000000, level_names[level]);
    }
    if (context) {
        append_escaped(line, &len, sizeof(line), context);
        append_escaped(line, &len, sizeof(line), ": ");
    }
    append_escaped(line, &len, sizeof(line), msg);
    line[len++] = '\n';

    /* One write per line; a short write on a pipe is not retried because the
     * rest of the line would interleave with other writers anyway. */
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}
