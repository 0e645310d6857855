/* The metrics RPCs: ListMetricDescriptors, ListPodSandboxMetrics and
 * StreamPodSandboxMetrics, what kubelet serves at /metrics/cadvisor when
 * it takes pod and container stats from the runtime.
 *
 * Names, types and label keys are cAdvisor's, so dashboards and alerts
 * written against cAdvisor keep working. kubelet turns each Metric into a
 * Prometheus sample with the descriptor's label keys, and drops one whose
 * label values do not match them one for one: every value here is built
 * from the same table as the descriptors. Values are integers (the CRI's
 * UInt64Value), so the *_seconds_total counters are whole seconds, as in
 * CRI-O. */
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "runtime/stats_collector.h"
#include "util/cleanup.h"
#include "util/ids.h"

#define STREAM_BATCH 100
#define NS_PER_S     1000000000ULL

/* cAdvisor's own labels: "id" is the cgroup, "name" the runtime's name for
 * the container (its ID), "container" the Kubernetes name (empty for the
 * pod's cgroup). */
#define BASE_LABELS "container", "id", "image", "name", "namespace", "pod"
#define N_BASE      6
#define MAX_LABELS  (N_BASE + 2)

enum metric {
    M_CPU_USAGE,
    M_CPU_USER,
    M_CPU_SYSTEM,
    M_CPU_PERIODS,
    M_CPU_THROTTLED_PERIODS,
    M_CPU_THROTTLED_SECONDS,
    M_MEM_USAGE,
    M_MEM_WORKING_SET,
    M_MEM_RSS,
    M_MEM_CACHE,
    M_MEM_MAPPED_FILE,
    M_MEM_SWAP,
    M_MEM_MAX_USAGE,
    M_MEM_FAILCNT,
    M_MEM_FAILURES,
    M_OOM_EVENTS,
    M_SPEC_MEM_LIMIT,
    M_SPEC_SWAP_LIMIT,
    M_SPEC_CPU_PERIOD,
    M_SPEC_CPU_QUOTA,
    M_SPEC_CPU_SHARES,
    M_PROCESSES,
    M_THREADS_MAX,
    M_FS_USAGE,
    M_NET_RX_BYTES,
    M_NET_RX_PACKETS,
    M_NET_RX_DROPPED,
    M_NET_RX_ERRORS,
    M_NET_TX_BYTES,
    M_NET_TX_PACKETS,
    M_NET_TX_DROPPED,
    M_NET_TX_ERRORS,
    M_LAST_SEEN,
    M_START_TIME,
    M_COUNT
};

#define COUNTER RUNTIME__V1__METRIC_TYPE__COUNTER
#define GAUGE   RUNTIME__V1__METRIC_TYPE__GAUGE

