#include "image/images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/content.h"
#include "image/layers.h"
#include "image/reference.h"
#include "loop/loop.h"
#include "registry/manifest.h"
#include "registry/registries_config.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/list.h"
#include "util/log.h"

#define PROGRESS_INTERVAL_MS 200

struct cached_config {
    struct list_node link;
    char id[DIGEST_MAX_LEN + 1];
    struct image_config cfg;
    char *json;
    size_t len;
};

struct images {
    uv_loop_t *loop;
    char *root;
    char *registries_path;
    char *mountpoint;
    unsigned max_downloads;
    bool keep_layer_blobs;
    struct unpack_limits limits;

    struct content_store *content;
    struct layer_store *layers;
    struct image_store *store;
    struct registry_client *registry;

    struct list_node pulls;
    struct list_node blob_jobs;
    struct list_node layer_jobs;
    struct list_node download_queue;
    unsigned downloads_running;
    int pool_jobs;
    bool shutting_down;

    /* Streaming unpacks whose thread ended, for the loop to collect. */
    uv_async_t *streams_async;
    uv_mutex_t streams_mu;
    struct list_node streams_done; /* struct stream.done_link, under streams_mu */

    struct list_node configs; /* struct cached_config */
    bool (*layer_in_use)(void *, const char *);
    void *layer_in_use_data;
};

struct pull;

struct blob_job {
    struct images *s;
    struct list_node link;
    struct list_node queue_link;
    char digest[DIGEST_MAX_LEN + 1];
    int64_t size;
    struct pull *owner;       /* its registry session is the one we fetch with */
    struct list_node waiters; /* struct layer_job.blob_link */
    struct content_ingest *ingest;
    struct registry_fetch *fetch;
    size_t first_endpoint;
    bool restarted_from_zero;
    bool queued;
    uint64_t done;
    uint64_t start_offset;
    uint64_t started_ms;
    err_t err;
};

struct layer_waiter {
    struct list_node link;      /* in layer_job.waiters */
    struct list_node pull_link; /* in pull.layer_waiters */
    struct pull *pull;
    size_t index;
    struct layer_job *job;
};

struct layer_job {
    struct images *s;
    struct list_node link;
    struct list_node blob_link;
    char chain_id[DIGEST_MAX_LEN + 1];
    char diff_id[DIGEST_MAX_LEN + 1];
    char digest[DIGEST_MAX_LEN + 1];
    char media_type[128];
    int64_t size;
    struct blob_job *blob; /* while the blob is being fetched */
    struct stream *stream; /* unpacking while the blob downloads */
    bool unpacking;
    struct list_node waiters; /* struct layer_waiter */
    struct layer_info info;
    err_t err;
};

struct images_pull_waiter {
    struct list_node link;
    struct pull *pull;
    images_pull_done_fn done;
    images_pull_progress_fn progress;
    void *data;
};

struct pull {
    struct images *s;
    struct list_node link;
    int refs;
    bool finished;
    char *key;
    struct image_ref ref;
    struct registry_session *session;
    struct registry_fetch *fetch;
    struct list_node waiters;       /* struct images_pull_waiter */
    struct list_node layer_waiters; /* struct layer_waiter.pull_link */
    uint64_t started_ms;

    char top_digest[DIGEST_MAX_LEN + 1];
    uint8_t *index_body;
    size_t index_len;
    uint8_t *manifest_body;
    size_t manifest_len;
    char manifest_digest[DIGEST_MAX_LEN + 1];
    struct manifest manifest;
    struct descriptor *config_desc;
    uint8_t *config_body;
    size_t config_len, config_cap;
    struct image_config config;
    char **chain_ids;
    size_t n_layers;
    struct pull_layer_progress *progress;
    struct layer_job **jobs; /* per layer, while not done */
    size_t pending;
    uint64_t last_progress_ms;
    bool local; /* an import: blobs come from the content store */
    bool local_repo_digests;
    char **names; /* an import's references (normalized) */
    size_t n_names;
};

static void pull_fail(struct pull *p, const err_t *err);
static void pull_unref(struct pull *p);
static void start_queued_downloads(struct images *s);
static void layer_job_start_unpack(struct layer_job *j);
static void pull_layers_done(struct pull *p);
static void stream_abort(struct stream *st);

/* --- thread-pool jobs with accounting --------------------------------------- */

struct pool_call {
    struct images *s;
    void (*work)(void *);
    void (*done)(void *, int);
    void *data;
};

static void pool_run(void *data)
{
    struct pool_call *c = data;
    c->work(c->data);
}

static void pool_done(void *data, int status)
{
    struct pool_call *c = data;
    c->s->pool_jobs--;
    c->done(c->data, status);
    free(c);
}

static int pool(struct images *s, void (*work)(void *), void (*done)(void *, int), void *data)
{
    struct pool_call *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct pool_call){s, work, done, data};
    int r = loop_queue_work(pool_run, pool_done, c);
    if (r < 0) {
        free(c);
        return r;
    }
    s->pool_jobs++;
    return 0;
}

static uint64_t now_ms(const struct images *s)
{
    return uv_now(s->loop);
}

/* --- config cache --------------------------------------------------------- */

static struct cached_config *find_config(const struct images *s, const char *id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->configs)
    {
        struct cached_config *c = list_entry(pos, struct cached_config, link);
        if (strcmp(c->id, id) == 0)
            return c;
    }
    return NULL;
}

/* Takes json (heap) and cfg (moved) into the cache. */
static void cache_config(struct images *s, const char *id, char *json, size_t len, struct image_config *cfg)
{
    if (find_config(s, id)) {
        free(json);
        image_config_free(cfg);
        return;
    }
    struct cached_config *c = calloc(1, sizeof(*c));
    if (!c) {
        free(json);
        image_config_free(cfg);
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    c->json = json;
    c->len = len;
    list_add_tail(&s->configs, &c->link);
}

static void drop_config(struct images *s, const char *id)
{
    struct cached_config *c = find_config(s, id);
    if (!c)
        return;
    list_del(&c->link);
    image_config_free(&c->cfg);
    free(c->json);
    free(c);
}

/* --- progress ------------------------------------------------------------- */

static void emit_progress(struct pull *p, bool force)
{
    uint64_t now = now_ms(p->s);
    if (!force && now - p->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    p->last_progress_ms = now;
    for (size_t i = 0; i < p->n_layers; i++) {
        struct layer_job *j = p->jobs[i];
        if (!j)
            continue;
        if (j->unpacking) {
            p->progress[i].state = PULL_LAYER_UNPACKING;
            p->progress[i].done = (uint64_t)p->progress[i].size;
        } else if (j->blob) {
            p->progress[i].state = j->blob->queued ? PULL_LAYER_WAITING : PULL_LAYER_DOWNLOADING;
            p->progress[i].done = j->blob->done;
        }
    }
    struct pull_progress pp = {.reference = p->key, .n_layers = p->n_layers, .layers = p->progress};
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->waiters)
    {
        struct images_pull_waiter *w = list_entry(pos, struct images_pull_waiter, link);
        if (w->progress)
            w->progress(w->data, &pp);
    }
}

/* --- layer jobs -------------------------------------------------------------- */

static struct layer_job *find_layer_job(struct images *s, const char *chain_id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->layer_jobs)
    {
        struct layer_job *j = list_entry(pos, struct layer_job, link);
        if (strcmp(j->chain_id, chain_id) == 0)
            return j;
    }
    return NULL;
}

static bool blob_still_needed(struct images *s, const char *digest)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->layer_jobs)
    {
        if (strcmp(list_entry(pos, struct layer_job, link)->digest, digest) == 0)
            return true;
    }
    return false;
}

struct blob_delete {
    struct images *s;
    char digest[DIGEST_MAX_LEN + 1];
};

static void blob_delete_work(void *data)
{
    struct blob_delete *d = data;
    content_delete_blob(d->s->content, d->digest, NULL);
}

static void blob_delete_done(void *data, int status)
{
    (void)status;
    free(data);
}

