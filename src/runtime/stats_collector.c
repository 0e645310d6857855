/* Stats samples: the pool job that reads them, and what is remembered
 * between calls (CPU baselines, writable-layer sizes). See
 * stats_collector.h for the why. */
#include "runtime/stats_collector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "loop/loop.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "util/cleanup.h"
#include "util/ids.h"
#include "util/list.h"

#define NS_PER_S           (1000LL * 1000 * 1000)
#define FS_REFRESH_MIN_NS  (10 * NS_PER_S)
#define FS_REFRESH_MAX_NS  (600 * NS_PER_S)
#define FS_REFRESH_FACTOR  100 /* interval = factor × duration of the last walk */
#define DU_MAX_OPEN        16  /* directories a walk holds open at once */
#define PRUNE_INTERVAL_NS  (30 * NS_PER_S)
#define INLINE_WALKS_NS    (2 * NS_PER_S) /* first walks a request may wait for */
#define MAX_PIDS_PER_NETNS 8

/* What is remembered about one container or pod. */
struct entry {
    char id[65];
    bool is_pod;
    struct stats_rate rate;
    bool has_fs, walking;
    bool walk_later; /* never measured: the first walk did not fit in its request */
    struct stats_du fs;
    int64_t fs_timestamp_ns; /* realtime of the walk */
    int64_t fs_next_ns;      /* monotonic: when a new walk is due */
};

struct stats_collector {
    /* Its own, not the daemon's: a read may still be in the pool while
     * the daemon shuts down and frees its own. */
    struct cgroup_manager *cgroups;
    struct containers *containers;
    struct pods *pods;
    char *root_dir;
    char *mountpoint;
    struct entry **entries; /* sorted by (id, is_pod) */
    size_t n, cap;
    int64_t pruned_ns;
    int jobs;
    bool refreshing;
    bool dead;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* The mount point holding `path`, as images.c names the image file system:
 * the writable layers live on the same one (both under the root dir). */
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
        *slash = '\0';
        if (stat(cur, &parent) < 0 || parent.st_dev != st.st_dev) {
            *slash = '/';
            return strdup(cur);
        }
    }
}

static void collector_release(struct stats_collector *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        free(sc->entries[i]);
    free(sc->entries);
    free(sc->root_dir);
    free(sc->mountpoint);
    cgroup_manager_free(sc->cgroups);
    free(sc);
}

struct stats_collector *stats_collector_new(enum cgroup_driver_kind driver, struct containers *cs, struct pods *ps,
                                            const char *root_dir, err_t *err)
{
    struct stats_collector *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        err_sys(err, ENOMEM, "creating the stats collector");
        return NULL;
    }
    if (cgroup_manager_new(driver, &sc->cgroups, err) < 0) {
        free(sc);
        return NULL;
    }
    sc->containers = cs;
    sc->pods = ps;
    sc->root_dir = strdup(root_dir);
    sc->mountpoint = find_mountpoint(root_dir);
    sc->pruned_ns = mono_ns();
    if (!sc->root_dir || !sc->mountpoint) {
        err_sys(err, ENOMEM, "creating the stats collector");
        collector_release(sc);
        return NULL;
    }
    return sc;
}

void stats_collector_free(struct stats_collector *sc)
{
    if (!sc)
        return;
    sc->dead = true;
    if (sc->jobs == 0)
        collector_release(sc);
}

const char *stats_collector_mountpoint(const struct stats_collector *sc)
{
    return sc->mountpoint;
}

/* ---- the per-id memory -------------------------------------------------- */

static int entry_cmp(const char *id, bool is_pod, const struct entry *e)
{
    int c = strcmp(id, e->id);
    return c ? c : (int)is_pod - (int)e->is_pod;
}

