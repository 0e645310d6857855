#include "util/persist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop/loop.h"
#include "util/fs.h"

struct waiter {
    struct waiter *next;
    persist_done_fn done;
    void *data;
};

struct persist_file {
    char *path;
    mode_t mode;

    /* What the pool thread is writing, and who waits for it. Only the pool
     * thread touches `writing*` and `write_err` while `in_flight`. */
    bool in_flight;
    char *writing;
    size_t writing_len;
    struct waiter *writing_waiters;
    err_t write_err;

    /* The newest content not yet handed to a write, and its waiters. */
    char *next;
    size_t next_len;
    bool has_next;
    struct waiter *next_waiters;

    /* Called once nothing is written or queued any more. */
    struct waiter *idle_waiters;
};

struct persist_file *persist_file_new(const char *path, mode_t mode)
{
    struct persist_file *pf = calloc(1, sizeof(*pf));
    if (!pf || !(pf->path = strdup(path))) {
        free(pf);
        return NULL;
    }
    pf->mode = mode;
    return pf;
}

static void free_waiters(struct waiter *w)
{
    while (w) {
        struct waiter *n = w->next;
        free(w);
        w = n;
    }
}

void persist_file_free(struct persist_file *pf)
{
    if (!pf)
        return;
    free_waiters(pf->writing_waiters);
    free_waiters(pf->next_waiters);
    free_waiters(pf->idle_waiters);
    free(pf->writing);
    free(pf->next);
    free(pf->path);
    err_clear(&pf->write_err);
    free(pf);
}

bool persist_file_busy(const struct persist_file *pf)
{
    return pf->in_flight || pf->has_next;
}

const char *persist_file_path(const struct persist_file *pf)
{
    return pf->path;
}

static void write_work(void *data)
{
    struct persist_file *pf = data;
    err_clear(&pf->write_err);
    fs_write_atomic(pf->path, pf->writing, pf->writing_len, pf->mode, &pf->write_err);
}

static void start_write(struct persist_file *pf);

/* Waiters are called in the order they asked. */
static struct waiter *reverse(struct waiter *w)
{
    struct waiter *out = NULL;
    while (w) {
        struct waiter *n = w->next;
        w->next = out;
        out = w;
        w = n;
    }
    return out;
}

static void write_done(void *data, int status)
{
    struct persist_file *pf = data;
    if (status < 0 && !pf->write_err.msg)
        err_sys(&pf->write_err, -status, "writing %s", pf->path);
    struct waiter *w = reverse(pf->writing_waiters);
    pf->writing_waiters = NULL;
    pf->in_flight = false;
    free(pf->writing);
    pf->writing = NULL;
    /* Start the next write before calling back, so a callback that
     * schedules more content queues behind it instead of racing it. */
    err_t result = ERR_INIT;
    err_move(&result, &pf->write_err);
    if (pf->has_next)
        start_write(pf);
    /* Idle waiters are taken now: a waiter may free the file, so nothing
     * below touches pf. They check again for themselves if they care about
     * writes queued by the waiters before them. */
    struct waiter *idle = NULL;
    if (!persist_file_busy(pf)) {
        idle = reverse(pf->idle_waiters);
        pf->idle_waiters = NULL;
    }
    while (w) {
        struct waiter *n = w->next;
        if (w->done)
            w->done(w->data, result.msg ? &result : NULL);
        free(w);
        w = n;
    }
    err_clear(&result);
    while (idle) {
        struct waiter *n = idle->next;
        idle->done(idle->data, NULL);
        free(idle);
        idle = n;
    }
}

int persist_file_when_idle(struct persist_file *pf, persist_done_fn fn, void *data)
{
    if (!persist_file_busy(pf)) {
        fn(data, NULL);
        return 0;
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->done = fn;
    w->data = data;
    w->next = pf->idle_waiters;
    pf->idle_waiters = w;
    return 0;
}

static void start_write(struct persist_file *pf)
{
    pf->writing = pf->next;
    pf->writing_len = pf->next_len;
    pf->writing_waiters = pf->next_waiters;
    pf->next = NULL;
    pf->next_len = 0;
    pf->next_waiters = NULL;
    pf->has_next = false;
    pf->in_flight = true;
    int r = loop_queue_work(write_work, write_done, pf);
    if (r < 0) {
        err_sys(&pf->write_err, -r, "writing %s", pf->path);
        write_done(pf, 0);
    }
}

void persist_file_write(struct persist_file *pf, const void *data, size_t len, persist_done_fn done, void *cb_data)
{
    char *copy = malloc(len ? len : 1);
    struct waiter *w = malloc(sizeof(*w));
    if (!copy || !w) {
        free(copy);
        free(w);
        if (done) {
            err_t e = ERR_INIT;
            err_sys(&e, ENOMEM, "writing %s", pf->path);
            done(cb_data, &e);
            err_clear(&e);
        }
        return;
    }
    memcpy(copy, data, len);
    free(pf->next);
    pf->next = copy;
    pf->next_len = len;
    pf->has_next = true;
    w->done = done;
    w->data = cb_data;
    w->next = pf->next_waiters;
    pf->next_waiters = w;
    if (!pf->in_flight)
        start_write(pf);
}