static void delete_blob_later(struct images *s, const char *digest)
{
    struct blob_delete *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->s = s;
    snprintf(d->digest, sizeof(d->digest), "%s", digest);
    if (pool(s, blob_delete_work, blob_delete_done, d) < 0)
        free(d);
}

/* A layer job is over: tell every pull that waits for it. */
static void layer_job_finish(struct layer_job *j)
{
    struct images *s = j->s;
    list_del(&j->link);
    if (j->blob)
        list_del(&j->blob_link);
    if (j->stream) {
        stream_abort(j->stream);
        j->stream = NULL;
    }
    while (!list_empty(&j->waiters)) {
        struct layer_waiter *w = list_entry(j->waiters.next, struct layer_waiter, link);
        list_del(&w->link);
        list_del(&w->pull_link);
        struct pull *p = w->pull;
        size_t i = w->index;
        free(w);
        p->jobs[i] = NULL;
        if (j->err.msg) {
            pull_fail(p, &j->err);
            continue;
        }
        p->progress[i].state = PULL_LAYER_DONE;
        p->progress[i].done = (uint64_t)p->progress[i].size;
        p->pending--;
        emit_progress(p, true);
        if (p->pending == 0)
            pull_layers_done(p);
    }
    if (!j->err.msg && !s->keep_layer_blobs && !blob_still_needed(s, j->digest))
        delete_blob_later(s, j->digest);
    err_clear(&j->err);
    free(j);
}

static void unpack_work(void *data)
{
    struct layer_job *j = data;
    struct images *s = j->s;
    _cleanup_free_ char *blob = content_blob_path(s->content, j->digest);
    if (!blob) {
        err_sys(&j->err, ENOMEM, "unpacking %s", j->digest);
        return;
    }
    uint64_t t0 = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (layer_create(s->layers, j->chain_id, j->diff_id, blob, j->media_type, &s->limits, &j->info, &j->err) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - t0;
        log_debug("layer %s unpacked: %llu bytes, %llu inodes in %llums", j->diff_id, (unsigned long long)j->info.bytes,
                  (unsigned long long)j->info.inodes, (unsigned long long)ms);
    }
}

static void unpack_done(void *data, int status)
{
    struct layer_job *j = data;
    if (status < 0 && !j->err.msg)
        err_sys(&j->err, -status, "unpacking layer %s", j->diff_id);
    layer_job_finish(j);
}

/* --- streaming unpack ------------------------------------------------------ */

/* A layer unpacked while its blob downloads, so that it is mostly on disk
 * when the last byte arrives. The unpack thread reads the ingest file as the
 * loop appends to it, and sees the end of the blob only once the loop has
 * verified the digest of all of it: layer_create_from renames the layer into
 * place only after that end, so unverified bytes never become a layer. A
 * download that restarts from zero, fails, or is cancelled aborts the reader,
 * and layer_create_from deletes its temporary directory.
 *
 * It runs on a thread of its own rather than in the pool: it blocks for as
 * long as the download takes, and parked pool threads would starve the
 * commits (and everything else) that need the pool. */
#define STREAM_WAKE_BYTES (64 * 1024)

struct stream {
    struct images *s;
    struct layer_job *j;        /* loop only; NULL once the job let go of it */
    struct list_node done_link; /* in images.streams_done */
    uv_thread_t thread;
    int fd;       /* our own descriptor of the ingest file, read with pread */
    uint64_t pos; /* thread only */
    char chain_id[DIGEST_MAX_LEN + 1];
    char diff_id[DIGEST_MAX_LEN + 1];
    char digest[DIGEST_MAX_LEN + 1];
    char media_type[128];
    uv_mutex_t mu;
    uv_cond_t cond;
    uint64_t avail;   /* under mu: bytes of the file the loop wrote */
    uint64_t wake_at; /* under mu: the thread waits for avail to reach it (0: not waiting) */
    bool complete;    /* under mu: the blob is whole and its digest matched */
    bool aborted;     /* under mu */
    bool started;     /* thread only: the first byte was read */
    struct layer_info info;
    err_t err;
    int r;
};

static ssize_t stream_source_read(void *ctx, void *buf, size_t len)
{
    struct stream *st = ctx;
    uv_mutex_lock(&st->mu);
    /* Wake up for a full buffer rather than for every network packet: a
     * context switch and a decompressor call per 16 KiB cost more CPU than
     * the overlap saves. The input buffer of the unpacker is 64 KiB. */
    uint64_t want = st->pos + (len < STREAM_WAKE_BYTES ? len : STREAM_WAKE_BYTES);
    while (!st->aborted && !st->complete && st->avail < want) {
        st->wake_at = want;
        uv_cond_wait(&st->cond, &st->mu);
    }
    st->wake_at = 0;
    bool aborted = st->aborted;
    uint64_t avail = st->avail;
    uv_mutex_unlock(&st->mu);
    if (aborted)
        return -ECANCELED;
    if (st->pos >= avail)
        return 0;
    if (!st->started) {
        st->started = true;
        log_debug("layer %s: unpacking while its blob %s downloads", st->diff_id, st->digest);
    }
    size_t n = avail - st->pos < len ? (size_t)(avail - st->pos) : len;
    ssize_t r;
    do
        r = pread(st->fd, buf, n, (off_t)st->pos);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -EIO; /* shorter than the loop said: truncated under us */
    st->pos += (uint64_t)r;
    return r;
}

static void stream_thread(void *data)
{
    struct stream *st = data;
    struct images *s = st->s;
    const struct unpack_source src = {stream_source_read, st};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st->r =
        layer_create_from(s->layers, st->chain_id, st->diff_id, &src, st->media_type, &s->limits, &st->info, &st->err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st->r == 0)
        log_debug("layer %s unpacked: %llu bytes, %llu inodes in %llums, while downloading", st->diff_id,
                  (unsigned long long)st->info.bytes, (unsigned long long)st->info.inodes,
                  (unsigned long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    uv_mutex_lock(&s->streams_mu);
    list_add_tail(&s->streams_done, &st->done_link);
    uv_mutex_unlock(&s->streams_mu);
    uv_async_send(s->streams_async);
}

static void stream_free(struct stream *st)
{
    if (st->fd >= 0)
        close(st->fd);
    uv_cond_destroy(&st->cond);
    uv_mutex_destroy(&st->mu);
    err_clear(&st->err);
    free(st);
}

/* The loop's side of an ended unpack thread. */
static void stream_collect(struct stream *st)
{
    struct layer_job *j = st->j;
    if (j) {
        j->stream = NULL;
        if (st->r == 0) {
            j->info = st->info;
            layer_job_finish(j);
        } else if (st->complete) {
            /* It failed on bytes whose digest matched: the layer is bad. */
            err_move(&j->err, &st->err);
            layer_job_finish(j);
        } else {
            /* It failed on bytes not verified yet (a corrupt transfer will
             * fail the digest and be fetched again): leave the verdict to
             * the ordinary unpack of the committed blob. */
            log_debug("layer %s: streaming unpack stopped (%s); unpacking after the download", st->diff_id,
                      st->err.msg ? st->err.msg : "?");
        }
    }
    stream_free(st);
}

static void streams_async_cb(uv_async_t *a)
{
    struct images *s = a->data;
    for (;;) {
        uv_mutex_lock(&s->streams_mu);
        struct stream *st = NULL;
        if (!list_empty(&s->streams_done)) {
            st = list_entry(s->streams_done.next, struct stream, done_link);
            list_del(&st->done_link);
        }
        uv_mutex_unlock(&s->streams_mu);
        if (!st)
            return;
        /* The thread has nothing left to do but return: this join is
         * immediate. */
        uv_thread_join(&st->thread);
        s->pool_jobs--;
        stream_collect(st);
    }
}

/* Stops the unpack thread (it fails with ECANCELED at its next read and
 * removes its temporary directory) and forgets its layer job. */
static void stream_abort(struct stream *st)
{
    st->j = NULL;
    uv_mutex_lock(&st->mu);
    st->aborted = true;
    uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
}

static void stream_set_avail(struct stream *st, uint64_t avail)
{
    uv_mutex_lock(&st->mu);
    st->avail = avail;
    if (st->wake_at && avail >= st->wake_at)
        uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
}

/* Called only once the blob was committed: its digest matched. */
static void stream_set_complete(struct stream *st)
{
    uv_mutex_lock(&st->mu);
    st->complete = true;
    uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
}

/* Starts unpacking j from b's ingest file, which holds b->done bytes so far.
 * Failing to start is no error: the layer is then unpacked after the
 * download, as it would be without streaming. */
static void layer_job_start_stream(struct layer_job *j, struct blob_job *b)
{
    struct images *s = j->s;
    if (j->stream || !s->streams_async || !b->ingest)
        return;
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        return;
    st->s = s;
    st->fd = fcntl(content_ingest_fd(b->ingest), F_DUPFD_CLOEXEC, 0);
    st->avail = b->done;
    memcpy(st->chain_id, j->chain_id, sizeof(st->chain_id));
    memcpy(st->diff_id, j->diff_id, sizeof(st->diff_id));
    memcpy(st->digest, j->digest, sizeof(st->digest));
    memcpy(st->media_type, j->media_type, sizeof(st->media_type));
    if (st->fd < 0 || uv_mutex_init(&st->mu) < 0) {
        if (st->fd >= 0)
            close(st->fd);
        free(st);
        return;
    }
    if (uv_cond_init(&st->cond) < 0) {
        uv_mutex_destroy(&st->mu);
        close(st->fd);
        free(st);
        return;
    }
    if (uv_thread_create(&st->thread, stream_thread, st) < 0) {
        stream_free(st);
        return;
    }
    s->pool_jobs++; /* images_busy waits for it like for pool work */
    st->j = j;
    j->stream = st;
}

/* The ingest file of b starts over (restart from zero, or a new attempt):
 * unpacks of its old content are void. */
static void blob_restart_streams(struct blob_job *b, bool start_new)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &b->waiters)
    {
        struct layer_job *j = list_entry(pos, struct layer_job, blob_link);
        if (j->stream) {
            stream_abort(j->stream);
            j->stream = NULL;
        }
        if (start_new)
            layer_job_start_stream(j, b);
    }
}