static const struct metric_desc {
    const char *name, *help;
    Runtime__V1__MetricType type;
    const char *extra[2]; /* label keys after the base ones */
} descs[M_COUNT] = {
    [M_CPU_USAGE] = {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", COUNTER, {"cpu"}},
    [M_CPU_USER] = {"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", COUNTER},
    [M_CPU_SYSTEM] = {"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", COUNTER},
    [M_CPU_PERIODS] = {"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", COUNTER},
    [M_CPU_THROTTLED_PERIODS] = {"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
                                 COUNTER},
    [M_CPU_THROTTLED_SECONDS] = {"container_cpu_cfs_throttled_seconds_total",
                                 "Total time duration the container has been throttled.", COUNTER},
    [M_MEM_USAGE] = {"container_memory_usage_bytes",
                     "Current memory usage in bytes, including all memory regardless of when it was accessed", GAUGE},
    [M_MEM_WORKING_SET] = {"container_memory_working_set_bytes", "Current working set in bytes.", GAUGE},
    [M_MEM_RSS] = {"container_memory_rss", "Size of RSS in bytes.", GAUGE},
    [M_MEM_CACHE] = {"container_memory_cache", "Number of bytes of page cache memory.", GAUGE},
    [M_MEM_MAPPED_FILE] = {"container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE},
    [M_MEM_SWAP] = {"container_memory_swap", "Container swap usage in bytes.", GAUGE},
    [M_MEM_MAX_USAGE] = {"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", GAUGE},
    [M_MEM_FAILCNT] = {"container_memory_failcnt", "Number of memory usage hits limits", COUNTER},
    [M_MEM_FAILURES] = {"container_memory_failures_total",
                        "Cumulative count of memory allocation failures.",
                        COUNTER,
                        {"failure_type", "scope"}},
    [M_OOM_EVENTS] = {"container_oom_events_total", "Count of out of memory events observed for the container",
                      COUNTER},
    [M_SPEC_MEM_LIMIT] = {"container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE},
    [M_SPEC_SWAP_LIMIT] = {"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", GAUGE},
    [M_SPEC_CPU_PERIOD] = {"container_spec_cpu_period", "CPU period of the container.", GAUGE},
    [M_SPEC_CPU_QUOTA] = {"container_spec_cpu_quota", "CPU quota of the container.", GAUGE},
    [M_SPEC_CPU_SHARES] = {"container_spec_cpu_shares", "CPU share of the container.", GAUGE},
    [M_PROCESSES] = {"container_processes", "Number of processes running inside the container.", GAUGE},
    [M_THREADS_MAX] = {"container_threads_max",
                       "Maximum number of threads allowed inside the container, infinity if value is zero", GAUGE},
    [M_FS_USAGE] = {"container_fs_usage_bytes",
                    "Number of bytes that are consumed by the container on this filesystem.", GAUGE},
    [M_NET_RX_BYTES] = {"container_network_receive_bytes_total",
                        "Cumulative count of bytes received",
                        COUNTER,
                        {"interface"}},
    [M_NET_RX_PACKETS] = {"container_network_receive_packets_total",
                          "Cumulative count of packets received",
                          COUNTER,
                          {"interface"}},
    [M_NET_RX_DROPPED] = {"container_network_receive_packets_dropped_total",
                          "Cumulative count of packets dropped while receiving",
                          COUNTER,
                          {"interface"}},
    [M_NET_RX_ERRORS] = {"container_network_receive_errors_total",
                         "Cumulative count of errors encountered while receiving",
                         COUNTER,
                         {"interface"}},
    [M_NET_TX_BYTES] = {"container_network_transmit_bytes_total",
                        "Cumulative count of bytes transmitted",
                        COUNTER,
                        {"interface"}},
    [M_NET_TX_PACKETS] = {"container_network_transmit_packets_total",
                          "Cumulative count of packets transmitted",
                          COUNTER,
                          {"interface"}},
    [M_NET_TX_DROPPED] = {"container_network_transmit_packets_dropped_total",
                          "Cumulative count of packets dropped while transmitting",
                          COUNTER,
                          {"interface"}},
    [M_NET_TX_ERRORS] = {"container_network_transmit_errors_total",
                         "Cumulative count of errors encountered while transmitting",
                         COUNTER,
                         {"interface"}},
    [M_LAST_SEEN] = {"container_last_seen", "Last time a container was seen by the exporter", GAUGE},
    [M_START_TIME] = {"container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
                      GAUGE},
};

static size_t n_extra(enum metric id)
{
    return (descs[id].extra[0] != NULL) + (descs[id].extra[1] != NULL);
}

void cri_list_metric_descriptors(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    static const char *const base[N_BASE] = {BASE_LABELS};
    Runtime__V1__MetricDescriptor d[M_COUNT];
    Runtime__V1__MetricDescriptor *ptrs[M_COUNT];
    char *keys[M_COUNT][MAX_LABELS];
    for (size_t i = 0; i < M_COUNT; i++) {
        d[i] = (Runtime__V1__MetricDescriptor)RUNTIME__V1__METRIC_DESCRIPTOR__INIT;
        d[i].name = (char *)descs[i].name;
        d[i].help = (char *)descs[i].help;
        for (size_t k = 0; k < N_BASE; k++)
            keys[i][k] = (char *)base[k];
        for (size_t k = 0; k < n_extra(i); k++)
            keys[i][N_BASE + k] = (char *)descs[i].extra[k];
        d[i].n_label_keys = N_BASE + n_extra(i);
        d[i].label_keys = keys[i];
        ptrs[i] = &d[i];
    }
    Runtime__V1__ListMetricDescriptorsResponse resp = RUNTIME__V1__LIST_METRIC_DESCRIPTORS_RESPONSE__INIT;
    resp.n_descriptors = M_COUNT;
    resp.descriptors = ptrs;
    grpc_call_finish(call, &resp.base, NULL);
}

/* --- values ------------------------------------------------------------------------ */

struct item {
    Runtime__V1__Metric m;
    Runtime__V1__UInt64Value v;
    char *labels[MAX_LABELS];
};

/* Every metric of a response, in one growing array; the pointers the
 * messages need are set once it stops moving (metrics_link). */
struct metrics_buf {
    struct item *items;
    size_t n, cap;
    bool oom;
};

static void emit(struct metrics_buf *mb, char *const base[N_BASE], enum metric id, const char *x1, const char *x2,
                 uint64_t value, int64_t timestamp)
{
    if (mb->oom)
        return;
    if (mb->n == mb->cap) {
        size_t ncap = mb->cap ? mb->cap * 2 : 256;
        struct item *n = realloc(mb->items, ncap * sizeof(*n));
        if (!n) {
            mb->oom = true;
            return;
        }
        mb->items = n;
        mb->cap = ncap;
    }
    struct item *it = &mb->items[mb->n++];
    memset(it, 0, sizeof(*it));
    it->m = (Runtime__V1__Metric)RUNTIME__V1__METRIC__INIT;
    it->m.name = (char *)descs[id].name;
    it->m.metric_type = descs[id].type;
    /* 0: a live value; a cached one carries when it was measured */
    it->m.timestamp = timestamp;
    it->v = (Runtime__V1__UInt64Value)RUNTIME__V1__UINT64_VALUE__INIT;
    it->v.value = value;
    memcpy(it->labels, base, N_BASE * sizeof(char *));
    const char *extra[2] = {x1, x2};
    for (size_t k = 0; k < n_extra(id); k++)
        it->labels[N_BASE + k] = (char *)(extra[k] ? extra[k] : "");
    it->m.n_label_values = N_BASE + n_extra(id);
}

static void metrics_link(struct metrics_buf *mb, Runtime__V1__Metric **ptrs)
{
    for (size_t i = 0; i < mb->n; i++) {
        mb->items[i].m.value = &mb->items[i].v;
        mb->items[i].m.label_values = mb->items[i].labels;
        ptrs[i] = &mb->items[i].m;
    }
}

#define E(id, v)          emit(mb, base, id, NULL, NULL, (v), 0)
#define E1(id, x, v)      emit(mb, base, id, x, NULL, (v), 0)
#define E2(id, x, y, v)   emit(mb, base, id, x, y, (v), 0)
#define UNLIMITED_AS_0(v) ((v) == STATS_UNLIMITED ? 0 : (v))

static void cgroup_metrics(struct metrics_buf *mb, char *const base[N_BASE], const struct stats_cgroup *cg)
{
    if (cg->cpu.valid) {
        E1(M_CPU_USAGE, "total", cg->cpu.usage_ns / NS_PER_S);
        E(M_CPU_USER, cg->cpu.user_ns / NS_PER_S);
        E(M_CPU_SYSTEM, cg->cpu.system_ns / NS_PER_S);
        if (cg->cpu.has_throttling) {
            E(M_CPU_PERIODS, cg->cpu.periods);
            E(M_CPU_THROTTLED_PERIODS, cg->cpu.throttled_periods);
            E(M_CPU_THROTTLED_SECONDS, cg->cpu.throttled_ns / NS_PER_S);
        }
    }
    const struct stats_memory *m = &cg->memory;
    if (m->valid) {
        E(M_MEM_USAGE, m->usage);
        E(M_MEM_WORKING_SET, m->working_set);
        E(M_MEM_RSS, m->rss);
        E(M_MEM_CACHE, m->cache);
        E(M_MEM_MAPPED_FILE, m->mapped_file);
        if (m->has_swap) {
            E(M_MEM_SWAP, m->swap_usage);
            E(M_SPEC_SWAP_LIMIT, UNLIMITED_AS_0(m->swap_limit));
        }
        if (m->has_max_usage)
            E(M_MEM_MAX_USAGE, m->max_usage);
        if (m->has_failcnt)
            E(M_MEM_FAILCNT, m->failcnt);
        E2(M_MEM_FAILURES, "pgfault", "container", m->own_page_faults);
        E2(M_MEM_FAILURES, "pgmajfault", "container", m->own_major_page_faults);
        E2(M_MEM_FAILURES, "pgfault", "hierarchy", m->page_faults);
        E2(M_MEM_FAILURES, "pgmajfault", "hierarchy", m->major_page_faults);
        if (m->has_oom)
            E(M_OOM_EVENTS, m->oom_kills);
        E(M_SPEC_MEM_LIMIT, UNLIMITED_AS_0(m->limit));
    }
    if (cg->spec.has_period)
        E(M_SPEC_CPU_PERIOD, cg->spec.cpu_period_us);
    if (cg->spec.has_quota)
        E(M_SPEC_CPU_QUOTA, cg->spec.cpu_quota_us);
    if (cg->spec.has_shares)
        E(M_SPEC_CPU_SHARES, cg->spec.cpu_shares);
    if (cg->pids.valid) {
        E(M_PROCESSES, cg->pids.current);
        E(M_THREADS_MAX, UNLIMITED_AS_0(cg->pids.limit));
    }
}

static void net_metrics(struct metrics_buf *mb, char *const base[N_BASE], const struct stats_net *net)
{
    for (size_t i = 0; net && i < net->n; i++) {
        const struct stats_iface *f = &net->ifaces[i];
        E1(M_NET_RX_BYTES, f->name, f->rx_bytes);
        E1(M_NET_RX_PACKETS, f->name, f->rx_packets);
        E1(M_NET_RX_DROPPED, f->name, f->rx_dropped);
        E1(M_NET_RX_ERRORS, f->name, f->rx_errors);
        E1(M_NET_TX_BYTES, f->name, f->tx_bytes);
        E1(M_NET_TX_PACKETS, f->name, f->tx_packets);
        E1(M_NET_TX_DROPPED, f->name, f->tx_dropped);
        E1(M_NET_TX_ERRORS, f->name, f->tx_errors);
    }
}

static void sample_metrics(struct metrics_buf *mb, char *const base[N_BASE], const struct stats_sample *s,
                           int64_t started_ns)
{
    if (s->cg_ok)
        cgroup_metrics(mb, base, &s->cg);
    if (s->has_fs)
        emit(mb, base, M_FS_USAGE, NULL, NULL, s->fs.bytes, s->fs_timestamp_ns);
    net_metrics(mb, base, s->net);
    E(M_LAST_SEEN, (uint64_t)s->timestamp_ns / NS_PER_S);
    if (started_ns > 0)
        E(M_START_TIME, (uint64_t)started_ns / NS_PER_S);
}

/* One pod: [first, first + count) of the items are its own, then each
 * container's range. */
struct pod_range {
    char *id;
    size_t first, count;
    size_t first_ctr, n_ctr; /* into ctr_ranges */
};
struct ctr_range {
    char *id;
    size_t first, count;
};

static const char *image_of(const struct container *c)
{
    const Runtime__V1__ContainerConfig *cfg = c->config;
    return cfg->image && cfg->image->image && *cfg->image->image ? cfg->image->image : c->image_ref;
}

static void send_metrics(struct grpc_call *call, bool streaming, struct stats_batch *b)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct metrics_buf mb = {0};
    _cleanup_free_ struct pod_range *pods = calloc(b->n ? b->n : 1, sizeof(*pods));
    _cleanup_free_ struct ctr_range *ctrs = calloc(b->n ? b->n : 1, sizeof(*ctrs));
    size_t np = 0, nc = 0;
    struct pod *p = NULL;
    for (size_t i = 0; pods && ctrs && i < b->n; i++) {
        const struct stats_sample *s = &b->s[i];
        if (s->is_pod) {
            p = pods_find(d->pods, s->id);
            if (p && strcmp(p->id, s->id) != 0)
                p = NULL;
            if (!p)
                continue;
            char *base[N_BASE] = {"", p->cgroup_path ? p->cgroup_path : "", "", "", p->ns, p->name};
            pods[np] = (struct pod_range){.id = p->id, .first = mb.n, .first_ctr = nc};
            sample_metrics(&mb, base, s, p->created_at);
            pods[np].count = mb.n - pods[np].first;
            np++;
            continue;
        }
        struct container *c = p ? containers_find(d->containers, s->id) : NULL;
        if (!c || strcmp(c->id, s->id) != 0)
            continue;
        char *base[N_BASE] = {c->name, c->cgroup_path ? c->cgroup_path : "", (char *)image_of(c), c->id, p->ns,
                              p->name};
        ctrs[nc] = (struct ctr_range){.id = c->id, .first = mb.n};
        sample_metrics(&mb, base, s, c->started_at);
        ctrs[nc].count = mb.n - ctrs[nc].first;
        nc++;
        pods[np - 1].n_ctr++;
    }
    _cleanup_free_ Runtime__V1__Metric **mptrs = calloc(mb.n ? mb.n : 1, sizeof(*mptrs));
    _cleanup_free_ Runtime__V1__PodSandboxMetrics *pm = calloc(np ? np : 1, sizeof(*pm));
    _cleanup_free_ Runtime__V1__PodSandboxMetrics **pptrs = calloc(np ? np : 1, sizeof(*pptrs));
    _cleanup_free_ Runtime__V1__ContainerMetrics *cm = calloc(nc ? nc : 1, sizeof(*cm));
    _cleanup_free_ Runtime__V1__ContainerMetrics **cptrs = calloc(nc ? nc : 1, sizeof(*cptrs));
    if (!pods || !ctrs || mb.oom || !mptrs || !pm || !pptrs || !cm || !cptrs) {
        free(mb.items);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "%s: out of memory",
                       streaming ? "StreamPodSandboxMetrics" : "ListPodSandboxMetrics");
        return;
    }
    metrics_link(&mb, mptrs);
    for (size_t i = 0; i < nc; i++) {
        cm[i] = (Runtime__V1__ContainerMetrics)RUNTIME__V1__CONTAINER_METRICS__INIT;
        cm[i].container_id = ctrs[i].id;
        cm[i].n_metrics = ctrs[i].count;
        cm[i].metrics = mptrs + ctrs[i].first;
        cptrs[i] = &cm[i];
    }
    for (size_t i = 0; i < np; i++) {
        pm[i] = (Runtime__V1__PodSandboxMetrics)RUNTIME__V1__POD_SANDBOX_METRICS__INIT;
        pm[i].pod_sandbox_id = pods[i].id;
        pm[i].n_metrics = pods[i].count;
        pm[i].metrics = mptrs + pods[i].first;
        pm[i].n_container_metrics = pods[i].n_ctr;
        pm[i].container_metrics = cptrs + pods[i].first_ctr;
        pptrs[i] = &pm[i];
    }
    if (!streaming) {
        Runtime__V1__ListPodSandboxMetricsResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_METRICS_RESPONSE__INIT;
        resp.n_pod_metrics = np;
        resp.pod_metrics = pptrs;
        grpc_call_finish(call, &resp.base, NULL);
    } else {
        for (size_t off = 0; off < np; off += STREAM_BATCH) {
            Runtime__V1__StreamPodSandboxMetricsResponse resp = RUNTIME__V1__STREAM_POD_SANDBOX_METRICS_RESPONSE__INIT;
            resp.n_pod_sandbox_metrics = np - off < STREAM_BATCH ? np - off : STREAM_BATCH;
            resp.pod_sandbox_metrics = pptrs + off;
            if (grpc_call_send(call, &resp.base) < 0)
                break;
        }
        grpc_call_finish(call, NULL, NULL);
    }
    free(mb.items);
}

struct metrics_call {
    struct grpc_call *call;
    bool streaming;
};

static void collected(void *data, struct stats_batch *b)
{
    struct metrics_call *x = data;
    /* Nobody to answer, and during shutdown the daemon's lists may be gone
     * already: touch nothing. */
    if (grpc_call_is_cancelled(x->call))
        grpc_call_finish(x->call, NULL, NULL);
    else
        send_metrics(x->call, x->streaming, b);
    stats_batch_free(b);
    free(x);
}

/* Ready pods and their running containers: metrics describe what uses
 * resources now, as cAdvisor's do. */
static void pod_metrics(struct grpc_call *call, bool streaming)
{
    const char *rpc = streaming ? "StreamPodSandboxMetrics" : "ListPodSandboxMetrics";
    struct edgecri *d = grpc_call_userdata(call);
    struct stats_collector *sc = cri_stats_collector(call, rpc);
    if (!sc)
        return;
    struct stats_batch *b = stats_batch_new(STATS_READ_FULL);
    struct metrics_call *x = calloc(1, sizeof(*x));
    bool ok = b && x;
    struct list_node *pos, *tmp, *head = pods_list(d->pods);
    list_for_each_safe(pos, tmp, head)
    {
        struct pod *p = list_entry(pos, struct pod, link);
        if (!ok)
            break;
        if (p->state != POD_READY || p->creating)
            continue;
        ok = stats_batch_add_pod(sc, b, p) != NULL;
        struct list_node *cpos, *ctmp, *chead = containers_list(d->containers);
        list_for_each_safe(cpos, ctmp, chead)
        {
            struct container *c = list_entry(cpos, struct container, link);
            if (ok && c->state == CONTAINER_RUNNING && strcmp(c->pod_id, p->id) == 0)
                ok = stats_batch_add_container(sc, b, c) != NULL;
        }
    }
    int r = 0;
    if (ok) {
        x->call = call;
        x->streaming = streaming;
        r = stats_collect(sc, b, collected, x);
    }
    if (!ok || r < 0) {
        free(x);
        stats_batch_free(b);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "%s: %s", rpc, ok ? strerror(-r) : "out of memory");
    }
}

void cri_list_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    pod_metrics(call, false);
}

void cri_stream_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    pod_metrics(call, true);
}
