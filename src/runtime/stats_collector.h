/* Samples of containers and pods for the CRI stats and metrics RPCs.
 *
 * A request is a batch of samples named on the loop thread (what cgroup,
 * which writable layer, which network namespace); the reading happens in
 * one thread-pool job, so the loop never waits on cgroupfs or /proc; the
 * results come back to the loop, where the collector adds what needs
 * memory of earlier calls:
 *
 *  - usage_nano_cores, from this sample and the one kept from an earlier
 *    call (stats_rate: the baseline moves at most once a second, so
 *    concurrent pollers all get a rate over a real window);
 *  - the writable layer's bytes and inodes, from a cache. Measuring a layer
 *    is a tree walk, so it is never done per call: the first request for a
 *    container walks its layer within the job (a new layer is small), later
 *    ones get the cached figure and, once it is older than its refresh
 *    interval, start one background walk (one at a time for the whole
 *    daemon). The interval is 100 times what the last walk of that layer
 *    took, at least 10 s and at most 10 min, so a big layer costs at most
 *    ~1% of one pool thread however often kubelet polls, and a small one is
 *    never more than ~10 s stale. First walks that do not fit in 2 s of a
 *    request (many big layers after a restart) are left to the background
 *    walk; that answer lacks their writable layer.
 *
 * The memory of earlier calls is kept per id and dropped for ids that no
 * longer name a container or pod (checked at most every 30 s, against the
 * live lists), so removed containers leave nothing behind. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"
#include "runtime/stats.h"
#include "util/error.h"

struct stats_collector;
struct cgroup_manager;
struct containers;
struct pods;
struct container;
struct pod;

struct stats_sample {
    /* what to read, set by stats_batch_add_* */
    char id[65];
    bool is_pod;
    char *cgroup_path; /* NULL: nothing to read (a container that is not running) */
    char *upper_dir;   /* containers: the writable layer */
    char *netns;       /* pods in a network namespace of their own */
    pid_t *pids;       /* processes believed to be in netns */
    size_t n_pids;

    /* results */
    int64_t timestamp_ns; /* CLOCK_REALTIME, when the sample was read */
    bool cg_ok;
    struct stats_cgroup cg;
    bool has_nano_cores;
    uint64_t nano_cores;
    bool has_fs;
    struct stats_du fs;
    int64_t fs_timestamp_ns;
    struct stats_net *net; /* NULL when not known */

    /* private */
    int64_t mono_ns;
    unsigned flags;
    bool walk_now, walk_later;
    int64_t walk_took_ns;
};

struct stats_batch {
    struct stats_sample *s;
    size_t n, cap;
    unsigned flags; /* STATS_READ_* */
};

/* `driver` as configured: the collector detects the cgroup layout itself
 * (its reads must not depend on the daemon's manager, see the .c). */
struct stats_collector *stats_collector_new(enum cgroup_driver_kind driver, struct containers *cs, struct pods *ps,
                                            const char *root_dir, err_t *err);
/* Safe with a job in flight: the memory goes when the last one is back. */
void stats_collector_free(struct stats_collector *sc);

/* The file system the writable layers live on (FilesystemUsage.fs_id), the
 * same mount point ImageFsInfo names. */
const char *stats_collector_mountpoint(const struct stats_collector *sc);

struct stats_batch *stats_batch_new(unsigned flags);
void stats_batch_free(struct stats_batch *b);
/* Return the new sample, or NULL when out of memory. */
struct stats_sample *stats_batch_add_container(struct stats_collector *sc, struct stats_batch *b,
                                               const struct container *c);
struct stats_sample *stats_batch_add_pod(struct stats_collector *sc, struct stats_batch *b, const struct pod *p);

/* Reads every sample of `b` in the pool, then calls done(data, b) on the
 * loop thread; the batch stays the caller's. Returns 0, or a negative errno
 * when the job could not be queued (done is then not called). */
typedef void (*stats_done_fn)(void *data, struct stats_batch *b);
int stats_collect(struct stats_collector *sc, struct stats_batch *b, stats_done_fn done, void *data);