static void layer_job_start_unpack(struct layer_job *j)
{
    if (j->blob) {
        list_del(&j->blob_link);
        j->blob = NULL;
    }
    j->unpacking = true;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &j->waiters) emit_progress(list_entry(pos, struct layer_waiter, link)->pull, true);
    if (j->stream) {
        stream_set_complete(j->stream);
        return; /* stream_collect finishes the job */
    }
    int r = pool(j->s, unpack_work, unpack_done, j);
    if (r < 0) {
        err_sys(&j->err, -r, "unpacking layer %s", j->diff_id);
        layer_job_finish(j);
    }
}

/* --- blob jobs ------------------------------------------------------------- */

static struct blob_job *find_blob_job(struct images *s, const char *digest)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->blob_jobs)
    {
        struct blob_job *b = list_entry(pos, struct blob_job, link);
        if (strcmp(b->digest, digest) == 0)
            return b;
    }
    return NULL;
}

static void blob_job_free(struct blob_job *b)
{
    struct images *s = b->s;
    list_del(&b->link);
    if (b->queued)
        list_del(&b->queue_link);
    else
        s->downloads_running--;
    registry_fetch_cancel(b->fetch);
    /* Keep a partial download for the next attempt or the next start. */
    content_ingest_close(b->ingest, false);
    err_clear(&b->err);
    struct pull *owner = b->owner;
    free(b);
    pull_unref(owner);
    start_queued_downloads(s);
}

static void blob_job_finish(struct blob_job *b, const err_t *err)
{
    if (!err && b->started_ms) {
        uint64_t ms = now_ms(b->s) - b->started_ms;
        double mib = (double)(b->done - b->start_offset) / 1048576.0;
        log_debug("blob %s downloaded: %.1f MiB in %llums (%.1f MiB/s)%s", b->digest, mib, (unsigned long long)ms,
                  ms ? mib * 1000.0 / (double)ms : 0.0, b->start_offset ? ", resumed" : "");
    }
    while (!list_empty(&b->waiters)) {
        struct layer_job *j = list_entry(b->waiters.next, struct layer_job, blob_link);
        list_del(&j->blob_link);
        j->blob = NULL;
        if (err) {
            err_t e = ERR_INIT;
            err_set(&e, err->code, err->errnum ? err->errnum : EIO, "%s", err->msg ? err->msg : "download failed");
            err_move(&j->err, &e);
            layer_job_finish(j);
        } else {
            layer_job_start_unpack(j);
        }
    }
    blob_job_free(b);
}

static void blob_fetch_start(struct blob_job *b);

static void commit_work(void *data)
{
    struct blob_job *b = data;
    content_ingest_commit(b->ingest, &b->err);
}

static void commit_done(void *data, int status)
{
    struct blob_job *b = data;
    if (status < 0 && !b->err.msg)
        err_sys(&b->err, -status, "committing %s", b->digest);
    if (b->s->shutting_down) {
        blob_job_finish(b, b->err.msg ? &b->err : NULL);
        return;
    }
    if (b->err.code == ERR_DATA_LOSS && b->err.msg) {
        /* The partial file is gone already. A resumed download may have been
         * spoiled by the power cut that interrupted it: try once from zero.
         * Otherwise the endpoint served bad bytes: try the next one. */
        content_ingest_close(b->ingest, true);
        b->ingest = NULL;
        size_t next = b->first_endpoint;
        bool retry = false;
        if (b->start_offset > 0 && !b->restarted_from_zero) {
            b->restarted_from_zero = true;
            retry = true;
        } else if (b->owner->session && next + 1 < registry_session_endpoints(b->owner->session)) {
            b->first_endpoint = next + 1;
            retry = true;
        }
        if (retry) {
            blob_restart_streams(b, false);
            log_warn("%s; fetching it again", b->err.msg);
            err_clear(&b->err);
            b->done = 0;
            blob_fetch_start(b);
            return;
        }
    }
    blob_job_finish(b, b->err.msg ? &b->err : NULL);
}

static int blob_on_data(void *data, const uint8_t *buf, size_t len)
{
    struct blob_job *b = data;
    if (content_ingest_write(b->ingest, buf, len, &b->err) < 0)
        return -1;
    b->done += len;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &b->waiters)
    {
        struct layer_job *j = list_entry(pos, struct layer_job, blob_link);
        if (j->stream)
            stream_set_avail(j->stream, b->done);
        struct list_node *wp, *wt;
        list_for_each_safe(wp, wt, &j->waiters) emit_progress(list_entry(wp, struct layer_waiter, link)->pull, false);
    }
    return 0;
}

static int blob_on_restart(void *data)
{
    struct blob_job *b = data;
    b->done = 0;
    b->start_offset = 0;
    int r = content_ingest_reset(b->ingest, &b->err);
    blob_restart_streams(b, r == 0);
    return r;
}

static void blob_on_done(void *data, const char *endpoint, const err_t *err)
{
    struct blob_job *b = data;
    b->fetch = NULL;
    if (err) {
        /* Our own write error is the better message. */
        blob_job_finish(b, b->err.msg ? &b->err : err);
        return;
    }
    size_t idx = registry_session_endpoint_index(b->owner->session, endpoint);
    if (idx != SIZE_MAX)
        b->first_endpoint = idx;
    int r = pool(b->s, commit_work, commit_done, b);
    if (r < 0) {
        err_sys(&b->err, -r, "committing %s", b->digest);
        blob_job_finish(b, &b->err);
    }
}

static void open_work(void *data)
{
    struct blob_job *b = data;
    content_ingest_open(b->s->content, b->digest, b->size, &b->ingest, &b->err);
}