/* Index of the entry, or where it would go (with *found false). */
static size_t entry_index(const struct stats_collector *sc, const char *id, bool is_pod, bool *found)
{
    size_t lo = 0, hi = sc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = entry_cmp(id, is_pod, sc->entries[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

static struct entry *entry_find(const struct stats_collector *sc, const char *id, bool is_pod)
{
    bool found;
    size_t i = entry_index(sc, id, is_pod, &found);
    return found ? sc->entries[i] : NULL;
}

static struct entry *entry_get(struct stats_collector *sc, const char *id, bool is_pod)
{
    bool found;
    size_t i = entry_index(sc, id, is_pod, &found);
    if (found)
        return sc->entries[i];
    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 16;
        struct entry **n = realloc(sc->entries, ncap * sizeof(*n));
        if (!n)
            return NULL;
        sc->entries = n;
        sc->cap = ncap;
    }
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->is_pod = is_pod;
    memmove(&sc->entries[i + 1], &sc->entries[i], (sc->n - i) * sizeof(*sc->entries));
    sc->entries[i] = e;
    sc->n++;
    return e;
}

static bool alive(struct stats_collector *sc, const struct entry *e)
{
    if (e->is_pod) {
        const struct pod *p = pods_find(sc->pods, e->id);
        return p && strcmp(p->id, e->id) == 0;
    }
    const struct container *c = containers_find(sc->containers, e->id);
    return c && strcmp(c->id, e->id) == 0;
}

/* Forgets containers and pods that are gone. Cheap enough (one lookup per
 * entry) but pointless on every call. */
static void prune(struct stats_collector *sc, int64_t now)
{
    if (now - sc->pruned_ns < PRUNE_INTERVAL_NS)
        return;
    sc->pruned_ns = now;
    size_t k = 0;
    for (size_t i = 0; i < sc->n; i++) {
        if (alive(sc, sc->entries[i]))
            sc->entries[k++] = sc->entries[i];
        else
            free(sc->entries[i]);
    }
    sc->n = k;
}

/* ---- batches -------------------------------------------------------------------- */

struct stats_batch *stats_batch_new(unsigned flags)
{
    struct stats_batch *b = calloc(1, sizeof(*b));
    if (b)
        b->flags = flags;
    return b;
}

void stats_batch_free(struct stats_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct stats_sample *s = &b->s[i];
        free(s->cgroup_path);
        free(s->upper_dir);
        free(s->netns);
        free(s->pids);
        free(s->net);
    }
    free(b->s);
    free(b);
}

static struct stats_sample *batch_add(struct stats_batch *b, const char *id, bool is_pod)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 8;
        struct stats_sample *n = realloc(b->s, ncap * sizeof(*n));
        if (!n)
            return NULL;
        b->s = n;
        b->cap = ncap;
    }
    struct stats_sample *s = &b->s[b->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->is_pod = is_pod;
    /* the CRI gives a process count for pods only */
    s->flags = b->flags | (is_pod ? STATS_READ_PIDS : 0);
    return s;
}

static bool set_str(char **dst, const char *src)
{
    return !src || (*dst = strdup(src)) != NULL;
}

struct stats_sample *stats_batch_add_container(struct stats_collector *sc, struct stats_batch *b,
                                               const struct container *c)
{
    struct stats_sample *s = batch_add(b, c->id, false);
    if (!s)
        return NULL;
    /* An exited container's cgroup is on its way out (containers.c
     * destroys it at exit): only a running one has usage to show. */
    bool ok = set_str(&s->cgroup_path,
                      c->state == CONTAINER_RUNNING && c->cgroup_path && *c->cgroup_path ? c->cgroup_path : NULL);
    /* containers.c's mount_rootfs: <root>/containers/<id>/upper */
    if (ok && asprintf(&s->upper_dir, "%s/containers/%s/upper", sc->root_dir, c->id) < 0) {
        s->upper_dir = NULL;
        ok = false;
    }
    if (!ok) {
        free(s->cgroup_path);
        b->n--;
        return NULL;
    }
    return s;
}

struct stats_sample *stats_batch_add_pod(struct stats_collector *sc, struct stats_batch *b, const struct pod *p)
{
    struct stats_sample *s = batch_add(b, p->id, true);
    if (!s)
        return NULL;
    bool ok = set_str(&s->cgroup_path, p->cgroup_path && *p->cgroup_path ? p->cgroup_path : NULL);
    if (ok && p->state == POD_READY && p->netns && *p->netns) {
        ok = set_str(&s->netns, p->netns) && (s->pids = calloc(MAX_PIDS_PER_NETNS, sizeof(pid_t))) != NULL;
        /* Processes likely in the pod's network namespace, to read its
         * /proc/<pid>/net/dev without entering it (checked by inode). */
        if (ok && p->init_pid > 0)
            s->pids[s->n_pids++] = p->init_pid;
        struct list_node *pos, *tmp, *head = containers_list(sc->containers);
        list_for_each_safe(pos, tmp, head)
        {
            const struct container *c = list_entry(pos, struct container, link);
            if (!ok || s->n_pids >= MAX_PIDS_PER_NETNS)
                break;
            if (c->state == CONTAINER_RUNNING && c->pid > 0 && strcmp(c->pod_id, p->id) == 0)
                s->pids[s->n_pids++] = c->pid;
        }
    }
    if (!ok) {
        free(s->cgroup_path);
        free(s->netns);
        free(s->pids);
        b->n--;
        return NULL;
    }
    return s;
}

