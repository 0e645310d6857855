/* Leveled logging to stderr, one line per event, written with a single
 * write(2) so lines from concurrent writers never interleave.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) every line starts with the
 * sd-daemon priority prefix "<3>", "<4>"… and carries no timestamp, since
 * journald adds its own; elsewhere lines start with an RFC 3339 UTC time.
 *
 * The log context is the RPC and the ids the loop thread is working for right
 * now ("rpc=StartContainer container=3f2a…"); the gRPC layer sets it around
 * each handler so every line logged underneath names its request without the
 * domain code passing it along. Control characters from hostile input are
 * escaped so a log line is always exactly one line. */
#pragma once

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

void log_init(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);

/* "error", "warn"/"warning", "info", "debug" → level; -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* ctx is copied; NULL or "" clears it. Returns the previous context (a copy
 * the caller must pass back to log_context_restore). */
char *log_context_push(const char *ctx);
void log_context_restore(char *previous);
const char *log_context(void);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                                                 \
    do {                                                                                                               \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                                              \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                                   \
    } while (0)