static void open_done(void *data, int status)
{
    struct blob_job *b = data;
    if (status < 0 && !b->err.msg)
        err_sys(&b->err, -status, "opening the download of %s", b->digest);
    if (b->err.msg || b->s->shutting_down || !b->owner->session) {
        if (!b->err.msg)
            err_set(&b->err, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
        blob_job_finish(b, &b->err);
        return;
    }
    b->done = b->start_offset = content_ingest_offset(b->ingest);
    b->started_ms = now_ms(b->s);
    if (b->done > 0)
        log_info("resuming the download of %s at %llu of %lld bytes", b->digest, (unsigned long long)b->done,
                 (long long)b->size);
    if (b->done == (uint64_t)b->size) {
        int r = pool(b->s, commit_work, commit_done, b);
        if (r < 0) {
            err_sys(&b->err, -r, "committing %s", b->digest);
            blob_job_finish(b, &b->err);
        }
        return;
    }
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &b->waiters) layer_job_start_stream(list_entry(pos, struct layer_job, blob_link), b);
    static const struct registry_blob_callbacks cbs = {
        .on_data = blob_on_data,
        .on_restart = blob_on_restart,
        .on_done = blob_on_done,
    };
    b->fetch = registry_get_blob(b->owner->session, b->digest, b->done, b->first_endpoint, &cbs, b, &b->err);
    if (!b->fetch)
        blob_job_finish(b, &b->err);
}

static void blob_fetch_start(struct blob_job *b)
{
    int r = pool(b->s, open_work, open_done, b);
    if (r < 0) {
        err_sys(&b->err, -r, "starting the download of %s", b->digest);
        blob_job_finish(b, &b->err);
    }
}

static void start_queued_downloads(struct images *s)
{
    while (!s->shutting_down && s->downloads_running < s->max_downloads && !list_empty(&s->download_queue)) {
        struct blob_job *b = list_entry(s->download_queue.next, struct blob_job, queue_link);
        list_del(&b->queue_link);
        b->queued = false;
        s->downloads_running++;
        blob_fetch_start(b);
    }
}

/* --- pulls ------------------------------------------------------------------ */

static void pull_unref(struct pull *p)
{
    if (--p->refs > 0)
        return;
    registry_fetch_cancel(p->fetch);
    registry_session_free(p->session);
    image_ref_free(&p->ref);
    manifest_free(&p->manifest);
    image_config_free(&p->config);
    image_config_free_strv(p->chain_ids, p->n_layers);
    free(p->progress);
    free(p->jobs);
    free(p->index_body);
    free(p->manifest_body);
    free(p->config_body);
    image_config_free_strv(p->names, p->n_names);
    free(p->key);
    free(p);
}

/* Ends the pull for its callers; shared jobs it started go on. */
static void pull_finish(struct pull *p, const char *image_id, const err_t *err)
{
    if (p->finished)
        return;
    p->finished = true;
    list_del(&p->link);
    registry_fetch_cancel(p->fetch);
    p->fetch = NULL;
    while (!list_empty(&p->layer_waiters)) {
        struct layer_waiter *w = list_entry(p->layer_waiters.next, struct layer_waiter, pull_link);
        list_del(&w->pull_link);
        list_del(&w->link);
        free(w);
    }
    if (err)
        log_debug("pull of %s failed after %llums: %s", p->key, (unsigned long long)(now_ms(p->s) - p->started_ms),
                  err->msg);
    else
        log_info("%s %s (%s) in %llums", p->local ? "registered" : "pulled", p->key, image_id,
                 (unsigned long long)(now_ms(p->s) - p->started_ms));
    p->refs++;
    while (!list_empty(&p->waiters)) {
        struct images_pull_waiter *w = list_entry(p->waiters.next, struct images_pull_waiter, link);
        list_del(&w->link);
        w->pull = NULL;
        images_pull_done_fn done = w->done;
        void *data = w->data;
        free(w);
        done(data, image_id, err);
    }
    pull_unref(p); /* the temporary one */
    pull_unref(p); /* the pull's own */
}

static void pull_fail(struct pull *p, const err_t *err)
{
    pull_finish(p, NULL, err);
}

static void pull_failf(struct pull *p, enum err_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pull_failf(struct pull *p, enum err_code code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err_t e = ERR_INIT;
    err_set(&e, code, EINVAL, "pulling %s: %s", p->key, msg);
    pull_fail(p, &e);
    err_clear(&e);
}

struct finalize {
    struct pull *p;
    struct layer_info *infos;
    err_t err;
};

static void finalize_work(void *data)
{
    struct finalize *f = data;
    struct pull *p = f->p;
    struct images *s = p->s;
    if (p->index_body && content_write_blob(s->content, p->top_digest, p->index_body, p->index_len, &f->err) < 0)
        return;
    if (content_write_blob(s->content, p->manifest_digest, p->manifest_body, p->manifest_len, &f->err) < 0 ||
        content_write_blob(s->content, p->config_desc->digest, p->config_body, p->config_len, &f->err) < 0)
        return;
    for (size_t i = 0; i < p->n_layers; i++)
        if (layer_read_info(s->layers, p->chain_ids[i], &f->infos[i], &f->err) < 0)
            return;
}

static void registered(void *data, const err_t *err)
{
    struct pull *p = data;
    if (err) {
        pull_fail(p, err);
    } else {
        char id[DIGEST_MAX_LEN + 1];
        snprintf(id, sizeof(id), "%s", p->config_desc->digest);
        pull_finish(p, id, NULL);
    }
    pull_unref(p);
}

static int strv1(char ***v, size_t *n, const char *s)
{
    *v = calloc(1, sizeof(char *));
    if (!*v || !(**v = strdup(s))) {
        free(*v);
        *v = NULL;
        return -ENOMEM;
    }
    *n = 1;
    return 0;
}

/* An import's names: each is a repo tag, and name@digest a repo digest
 * (the archive's manifest is the registry's, byte for byte). */
static int add_local_names(struct pull *p, struct image_record *rec)
{
    rec->repo_tags = calloc(p->n_names, sizeof(char *));
    rec->repo_digests = calloc(p->n_names, sizeof(char *));
    if (!rec->repo_tags || !rec->repo_digests)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_names; i++) {
        struct image_ref ref;
        if (image_ref_parse(p->names[i], &ref, NULL) < 0)
            continue;
        char *name = image_ref_name(&ref);
        char *tag = NULL, *dig = NULL;
        if (name && ref.tag && asprintf(&tag, "%s:%s", name, ref.tag) >= 0)
            rec->repo_tags[rec->n_repo_tags++] = tag;
        if (name && p->local_repo_digests && asprintf(&dig, "%s@%s", name, p->top_digest) >= 0) {
            bool dup = false;
            for (size_t k = 0; k < rec->n_repo_digests && !dup; k++)
                dup = strcmp(rec->repo_digests[k], dig) == 0;
            if (dup)
                free(dig);
            else
                rec->repo_digests[rec->n_repo_digests++] = dig;
        }
        free(name);
        image_ref_free(&ref);
    }
    return 0;
}