/* ---- collecting ------------------------------------------------------------------- */

struct collect_job {
    struct stats_collector *sc;
    struct cgroup_manager *cgroups;
    int64_t walks_deadline; /* monotonic */
    struct stats_batch *b;
    stats_done_fn done;
    void *data;
};

static void collect_work(void *data)
{
    struct collect_job *j = data;
    struct sysinfo si;
    unsigned extra = sysinfo(&si) == 0 && si.totalswap == 0 ? STATS_SWAP_OFF : 0;
    for (size_t i = 0; i < j->b->n; i++) {
        struct stats_sample *s = &j->b->s[i];
        s->timestamp_ns = time_now_ns();
        s->mono_ns = mono_ns();
        if (s->cgroup_path)
            s->cg_ok = stats_read_cgroup(j->cgroups, s->cgroup_path, s->flags | extra, &s->cg) == 0;
        if (s->walk_now && mono_ns() > j->walks_deadline) {
            s->walk_now = false; /* left to the background walk */
            s->walk_later = true;
        } else if (s->walk_now) {
            err_t e = ERR_INIT;
            int64_t t0 = mono_ns();
            s->has_fs = stats_dir_usage(s->upper_dir, DU_MAX_OPEN, &s->fs, &e) == 0;
            s->walk_took_ns = mono_ns() - t0;
            s->fs_timestamp_ns = time_now_ns();
            err_clear(&e);
        }
        if (s->netns && (s->net = malloc(sizeof(*s->net)))) {
            err_t e = ERR_INIT;
            if (stats_read_netns(s->netns, s->pids, s->n_pids, s->net, &e) < 0) {
                free(s->net);
                s->net = NULL;
            }
            err_clear(&e);
        }
    }
}

static int64_t refresh_interval(int64_t took_ns)
{
    int64_t i = took_ns > FS_REFRESH_MAX_NS / FS_REFRESH_FACTOR ? FS_REFRESH_MAX_NS : took_ns * FS_REFRESH_FACTOR;
    return i < FS_REFRESH_MIN_NS ? FS_REFRESH_MIN_NS : i;
}

static void fs_store(struct entry *e, const struct stats_du *du, int64_t ts, int64_t started, int64_t ended)
{
    e->has_fs = true;
    e->fs = *du;
    e->fs_timestamp_ns = ts;
    e->fs_next_ns = ended + refresh_interval(ended - started);
}

/* ---- background refresh of writable layers ---- */

struct refresh_item {
    char id[65];
    char *dir;
    int result;
    struct stats_du du;
    int64_t ts, started, ended;
};

struct refresh_job {
    struct stats_collector *sc;
    struct refresh_item *items;
    size_t n;
};

static void refresh_work(void *data)
{
    struct refresh_job *j = data;
    for (size_t i = 0; i < j->n; i++) {
        struct refresh_item *it = &j->items[i];
        err_t e = ERR_INIT;
        it->started = mono_ns();
        it->result = stats_dir_usage(it->dir, DU_MAX_OPEN, &it->du, &e);
        it->ended = mono_ns();
        it->ts = time_now_ns();
        err_clear(&e);
    }
}

static void refresh_done(void *data, int status)
{
    struct refresh_job *j = data;
    struct stats_collector *sc = j->sc;
    for (size_t i = 0; i < j->n; i++) {
        struct refresh_item *it = &j->items[i];
        struct entry *e = sc->dead ? NULL : entry_find(sc, it->id, false);
        if (e) {
            e->walking = e->walk_later = false;
            if (status == 0 && it->result == 0)
                fs_store(e, &it->du, it->ts, it->started, it->ended);
            else /* gone or unreadable: try again later, not at once */
                e->fs_next_ns = mono_ns() + FS_REFRESH_MIN_NS;
        }
        free(it->dir);
    }
    free(j->items);
    free(j);
    sc->refreshing = false;
    if (--sc->jobs == 0 && sc->dead)
        collector_release(sc);
}