/* Builds the record of the pulled image and registers it. */
static void register_image(struct pull *p, const struct layer_info *infos)
{
    struct images *s = p->s;
    struct image_record rec = {0};
    uint64_t size = p->config_len;
    for (size_t i = 0; i < p->n_layers; i++)
        size += infos[i].bytes;
    _cleanup_free_ char *name = p->local ? NULL : image_ref_name(&p->ref);
    _cleanup_free_ char *tag = NULL, *dig = NULL;
    if (!p->local && (!name || (p->ref.tag && asprintf(&tag, "%s:%s", name, p->ref.tag) < 0) ||
                      asprintf(&dig, "%s@%s", name, p->top_digest) < 0)) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rec.id = strdup(p->config_desc->digest);
    rec.manifest_digest = strdup(p->manifest_digest);
    rec.user = strdup(p->config.user ? p->config.user : "");
    rec.size = size;
    rec.pulled_at = (int64_t)time(NULL);
    rec.chain_ids = calloc(p->n_layers ? p->n_layers : 1, sizeof(char *));
    rec.n_layers = p->n_layers;
    bool ok = rec.id && rec.manifest_digest && rec.user && rec.chain_ids &&
              (!tag || strv1(&rec.repo_tags, &rec.n_repo_tags, tag) == 0) &&
              (!dig || strv1(&rec.repo_digests, &rec.n_repo_digests, dig) == 0);
    if (ok && p->local && p->n_names)
        ok = add_local_names(p, &rec) == 0;
    for (size_t i = 0; ok && i < p->n_layers; i++)
        ok = (rec.chain_ids[i] = strdup(p->chain_ids[i])) != NULL;
    if (!ok) {
        image_record_free(&rec);
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    /* Keep the parsed config for CreateContainer and ImageStatus. */
    char *json = malloc(p->config_len + 1);
    if (json) {
        memcpy(json, p->config_body, p->config_len);
        json[p->config_len] = '\0';
        cache_config(s, p->config_desc->digest, json, p->config_len, &p->config);
    }
    p->refs++;
    image_store_add(s->store, &rec, registered, p);
}

static void finalize_done(void *data, int status)
{
    struct finalize *f = data;
    struct pull *p = f->p;
    if (status < 0 && !f->err.msg)
        err_sys(&f->err, -status, "registering %s", p->key);
    if (f->err.msg)
        pull_fail(p, &f->err);
    else if (!p->finished)
        register_image(p, f->infos);
    free(f->infos);
    err_clear(&f->err);
    free(f);
    pull_unref(p);
}

static void pull_layers_done(struct pull *p)
{
    if (p->finished)
        return;
    struct finalize *f = calloc(1, sizeof(*f));
    if (f)
        f->infos = calloc(p->n_layers ? p->n_layers : 1, sizeof(*f->infos));
    if (!f || !f->infos) {
        if (f)
            free(f);
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    f->p = p;
    p->refs++;
    int r = pool(p->s, finalize_work, finalize_done, f);
    if (r < 0) {
        free(f->infos);
        free(f);
        pull_unref(p);
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "could not queue the final step");
    }
}

static void attach_layer(struct pull *p, size_t i, struct layer_job *j)
{
    struct layer_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->pull = p;
    w->index = i;
    w->job = j;
    list_add_tail(&j->waiters, &w->link);
    list_add_tail(&p->layer_waiters, &w->pull_link);
    p->jobs[i] = j;
    p->pending++;
}

static void start_layers(struct pull *p)
{
    struct images *s = p->s;
    for (size_t i = 0; i < p->n_layers && !p->finished; i++) {
        const struct descriptor *d = &p->manifest.layers[i];
        p->progress[i] = (struct pull_layer_progress){.digest = d->digest, .size = d->size};
        if (layer_exists(s->layers, p->chain_ids[i])) {
            p->progress[i].state = PULL_LAYER_CACHED;
            p->progress[i].done = (uint64_t)d->size;
            continue;
        }
        struct layer_job *j = find_layer_job(s, p->chain_ids[i]);
        if (!j) {
            j = calloc(1, sizeof(*j));
            if (!j) {
                pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
                return;
            }
            j->s = s;
            list_init(&j->waiters);
            list_init(&j->blob_link);
            snprintf(j->chain_id, sizeof(j->chain_id), "%s", p->chain_ids[i]);
            snprintf(j->diff_id, sizeof(j->diff_id), "%s", p->config.diff_ids[i]);
            snprintf(j->digest, sizeof(j->digest), "%s", d->digest);
            snprintf(j->media_type, sizeof(j->media_type), "%s", d->media_type);
            j->size = d->size;
            list_add_tail(&s->layer_jobs, &j->link);
            attach_layer(p, i, j);
            if (content_blob_exists(s->content, d->digest)) {
                layer_job_start_unpack(j);
                continue;
            }
            if (p->local) {
                err_set(&j->err, ERR_NOT_FOUND, ENOENT, "importing: layer blob %s is not in the archive", d->digest);
                layer_job_finish(j);
                continue;
            }
            struct blob_job *b = find_blob_job(s, d->digest);
            if (!b) {
                b = calloc(1, sizeof(*b));
                if (!b) {
                    err_sys(&j->err, ENOMEM, "downloading %s", d->digest);
                    layer_job_finish(j);
                    continue;
                }
                b->s = s;
                list_init(&b->waiters);
                snprintf(b->digest, sizeof(b->digest), "%s", d->digest);
                b->size = d->size;
                b->owner = p;
                p->refs++;
                b->queued = true;
                list_add_tail(&s->blob_jobs, &b->link);
                list_add_tail(&s->download_queue, &b->queue_link);
            }
            j->blob = b;
            list_add_tail(&b->waiters, &j->blob_link);
        } else {
            attach_layer(p, i, j);
        }
    }
    if (p->finished)
        return;
    emit_progress(p, true);
    start_queued_downloads(s);
    if (p->pending == 0)
        pull_layers_done(p);
}

static int config_on_data(void *data, const uint8_t *buf, size_t len)
{
    struct pull *p = data;
    if (p->config_len + len > p->config_cap)
        return -1;
    memcpy(p->config_body + p->config_len, buf, len);
    p->config_len += len;
    return 0;
}

static int config_on_restart(void *data)
{
    struct pull *p = data;
    p->config_len = 0;
    return 0;
}

static void config_on_done(void *data, const char *endpoint, const err_t *err)
{
    (void)endpoint;
    struct pull *p = data;
    p->fetch = NULL;
    if (err) {
        pull_fail(p, err);
        return;
    }
    char got[DIGEST_MAX_LEN + 1];
    digest_buffer((enum digest_algo)digest_algo_of(p->config_desc->digest), p->config_body, p->config_len, got);
    if (p->config_len != (size_t)p->config_desc->size || strcmp(got, p->config_desc->digest) != 0) {
        pull_failf(p, ERR_DATA_LOSS, "the image config has digest %s (%zu bytes), the manifest says %s (%lld bytes)",
                   got, p->config_len, p->config_desc->digest, (long long)p->config_desc->size);
        return;
    }
    err_t e = ERR_INIT;
    if (image_config_parse(p->config_body, p->config_len, &p->config, &e) < 0) {
        err_wrap(&e, "pulling %s: image config", p->key);
        pull_fail(p, &e);
        err_clear(&e);
        return;
    }
    if (p->config.n_diff_ids != p->manifest.n_layers) {
        pull_failf(p, ERR_INVALID_ARGUMENT, "the manifest lists %zu layers but the config %zu", p->manifest.n_layers,
                   p->config.n_diff_ids);
        return;
    }
    if (image_config_chain_ids(&p->config, &p->chain_ids, &e) < 0) {
        pull_fail(p, &e);
        err_clear(&e);
        return;
    }
    p->n_layers = p->config.n_diff_ids;
    p->progress = calloc(p->n_layers ? p->n_layers : 1, sizeof(*p->progress));
    p->jobs = calloc(p->n_layers ? p->n_layers : 1, sizeof(*p->jobs));
    if (!p->progress || !p->jobs) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    start_layers(p);
}

/* An import reads manifests and configs from the content store (in the
 * pool) instead of a registry; `then` runs on the loop as a fetch would. */
struct local_read {
    struct pull *p;
    char digest[DIGEST_MAX_LEN + 1];
    size_t max;
    uint8_t *data;
    size_t len;
    err_t err;
    void (*then)(struct pull *p, const uint8_t *data, size_t len, const err_t *err);
};

static void local_read_work(void *data)
{
    struct local_read *lr = data;
    if (content_read_blob(lr->p->s->content, lr->digest, lr->max, &lr->data, &lr->len, &lr->err) < 0 &&
        lr->err.errnum == ENOENT) {
        err_clear(&lr->err);
        err_set(&lr->err, ERR_NOT_FOUND, ENOENT, "blob %s is not in the archive", lr->digest);
    }
}

static void local_read_done(void *data, int status)
{
    struct local_read *lr = data;
    if (status < 0 && !lr->err.msg)
        err_sys(&lr->err, -status, "reading %s", lr->digest);
    if (!lr->p->finished)
        lr->then(lr->p, lr->data, lr->len, lr->err.msg ? &lr->err : NULL);
    pull_unref(lr->p);
    free(lr->data);
    err_clear(&lr->err);
    free(lr);
}

static void local_read(struct pull *p, const char *digest, size_t max,
                       void (*then)(struct pull *, const uint8_t *, size_t, const err_t *))
{
    struct local_read *lr = calloc(1, sizeof(*lr));
    if (!lr) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    lr->p = p;
    snprintf(lr->digest, sizeof(lr->digest), "%s", digest);
    lr->max = max;
    lr->then = then;
    p->refs++;
    if (pool(p->s, local_read_work, local_read_done, lr) < 0) {
        pull_unref(p);
        free(lr);
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "could not queue a read");
    }
}