/* Starts one background walk over the layers of `b` that are due. */
static void refresh_due(struct stats_collector *sc, struct stats_batch *b, int64_t now)
{
    if (sc->refreshing || sc->dead)
        return;
    struct refresh_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->items = calloc(b->n ? b->n : 1, sizeof(*j->items)))) {
        free(j);
        return;
    }
    j->sc = sc;
    for (size_t i = 0; i < b->n; i++) {
        struct stats_sample *s = &b->s[i];
        struct entry *e = s->upper_dir ? entry_find(sc, s->id, false) : NULL;
        if (!e || e->walking || !(e->walk_later || (e->has_fs && now >= e->fs_next_ns)))
            continue;
        struct refresh_item *it = &j->items[j->n];
        if (!(it->dir = strdup(s->upper_dir)))
            break;
        snprintf(it->id, sizeof(it->id), "%s", s->id);
        e->walking = true;
        j->n++;
    }
    if (j->n && loop_queue_work(refresh_work, refresh_done, j) == 0) {
        sc->refreshing = true;
        sc->jobs++;
        return;
    }
    for (size_t i = 0; i < j->n; i++) {
        struct entry *e = entry_find(sc, j->items[i].id, false);
        if (e)
            e->walking = false;
        free(j->items[i].dir);
    }
    free(j->items);
    free(j);
}

static void collect_done(void *data, int status)
{
    struct collect_job *j = data;
    struct stats_collector *sc = j->sc;
    int64_t now = mono_ns();
    for (size_t i = 0; i < j->b->n && !sc->dead; i++) {
        struct stats_sample *s = &j->b->s[i];
        if (status < 0) {
            s->cg_ok = s->has_fs = false;
            free(s->net);
            s->net = NULL;
        }
        struct entry *e = entry_get(sc, s->id, s->is_pod);
        if (!e)
            continue;
        if (s->cg_ok && s->cg.cpu.valid)
            s->has_nano_cores =
                stats_rate_update(&e->rate, s->mono_ns, s->cg.cpu.usage_ns, STATS_RATE_MIN_WINDOW_NS, &s->nano_cores);
        if (s->walk_later) {
            e->walking = false;
            e->walk_later = true;
        } else if (s->walk_now) {
            e->walking = false;
            if (s->has_fs)
                fs_store(e, &s->fs, s->fs_timestamp_ns, now - s->walk_took_ns, now);
        } else if (e->has_fs) {
            s->has_fs = true;
            s->fs = e->fs;
            s->fs_timestamp_ns = e->fs_timestamp_ns;
        }
    }
    if (!sc->dead)
        refresh_due(sc, j->b, now);
    struct stats_batch *b = j->b;
    stats_done_fn done = j->done;
    void *ddata = j->data;
    free(j);
    if (--sc->jobs == 0 && sc->dead)
        collector_release(sc);
    done(ddata, b);
}

int stats_collect(struct stats_collector *sc, struct stats_batch *b, stats_done_fn done, void *data)
{
    struct collect_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    /* Called from a live RPC, so the daemon's lists are there to check
     * against (in collect_done they may be gone: shutdown). */
    prune(sc, mono_ns());
    *j = (struct collect_job){.sc = sc,
                              .cgroups = sc->cgroups,
                              .walks_deadline = mono_ns() + INLINE_WALKS_NS,
                              .b = b,
                              .done = done,
                              .data = data};
    /* A layer never measured is measured now, in this job: a new one is
     * small, and the answer should not lack it. */
    for (size_t i = 0; i < b->n; i++) {
        struct stats_sample *s = &b->s[i];
        const struct entry *e = s->upper_dir ? entry_find(sc, s->id, false) : NULL;
        s->walk_now = s->upper_dir && (!e || (!e->has_fs && !e->walking && !e->walk_later));
    }
    int r = loop_queue_work(collect_work, collect_done, j);
    if (r < 0) {
        free(j);
        return r;
    }
    sc->jobs++;
    for (size_t i = 0; i < b->n; i++) {
        struct entry *e = b->s[i].walk_now ? entry_get(sc, b->s[i].id, false) : NULL;
        if (e)
            e->walking = true;
    }
    return 0;
}