static void config_on_done(void *data, const char *endpoint, const err_t *err);

static void local_config_read(struct pull *p, const uint8_t *data, size_t len, const err_t *err)
{
    if (!err) {
        size_t n = len < p->config_cap ? len : p->config_cap;
        memcpy(p->config_body, data, n);
        p->config_len = len; /* a wrong size is caught by config_on_done */
        if (len > p->config_cap)
            p->config_len = p->config_cap + 1;
    }
    config_on_done(p, NULL, err);
}

static void handle_image_manifest(struct pull *p)
{
    if (p->manifest.kind != MANIFEST_OCI && p->manifest.kind != MANIFEST_DOCKER_V2) {
        pull_failf(p, ERR_INVALID_ARGUMENT, "expected an image manifest, got %s", p->manifest.media_type);
        return;
    }
    p->config_desc = &p->manifest.config;
    if (p->config_desc->size <= 0 || p->config_desc->size > IMAGE_CONFIG_MAX_SIZE) {
        pull_failf(p, ERR_INVALID_ARGUMENT, "image config size %lld is out of range", (long long)p->config_desc->size);
        return;
    }
    p->config_cap = (size_t)p->config_desc->size;
    p->config_body = malloc(p->config_cap);
    if (!p->config_body) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (p->local) {
        local_read(p, p->config_desc->digest, IMAGE_CONFIG_MAX_SIZE, local_config_read);
        return;
    }
    static const struct registry_blob_callbacks cbs = {
        .on_data = config_on_data,
        .on_restart = config_on_restart,
        .on_done = config_on_done,
    };
    err_t e = ERR_INIT;
    p->fetch = registry_get_blob(p->session, p->config_desc->digest, 0, 0, &cbs, p, &e);
    if (!p->fetch) {
        pull_fail(p, &e);
        err_clear(&e);
    }
}

static bool check_body_digest(struct pull *p, const uint8_t *body, size_t len, const char *want, char *got)
{
    int algo = want ? digest_algo_of(want) : DIGEST_SHA256;
    digest_buffer((enum digest_algo)(algo < 0 ? DIGEST_SHA256 : algo), body, len, got);
    if (want && strcmp(got, want) != 0) {
        pull_failf(p, ERR_DATA_LOSS, "the registry sent a manifest with digest %s for %s", got, want);
        return false;
    }
    return true;
}

static void on_platform_manifest(void *data, const char *content_type, const uint8_t *body, size_t len,
                                 const char *endpoint, const err_t *err)
{
    (void)endpoint;
    struct pull *p = data;
    p->fetch = NULL;
    if (err) {
        pull_fail(p, err);
        return;
    }
    /* The index entry we chose names the digest: nothing else is accepted. */
    const char *want = p->manifest_digest;
    char got[DIGEST_MAX_LEN + 1];
    if (!check_body_digest(p, body, len, want, got))
        return;
    manifest_free(&p->manifest);
    err_t e = ERR_INIT;
    if (manifest_parse(content_type, body, len, &p->manifest, &e) < 0) {
        err_wrap(&e, "pulling %s", p->key);
        pull_fail(p, &e);
        err_clear(&e);
        return;
    }
    p->manifest_body = malloc(len ? len : 1);
    if (!p->manifest_body) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(p->manifest_body, body, len);
    p->manifest_len = len;
    handle_image_manifest(p);
}

static void local_platform_manifest(struct pull *p, const uint8_t *data, size_t len, const err_t *err)
{
    on_platform_manifest(p, NULL, data, len, NULL, err);
}

static void on_top_manifest(void *data, const char *content_type, const uint8_t *body, size_t len, const char *endpoint,
                            const err_t *err)
{
    (void)endpoint;
    struct pull *p = data;
    p->fetch = NULL;
    if (err) {
        pull_fail(p, err);
        return;
    }
    if (!check_body_digest(p, body, len, p->ref.digest, p->top_digest))
        return;
    err_t e = ERR_INIT;
    if (manifest_parse(content_type, body, len, &p->manifest, &e) < 0) {
        err_wrap(&e, "pulling %s", p->key);
        pull_fail(p, &e);
        err_clear(&e);
        return;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        pull_failf(p, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(copy, body, len);
    if (p->manifest.kind == MANIFEST_OCI_INDEX || p->manifest.kind == MANIFEST_DOCKER_LIST) {
        p->index_body = copy;
        p->index_len = len;
        struct platform want = platform_host();
        const struct descriptor *d = manifest_select_platform(&p->manifest, &want, &e);
        if (!d) {
            err_wrap(&e, "pulling %s", p->key);
            pull_fail(p, &e);
            err_clear(&e);
            return;
        }
        snprintf(p->manifest_digest, sizeof(p->manifest_digest), "%s", d->digest);
        if (p->local) {
            local_read(p, d->digest, MANIFEST_MAX_SIZE, local_platform_manifest);
            return;
        }
        p->fetch = registry_get_manifest(p->session, d->digest, on_platform_manifest, p, &e);
        if (!p->fetch) {
            pull_fail(p, &e);
            err_clear(&e);
        }
        return;
    }
    p->manifest_body = copy;
    p->manifest_len = len;
    snprintf(p->manifest_digest, sizeof(p->manifest_digest), "%s", p->top_digest);
    handle_image_manifest(p);
}

struct images_pull_waiter *images_pull(struct images *s, const char *reference,
                                       const struct registry_credentials *creds, images_pull_done_fn done,
                                       images_pull_progress_fn progress, void *data, err_t *err)
{
    if (s->shutting_down) {
        err_set(err, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
        return NULL;
    }
    struct image_ref ref;
    if (image_ref_parse(reference, &ref, err) < 0)
        return NULL;
    char *key = image_ref_string(&ref);
    struct images_pull_waiter *w = calloc(1, sizeof(*w));
    if (!key || !w) {
        free(key);
        free(w);
        image_ref_free(&ref);
        err_sys(err, ENOMEM, "pulling %s", reference);
        return NULL;
    }
    w->done = done;
    w->progress = progress;
    w->data = data;

    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->pulls)
    {
        struct pull *p = list_entry(pos, struct pull, link);
        if (strcmp(p->key, key) == 0) {
            log_debug("joining the pull of %s already running", key);
            free(key);
            image_ref_free(&ref);
            w->pull = p;
            list_add_tail(&p->waiters, &w->link);
            if (p->n_layers)
                emit_progress(p, true);
            return w;
        }
    }

    struct pull *p = calloc(1, sizeof(*p));
    if (!p) {
        free(key);
        free(w);
        image_ref_free(&ref);
        err_sys(err, ENOMEM, "pulling %s", reference);
        return NULL;
    }
    p->s = s;
    p->refs = 1;
    p->key = key;
    p->ref = ref;
    p->started_ms = now_ms(s);
    list_init(&p->waiters);
    list_init(&p->layer_waiters);
    p->session = registry_session_new(s->registry, ref.domain, ref.path, creds, err);
    if (!p->session) {
        err_wrap(err, "pulling %s", key);
        pull_unref(p);
        free(w);
        return NULL;
    }
    list_add_tail(&s->pulls, &p->link);
    w->pull = p;
    list_add_tail(&p->waiters, &w->link);
    log_debug("pulling %s", key);
    p->fetch = registry_get_manifest(p->session, ref.digest ? ref.digest : ref.tag, on_top_manifest, p, err);
    if (!p->fetch) {
        /* The waiter is the caller's to lose: detach it before failing. */
        list_del(&w->link);
        free(w);
        err_t copy = ERR_INIT;
        err_set(&copy, err->code, err->errnum, "%s", err->msg ? err->msg : "pull failed");
        pull_fail(p, &copy);
        err_clear(&copy);
        return NULL;
    }
    return w;
}

int images_register_local(struct images *s, const uint8_t *manifest, size_t len, const char *const *names,
                          size_t n_names, bool repo_digests, images_pull_done_fn done, void *data, err_t *err)
{
    if (s->shutting_down)
        return err_set(err, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
    struct pull *p = calloc(1, sizeof(*p));
    struct images_pull_waiter *w = calloc(1, sizeof(*w));
    char digest[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, manifest, len, digest);
    if (!p || !w || asprintf(&p->key, "import of %s", digest) < 0) {
        free(p);
        free(w);
        return err_sys(err, ENOMEM, "registering an imported image");
    }
    p->s = s;
    p->refs = 1;
    p->local = true;
    p->local_repo_digests = repo_digests;
    p->started_ms = now_ms(s);
    list_init(&p->waiters);
    list_init(&p->layer_waiters);
    if (n_names) {
        p->names = calloc(n_names, sizeof(char *));
        for (size_t i = 0; p->names && i < n_names; i++)
            if ((p->names[i] = strdup(names[i])))
                p->n_names++;
    }
    w->done = done;
    w->data = data;
    w->pull = p;
    list_add_tail(&p->waiters, &w->link);
    list_add_tail(&s->pulls, &p->link);
    on_top_manifest(p, NULL, manifest, len, NULL, NULL);
    return 0;
}

bool images_blob_needed(const struct images *s, const char *digest)
{
    if (blob_still_needed((struct images *)s, digest) || find_blob_job((struct images *)s, digest))
        return true;
    for (size_t k = 0; k < image_store_count(s->store); k++) {
        const struct image_record *o = image_store_at(s->store, k);
        if (strcmp(o->id, digest) == 0 || strcmp(o->manifest_digest, digest) == 0)
            return true;
        for (size_t d = 0; d < o->n_repo_digests; d++) {
            const char *at = strrchr(o->repo_digests[d], '@');
            if (at && strcmp(at + 1, digest) == 0)
                return true;
        }
    }
    /* With keep_layer_blobs, a layer blob is kept as long as some layer
     * exists; telling which blob made which layer takes the manifests, and
     * keeping a few extra blobs is what that option asks for anyway. */
    return s->keep_layer_blobs;
}

int images_queue_work(struct images *s, void (*work)(void *), void (*done)(void *, int), void *data)
{
    return pool(s, work, done, data);
}

struct content_store *images_content(const struct images *s)
{
    return s->content;
}

void images_pull_detach(struct images_pull_waiter *w)
{
    if (!w)
        return;
    if (w->pull)
        list_del(&w->link);
    free(w);
}

/* --- open, reload, shutdown ------------------------------------------------ */

static char *find_mountpoint(const char *path)
{
    char cur[4096];
    snprintf(cur, sizeof(cur), "%s", path);
    struct stat st, parent;
    if (stat(cur, &st) < 0)
        return strdup(path);
    for (;;) {
        char *slash = strrchr(cur, '/');
        if (!slash || slash == cur)
            return strdup(stat("/", &parent) == 0 && parent.st_dev == st.st_dev ? "/" : cur);
        char up[4096];
        snprintf(up, sizeof(up), "%.*s", (int)(slash - cur), cur);
        if (stat(up, &parent) < 0 || parent.st_dev != st.st_dev)
            return strdup(cur);
        snprintf(cur, sizeof(cur), "%s", up);
    }
}

static int load_registries(const char *path, struct registries_config **out, err_t *err)
{
    struct registries_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return err_sys(err, ENOMEM, "reading %s", path);
    if (registries_config_load(path, cfg, err) < 0) {
        free(cfg);
        return -EINVAL;
    }
    *out = cfg;
    return 0;
}

int images_open(uv_loop_t *loop, const struct images_options *opts, struct images **out, err_t *err)
{
    struct images *s = calloc(1, sizeof(*s));
    if (!s)
        return err_sys(err, ENOMEM, "opening the image service");
    s->loop = loop;
    list_init(&s->pulls);
    list_init(&s->blob_jobs);
    list_init(&s->layer_jobs);
    list_init(&s->download_queue);
    list_init(&s->configs);
    list_init(&s->streams_done);
    s->root = strdup(opts->root);
    s->registries_path = strdup(opts->registries_path);
    s->max_downloads = opts->max_concurrent_downloads ? opts->max_concurrent_downloads : 3;
    s->keep_layer_blobs = opts->keep_layer_blobs;
    s->limits = opts->limits;
    int r = 0;
    struct registries_config *reg = NULL;
    if (!s->root || !s->registries_path)
        r = err_sys(err, ENOMEM, "opening the image service");
    if (r == 0)
        r = content_store_open(s->root, &s->content, err);
    if (r == 0)
        r = layer_store_open(s->root, &s->layers, err);
    if (r == 0)
        r = image_store_open(s->root, &s->store, err);
    if (r == 0)
        r = load_registries(s->registries_path, &reg, err);
    if (r == 0 && !(s->registry = registry_client_new(loop, err)))
        r = -EIO;
    if (r < 0) {
        if (reg) {
            registries_config_free(reg);
            free(reg);
        }
        images_free(s);
        return r;
    }
    registry_client_set_config(s->registry, reg);
    s->mountpoint = find_mountpoint(s->root);
    /* Without it layers are unpacked after their download, as before. */
    s->streams_async = malloc(sizeof(*s->streams_async));
    if (s->streams_async && uv_mutex_init(&s->streams_mu) == 0) {
        if (uv_async_init(loop, s->streams_async, streams_async_cb) == 0) {
            s->streams_async->data = s;
            /* Only running unpacks matter, and images_busy counts those. */
            uv_unref((uv_handle_t *)s->streams_async);
        } else {
            uv_mutex_destroy(&s->streams_mu);
            free(s->streams_async);
            s->streams_async = NULL;
        }
    } else {
        free(s->streams_async);
        s->streams_async = NULL;
    }
    /* Configs of known images, for CreateContainer and ImageStatus. */
    for (size_t i = 0; i < image_store_count(s->store); i++) {
        const struct image_record *rec = image_store_at(s->store, i);
        uint8_t *data = NULL;
        size_t len = 0;
        err_t e = ERR_INIT;
        struct image_config cfg;
        if (content_read_blob(s->content, rec->id, IMAGE_CONFIG_MAX_SIZE, &data, &len, &e) < 0 ||
            image_config_parse(data, len, &cfg, &e) < 0) {
            log_warn("image %s: %s", rec->id, e.msg ? e.msg : "config unreadable");
            err_clear(&e);
            free(data);
            continue;
        }
        char *json = realloc(data, len + 1);
        if (!json) {
            free(data);
            image_config_free(&cfg);
            continue;
        }
        json[len] = '\0';
        cache_config(s, rec->id, json, len, &cfg);
    }
    *out = s;
    return 0;
}

int images_reload_registries(struct images *s, err_t *err)
{
    struct registries_config *reg = NULL;
    int r = load_registries(s->registries_path, &reg, err);
    if (r < 0)
        return r;
    registry_client_set_config(s->registry, reg);
    return 0;
}

void images_shutdown(struct images *s)
{
    s->shutting_down = true;
    err_t e = ERR_INIT;
    err_set(&e, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
    while (!list_empty(&s->pulls))
        pull_fail(list_entry(s->pulls.next, struct pull, link), &e);
    /* Downloads waiting for a slot, or on the network, end now; the partial
     * files stay for the next start. Work in the thread pool finishes. */
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->blob_jobs)
    {
        struct blob_job *b = list_entry(pos, struct blob_job, link);
        if (b->queued || b->fetch)
            blob_job_finish(b, &e);
    }
    err_clear(&e);
}

bool images_stopping(const struct images *s)
{
    return s->shutting_down;
}

bool images_busy(const struct images *s)
{
    return s->pool_jobs > 0 || image_store_busy(s->store);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void images_free(struct images *s)
{
    if (!s)
        return;
    while (!list_empty(&s->configs)) {
        struct cached_config *c = list_entry(s->configs.next, struct cached_config, link);
        drop_config(s, c->id);
    }
    if (s->streams_async) {
        /* images_busy was false: no unpack thread is left. */
        uv_close((uv_handle_t *)s->streams_async, free_handle);
        uv_mutex_destroy(&s->streams_mu);
    }
    registry_client_free(s->registry);
    image_store_free(s->store);
    layer_store_free(s->layers);
    content_store_free(s->content);
    free(s->mountpoint);
    free(s->root);
    free(s->registries_path);
    free(s);
}

/* --- lookups ----------------------------------------------------------------- */

const struct image_record *images_lookup(const struct images *s, const char *text)
{
    return image_store_lookup(s->store, text);
}

size_t images_count(const struct images *s)
{
    return image_store_count(s->store);
}

const struct image_record *images_at(const struct images *s, size_t i)
{
    return image_store_at(s->store, i);
}

const struct image_config *images_config(const struct images *s, const char *image_id)
{
    struct cached_config *c = find_config(s, image_id);
    return c ? &c->cfg : NULL;
}

const char *images_config_json(const struct images *s, const char *image_id, size_t *len)
{
    struct cached_config *c = find_config(s, image_id);
    if (!c)
        return NULL;
    *len = c->len;
    return c->json;
}

char *images_layer_path(const struct images *s, const char *chain_id)
{
    return layer_fs_path(s->layers, chain_id);
}

void images_set_layer_user(struct images *s, bool (*in_use)(void *data, const char *chain_id), void *data)
{
    s->layer_in_use = in_use;
    s->layer_in_use_data = data;
}

/* --- removal ------------------------------------------------------------------ */

struct gc {
    struct images *s;
    char **layers; /* chain IDs to remove */
    size_t n_layers;
    char **blobs; /* digests to remove */
    size_t n_blobs;
    /* RemoveImage answers once the record is written and the files are
     * gone: a pull right after it must not find a half-deleted layer. */
    persist_done_fn done;
    void *data;
    int pending;
    err_t err;
};

static void gc_step(struct gc *g)
{
    if (--g->pending > 0)
        return;
    if (g->done)
        g->done(g->data, g->err.msg ? &g->err : NULL);
    err_clear(&g->err);
    image_config_free_strv(g->layers, g->n_layers);
    image_config_free_strv(g->blobs, g->n_blobs);
    free(g);
}

static void gc_record_written(void *data, const err_t *err)
{
    struct gc *g = data;
    if (err && !g->err.msg)
        err_set(&g->err, err->code, err->errnum, "%s", err->msg);
    gc_step(g);
}

static void gc_work(void *data)
{
    struct gc *g = data;
    for (size_t i = 0; i < g->n_layers; i++) {
        err_t e = ERR_INIT;
        if (layer_remove(g->s->layers, g->layers[i], &e) < 0)
            log_warn("removing layer %s: %s", g->layers[i], e.msg);
        err_clear(&e);
    }
    for (size_t i = 0; i < g->n_blobs; i++)
        content_delete_blob(g->s->content, g->blobs[i], NULL);
}

static void gc_done(void *data, int status)
{
    (void)status;
    gc_step(data);
}

static bool layer_busy(const struct images *s, const char *chain_id)
{
    if (image_store_uses_layer(s->store, chain_id))
        return true;
    if (s->layer_in_use && s->layer_in_use(s->layer_in_use_data, chain_id))
        return true;
    return find_layer_job((struct images *)s, chain_id) != NULL;
}

static void gc_add(char ***v, size_t *n, const char *x)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return;
    *v = nv;
    if ((nv[*n] = strdup(x)))
        (*n)++;
}

bool images_remove(struct images *s, const char *text, persist_done_fn done, void *data)
{
    const struct image_record *r = image_store_lookup(s->store, text);
    if (!r)
        return false;
    /* Copy what the removal needs before the record goes. */
    struct gc *g = calloc(1, sizeof(*g));
    char id[DIGEST_MAX_LEN + 1];
    snprintf(id, sizeof(id), "%s", r->id);
    if (g) {
        g->s = s;
        for (size_t i = 0; i < r->n_layers; i++)
            gc_add(&g->layers, &g->n_layers, r->chain_ids[i]);
        gc_add(&g->blobs, &g->n_blobs, r->id);
        gc_add(&g->blobs, &g->n_blobs, r->manifest_digest);
        for (size_t i = 0; i < r->n_repo_digests; i++) {
            const char *at = strrchr(r->repo_digests[i], '@');
            if (at && digest_valid(at + 1))
                gc_add(&g->blobs, &g->n_blobs, at + 1);
        }
    }
    if (!g) {
        image_store_remove(s->store, id, done, data);
        drop_config(s, id);
        return true;
    }
    g->done = done;
    g->data = data;
    g->pending = 2; /* the record, the files */
    image_store_remove(s->store, id, gc_record_written, g);
    drop_config(s, id);
    /* Only what no other image (or container) still uses goes. */
    for (size_t i = 0; i < g->n_layers;) {
        if (layer_busy(s, g->layers[i])) {
            free(g->layers[i]);
            memmove(&g->layers[i], &g->layers[i + 1], (g->n_layers - i - 1) * sizeof(char *));
            g->n_layers--;
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < g->n_blobs;) {
        bool used = false;
        for (size_t k = 0; k < image_store_count(s->store) && !used; k++) {
            const struct image_record *o = image_store_at(s->store, k);
            used = strcmp(o->id, g->blobs[i]) == 0 || strcmp(o->manifest_digest, g->blobs[i]) == 0;
            for (size_t d = 0; d < o->n_repo_digests && !used; d++) {
                const char *at = strrchr(o->repo_digests[d], '@');
                used = at && strcmp(at + 1, g->blobs[i]) == 0;
            }
        }
        if (used) {
            free(g->blobs[i]);
            memmove(&g->blobs[i], &g->blobs[i + 1], (g->n_blobs - i - 1) * sizeof(char *));
            g->n_blobs--;
        } else {
            i++;
        }
    }
    if (pool(s, gc_work, gc_done, g) < 0)
        gc_done(g, 0);
    return true;
}

/* --- usage ------------------------------------------------------------------- */

struct usage_job {
    struct images *s;
    void (*done)(void *, const struct images_usage *, const err_t *);
    void *data;
    struct images_usage u;
    err_t err;
};

static void usage_work(void *data)
{
    struct usage_job *j = data;
    uint64_t bytes = 0, inodes = 0;
    if (content_usage(j->s->content, &bytes, &inodes, &j->err) < 0)
        return;
    char **ids = NULL;
    size_t n = 0;
    if (layer_list(j->s->layers, &ids, &n, &j->err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct layer_info info;
        if (layer_read_info(j->s->layers, ids[i], &info, NULL) == 0) {
            bytes += info.bytes;
            inodes += info.inodes;
        }
        free(ids[i]);
    }
    free(ids);
    j->u.bytes = bytes;
    j->u.inodes = inodes;
}

static void usage_done(void *data, int status)
{
    struct usage_job *j = data;
    if (status < 0 && !j->err.msg)
        err_sys(&j->err, -status, "measuring the image store");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->u.timestamp_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    j->u.mountpoint = j->s->mountpoint;
    j->done(j->data, &j->u, j->err.msg ? &j->err : NULL);
    err_clear(&j->err);
    free(j);
}

int images_usage(struct images *s, void (*done)(void *, const struct images_usage *, const err_t *), void *data)
{
    struct usage_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->s = s;
    j->done = done;
    j->data = data;
    int r = pool(s, usage_work, usage_done, j);
    if (r < 0)
        free(j);
    return r;
}
