/* The stats RPCs: ContainerStats, ListContainerStats, StreamContainerStats,
 * PodSandboxStats, ListPodSandboxStats and StreamPodSandboxStats, over
 * src/runtime/stats_collector (which reads in the thread pool and keeps
 * what needs an earlier sample). Here: filters, and turning samples into
 * the CRI's messages the way kubelet reads them (a missing group means
 * "unknown", never zero). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "runtime/stats_collector.h"
#include "util/cleanup.h"
#include "util/ids.h"
#include "util/log.h"

#define STREAM_BATCH 100

/* The daemon's collector, made on first use: nothing is set up for stats
 * until someone asks. Never freed: a read may be in the pool at exit. */
static struct stats_collector *collector;

struct stats_collector *cri_stats_collector(struct grpc_call *call, const char *rpc)
{
    if (collector)
        return collector;
    struct edgecri *d = grpc_call_userdata(call);
    _cleanup_err_ err_t err = ERR_INIT;
    collector = stats_collector_new((enum cgroup_driver_kind)d->config.cgroup_driver, d->containers, d->pods,
                                    d->config.root_dir, &err);
    if (!collector)
        grpc_call_fail(call, ERR_UNAVAILABLE, "%s: %s", rpc, err.msg ? err.msg : "cannot read stats");
    return collector;
}

/* --- filters ---------------------------------------------------------------- */

static bool container_labels_match(const struct container *c, size_t n,
                                   Runtime__V1__ContainerStatsFilter__LabelSelectorEntry **sel)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < c->config->n_labels && !found; j++)
            found = strcmp(c->config->labels[j]->key, sel[i]->key) == 0 &&
                    strcmp(c->config->labels[j]->value, sel[i]->value) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* Ids match exactly or as a prefix, as ListContainers' filter does. */
static bool prefix_match(const char *id, const char *want)
{
    return !want || !*want || strncmp(id, want, strlen(want)) == 0;
}

static bool container_match(const struct container *c, const Runtime__V1__ContainerStatsFilter *f)
{
    return !f || (prefix_match(c->id, f->id) && prefix_match(c->pod_id, f->pod_sandbox_id) &&
                  container_labels_match(c, f->n_label_selector, f->label_selector));
}

static bool pod_match(const struct pod *p, const Runtime__V1__PodSandboxStatsFilter *f)
{
    if (!f)
        return true;
    if (!prefix_match(p->id, f->id))
        return false;
    for (size_t i = 0; i < f->n_label_selector; i++) {
        const char *v = json_string_value(json_object_get(p->labels, f->label_selector[i]->key));
        if (!v || strcmp(v, f->label_selector[i]->value) != 0)
            return false;
    }
    return true;
}

/* --- messages ------------------------------------------------------------------- */

struct psi_msg {
    Runtime__V1__PsiStats st;
    Runtime__V1__PsiData some, full;
};

/* CPU, memory, swap and I/O of one sample. */
struct usage_msg {
    Runtime__V1__CpuUsage cpu;
    Runtime__V1__MemoryUsage mem;
    Runtime__V1__SwapUsage swap;
    Runtime__V1__IoUsage io;
    struct psi_msg cpu_psi, mem_psi, io_psi;
    Runtime__V1__UInt64Value u[12];
    size_t nu;
    bool has_cpu, has_mem, has_swap, has_io;
};

static Runtime__V1__UInt64Value *u64(Runtime__V1__UInt64Value *slots, size_t *n, size_t cap, uint64_t v)
{
    if (*n >= cap)
        abort(); /* the slot counts are fixed by the code below */
    Runtime__V1__UInt64Value *u = &slots[(*n)++];
    *u = (Runtime__V1__UInt64Value)RUNTIME__V1__UINT64_VALUE__INIT;
    u->value = v;
    return u;
}
#define U64(m, v) u64((m)->u, &(m)->nu, ARRAY_SIZE((m)->u), (v))

static Runtime__V1__PsiStats *psi_msg(struct psi_msg *m, const struct stats_psi *p)
{
    m->st = (Runtime__V1__PsiStats)RUNTIME__V1__PSI_STATS__INIT;
    const struct stats_psi_line *lines[] = {&p->some, &p->full};
    Runtime__V1__PsiData *out[] = {&m->some, &m->full};
    for (size_t i = 0; i < 2; i++) {
        if (!lines[i]->set)
            continue;
        *out[i] = (Runtime__V1__PsiData)RUNTIME__V1__PSI_DATA__INIT;
        /* the file says microseconds; the CRI wants nanoseconds */
        out[i]->total = lines[i]->total_us > UINT64_MAX / 1000 ? UINT64_MAX : lines[i]->total_us * 1000;
        out[i]->avg10 = lines[i]->avg10;
        out[i]->avg60 = lines[i]->avg60;
        out[i]->avg300 = lines[i]->avg300;
    }
    m->st.some = p->some.set ? &m->some : NULL;
    m->st.full = p->full.set ? &m->full : NULL;
    return &m->st;
}

static uint64_t sub_clamped(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static void usage_fill(struct usage_msg *m, const struct stats_sample *s)
{
    memset(m, 0, sizeof(*m));
    if (!s->cg_ok)
        return;
    const struct stats_cgroup *cg = &s->cg;
    if (cg->cpu.valid) {
        m->has_cpu = true;
        m->cpu = (Runtime__V1__CpuUsage)RUNTIME__V1__CPU_USAGE__INIT;
        m->cpu.timestamp = s->timestamp_ns;
        m->cpu.usage_core_nano_seconds = U64(m, cg->cpu.usage_ns);
        /* Unset without two samples: kubelet then computes its own. */
        if (s->has_nano_cores)
            m->cpu.usage_nano_cores = U64(m, s->nano_cores);
        if (cg->cpu.has_psi)
            m->cpu.psi = psi_msg(&m->cpu_psi, &cg->cpu.psi);
    }
    if (cg->memory.valid) {
        const struct stats_memory *mem = &cg->memory;
        m->has_mem = true;
        m->mem = (Runtime__V1__MemoryUsage)RUNTIME__V1__MEMORY_USAGE__INIT;
        m->mem.timestamp = s->timestamp_ns;
        m->mem.working_set_bytes = U64(m, mem->working_set);
        /* Like cAdvisor: only a limit gives an available amount. */
        if (mem->limit != STATS_UNLIMITED)
            m->mem.available_bytes = U64(m, sub_clamped(mem->limit, mem->working_set));
        m->mem.usage_bytes = U64(m, mem->usage);
        m->mem.rss_bytes = U64(m, mem->rss);
        m->mem.page_faults = U64(m, mem->page_faults);
        m->mem.major_page_faults = U64(m, mem->major_page_faults);
        if (mem->has_psi)
            m->mem.psi = psi_msg(&m->mem_psi, &mem->psi);
        if (mem->has_swap) {
            m->has_swap = true;
            m->swap = (Runtime__V1__SwapUsage)RUNTIME__V1__SWAP_USAGE__INIT;
            m->swap.timestamp = s->timestamp_ns;
            m->swap.swap_usage_bytes = U64(m, mem->swap_usage);
            if (mem->swap_limit != STATS_UNLIMITED)
                m->swap.swap_available_bytes = U64(m, sub_clamped(mem->swap_limit, mem->swap_usage));
        }
    }
    if (cg->has_io_psi) {
        m->has_io = true;
        m->io = (Runtime__V1__IoUsage)RUNTIME__V1__IO_USAGE__INIT;
        m->io.timestamp = s->timestamp_ns;
        m->io.psi = psi_msg(&m->io_psi, &cg->io_psi);
    }
}

struct ctr_msg {
    Runtime__V1__ContainerStats st;
    Runtime__V1__ContainerAttributes attr;
    Runtime__V1__ContainerMetadata md;
    Runtime__V1__FilesystemUsage fs;
    Runtime__V1__FilesystemIdentifier fs_id;
    Runtime__V1__UInt64Value u[2];
    size_t nu;
    struct usage_msg usage;
};

/* Labels and annotations come from the ContainerConfig kept whole: its map
 * entries have the same fields and numbers, so they encode identically. */
static void ctr_msg_fill(struct ctr_msg *m, const struct container *c, const struct stats_sample *s,
                         const char *mountpoint)
{
    memset(m, 0, sizeof(*m));
    m->md = (Runtime__V1__ContainerMetadata)RUNTIME__V1__CONTAINER_METADATA__INIT;
    m->md.name = c->name;
    m->md.attempt = c->attempt;
    m->attr = (Runtime__V1__ContainerAttributes)RUNTIME__V1__CONTAINER_ATTRIBUTES__INIT;
    m->attr.id = (char *)c->id;
    m->attr.metadata = &m->md;
    m->attr.n_labels = c->config->n_labels;
    m->attr.labels = (Runtime__V1__ContainerAttributes__LabelsEntry **)c->config->labels;
    m->attr.n_annotations = c->config->n_annotations;
    m->attr.annotations = (Runtime__V1__ContainerAttributes__AnnotationsEntry **)c->config->annotations;
    m->st = (Runtime__V1__ContainerStats)RUNTIME__V1__CONTAINER_STATS__INIT;
    m->st.attributes = &m->attr;
    usage_fill(&m->usage, s);
    m->st.cpu = m->usage.has_cpu ? &m->usage.cpu : NULL;
    m->st.memory = m->usage.has_mem ? &m->usage.mem : NULL;
    m->st.swap = m->usage.has_swap ? &m->usage.swap : NULL;
    m->st.io = m->usage.has_io ? &m->usage.io : NULL;
    if (s->has_fs) {
        m->fs_id = (Runtime__V1__FilesystemIdentifier)RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
        m->fs_id.mountpoint = (char *)mountpoint;
        m->fs = (Runtime__V1__FilesystemUsage)RUNTIME__V1__FILESYSTEM_USAGE__INIT;
        m->fs.timestamp = s->fs_timestamp_ns;
        m->fs.fs_id = &m->fs_id;
        m->fs.used_bytes = U64(m, s->fs.bytes);
        m->fs.inodes_used = U64(m, s->fs.inodes);
        m->st.writable_layer = &m->fs;
    }
}

/* The generated entry types of every string map share one layout. */
struct map_msg {
    Runtime__V1__PodSandboxAttributes__LabelsEntry *entries;
    Runtime__V1__PodSandboxAttributes__LabelsEntry **ptrs;
    size_t n;
};

static bool map_fill(struct map_msg *m, json_t *obj, const ProtobufCMessageDescriptor *desc)
{
    size_t n = json_object_size(obj);
    m->n = 0;
    m->entries = calloc(n ? n : 1, sizeof(*m->entries));
    m->ptrs = calloc(n ? n : 1, sizeof(*m->ptrs));
    if (!m->entries || !m->ptrs)
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v) || m->n >= n)
            continue;
        Runtime__V1__PodSandboxAttributes__LabelsEntry *e = &m->entries[m->n];
        *e = (Runtime__V1__PodSandboxAttributes__LabelsEntry)RUNTIME__V1__POD_SANDBOX_ATTRIBUTES__LABELS_ENTRY__INIT;
        e->base.descriptor = desc;
        e->key = (char *)k;
        e->value = (char *)json_string_value(v);
        m->ptrs[m->n++] = e;
    }
    return true;
}

static void map_free(struct map_msg *m)
{
    free(m->entries);
    free(m->ptrs);
}

struct pod_msg {
    Runtime__V1__PodSandboxStats st;
    Runtime__V1__PodSandboxAttributes attr;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxStats lx;
    Runtime__V1__ProcessUsage proc;
    Runtime__V1__NetworkUsage net;
    Runtime__V1__NetworkInterfaceUsage *ifaces;
    Runtime__V1__NetworkInterfaceUsage **if_ptrs;
    Runtime__V1__UInt64Value *if_u;
    Runtime__V1__UInt64Value u[1];
    size_t nu;
    struct map_msg labels, annotations;
    struct usage_msg usage;
    Runtime__V1__ContainerStats **containers;
};

static void iface_fill(Runtime__V1__NetworkInterfaceUsage *m, Runtime__V1__UInt64Value *u, const struct stats_iface *f)
{
    *m = (Runtime__V1__NetworkInterfaceUsage)RUNTIME__V1__NETWORK_INTERFACE_USAGE__INIT;
    m->name = (char *)f->name;
    const uint64_t v[4] = {f->rx_bytes, f->rx_errors, f->tx_bytes, f->tx_errors};
    for (size_t i = 0; i < 4; i++) {
        u[i] = (Runtime__V1__UInt64Value)RUNTIME__V1__UINT64_VALUE__INIT;
        u[i].value = v[i];
    }
    m->rx_bytes = &u[0];
    m->rx_errors = &u[1];
    m->tx_bytes = &u[2];
    m->tx_errors = &u[3];
}

/* The pod's interfaces: eth0 (what CNI plugins name the pod's side, and
 * what kubelet expects as the default) or else the first, then the rest. */
static bool net_fill(struct pod_msg *m, const struct stats_sample *s)
{
    const struct stats_net *net = s->net;
    if (!net || net->n == 0)
        return true;
    m->ifaces = calloc(net->n, sizeof(*m->ifaces));
    m->if_ptrs = calloc(net->n, sizeof(*m->if_ptrs));
    m->if_u = calloc(net->n * 4, sizeof(*m->if_u));
    if (!m->ifaces || !m->if_ptrs || !m->if_u)
        return false;
    size_t def = 0;
    for (size_t i = 0; i < net->n; i++)
        if (strcmp(net->ifaces[i].name, "eth0") == 0)
            def = i;
    m->net = (Runtime__V1__NetworkUsage)RUNTIME__V1__NETWORK_USAGE__INIT;
    m->net.timestamp = s->timestamp_ns;
    for (size_t i = 0, k = 0; i < net->n; i++) {
        iface_fill(&m->ifaces[i], &m->if_u[i * 4], &net->ifaces[i]);
        if (i == def)
            m->net.default_interface = &m->ifaces[i];
        else
            m->if_ptrs[k++] = &m->ifaces[i];
    }
    m->net.n_interfaces = net->n - 1;
    m->net.interfaces = m->if_ptrs;
    m->lx.network = &m->net;
    return true;
}

static bool pod_msg_fill(struct pod_msg *m, const struct pod *p, const struct stats_sample *s)
{
    memset(m, 0, sizeof(*m));
    m->md = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    m->md.name = p->name;
    m->md.uid = p->uid;
    m->md.namespace_ = p->ns;
    m->md.attempt = p->attempt;
    m->attr = (Runtime__V1__PodSandboxAttributes)RUNTIME__V1__POD_SANDBOX_ATTRIBUTES__INIT;
    m->attr.id = (char *)p->id;
    m->attr.metadata = &m->md;
    if (!map_fill(&m->labels, p->labels, &runtime__v1__pod_sandbox_attributes__labels_entry__descriptor) ||
        !map_fill(&m->annotations, p->annotations, &runtime__v1__pod_sandbox_attributes__annotations_entry__descriptor))
        return false;
    m->attr.n_labels = m->labels.n;
    m->attr.labels = m->labels.ptrs;
    m->attr.n_annotations = m->annotations.n;
    m->attr.annotations = (Runtime__V1__PodSandboxAttributes__AnnotationsEntry **)m->annotations.ptrs;
    m->lx = (Runtime__V1__LinuxPodSandboxStats)RUNTIME__V1__LINUX_POD_SANDBOX_STATS__INIT;
    usage_fill(&m->usage, s);
    m->lx.cpu = m->usage.has_cpu ? &m->usage.cpu : NULL;
    m->lx.memory = m->usage.has_mem ? &m->usage.mem : NULL;
    m->lx.io = m->usage.has_io ? &m->usage.io : NULL;
    if (s->cg_ok && s->cg.pids.valid) {
        m->proc = (Runtime__V1__ProcessUsage)RUNTIME__V1__PROCESS_USAGE__INIT;
        m->proc.timestamp = s->timestamp_ns;
        m->proc.process_count = U64(m, s->cg.pids.current);
        m->lx.process = &m->proc;
    }
    if (!net_fill(m, s))
        return false;
    m->st = (Runtime__V1__PodSandboxStats)RUNTIME__V1__POD_SANDBOX_STATS__INIT;
    m->st.attributes = &m->attr;
    m->st.linux = &m->lx;
    return true;
}

static void pod_msg_free(struct pod_msg *m)
{
    map_free(&m->labels);
    map_free(&m->annotations);
    free(m->ifaces);
    free(m->if_ptrs);
    free(m->if_u);
    free(m->containers);
}

/* --- calls ------------------------------------------------------------------------ */

enum stats_rpc {
    RPC_CONTAINER,
    RPC_LIST_CONTAINERS,
    RPC_STREAM_CONTAINERS,
    RPC_POD,
    RPC_LIST_PODS,
    RPC_STREAM_PODS,
};

static const char *const rpc_names[] = {
    [RPC_CONTAINER] = "ContainerStats",
    [RPC_LIST_CONTAINERS] = "ListContainerStats",
    [RPC_STREAM_CONTAINERS] = "StreamContainerStats",
    [RPC_POD] = "PodSandboxStats",
    [RPC_LIST_PODS] = "ListPodSandboxStats",
    [RPC_STREAM_PODS] = "StreamPodSandboxStats",
};

struct stats_call {
    struct grpc_call *call;
    enum stats_rpc rpc;
};

static void fail_oom(struct grpc_call *call, enum stats_rpc rpc)
{
    grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "%s: out of memory", rpc_names[rpc]);
}

static struct container *live_container(struct grpc_call *call, const char *id)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct container *c = containers_find(d->containers, id);
    return c && strcmp(c->id, id) == 0 ? c : NULL;
}

static struct pod *live_pod(struct grpc_call *call, const char *id)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct pod *p = pods_find(d->pods, id);
    return p && strcmp(p->id, id) == 0 ? p : NULL;
}

/* Container messages for the container samples of `b` whose container still
 * exists (one may be removed while the pool reads). */
static struct ctr_msg *ctr_msgs(struct grpc_call *call, struct stats_batch *b, Runtime__V1__ContainerStats ***ptrs,
                                size_t *n)
{
    const char *mp = stats_collector_mountpoint(collector);
    struct ctr_msg *msgs = calloc(b->n ? b->n : 1, sizeof(*msgs));
    *ptrs = calloc(b->n ? b->n : 1, sizeof(**ptrs));
    *n = 0;
    if (!msgs || !*ptrs) {
        free(msgs);
        free(*ptrs);
        *ptrs = NULL;
        return NULL;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct container *c = b->s[i].is_pod ? NULL : live_container(call, b->s[i].id);
        if (!c)
            continue;
        ctr_msg_fill(&msgs[i], c, &b->s[i], mp);
        (*ptrs)[(*n)++] = &msgs[i].st;
    }
    return msgs;
}

static void send_container_stats(struct stats_call *x, struct stats_batch *b)
{
    Runtime__V1__ContainerStats **ptrs;
    size_t n;
    _cleanup_free_ struct ctr_msg *msgs = ctr_msgs(x->call, b, &ptrs, &n);
    if (!msgs) {
        fail_oom(x->call, x->rpc);
        return;
    }
    if (x->rpc == RPC_CONTAINER) {
        if (n == 0) {
            grpc_call_fail(x->call, ERR_NOT_FOUND, "ContainerStats: container %s was removed", b->s[0].id);
        } else {
            Runtime__V1__ContainerStatsResponse resp = RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
            resp.stats = ptrs[0];
            grpc_call_finish(x->call, &resp.base, NULL);
        }
    } else if (x->rpc == RPC_LIST_CONTAINERS) {
        Runtime__V1__ListContainerStatsResponse resp = RUNTIME__V1__LIST_CONTAINER_STATS_RESPONSE__INIT;
        resp.n_stats = n;
        resp.stats = ptrs;
        grpc_call_finish(x->call, &resp.base, NULL);
    } else {
        for (size_t off = 0; off < n; off += STREAM_BATCH) {
            Runtime__V1__StreamContainerStatsResponse resp = RUNTIME__V1__STREAM_CONTAINER_STATS_RESPONSE__INIT;
            resp.n_container_stats = n - off < STREAM_BATCH ? n - off : STREAM_BATCH;
            resp.container_stats = ptrs + off;
            if (grpc_call_send(x->call, &resp.base) < 0)
                break;
        }
        grpc_call_finish(x->call, NULL, NULL);
    }
    free(ptrs);
}

/* Pod samples are each followed by the samples of their containers. */
static void send_pod_stats(struct stats_call *x, struct stats_batch *b)
{
    Runtime__V1__ContainerStats **cptrs;
    size_t nc;
    _cleanup_free_ struct ctr_msg *cmsgs = ctr_msgs(x->call, b, &cptrs, &nc);
    _cleanup_free_ struct pod_msg *pmsgs = calloc(b->n ? b->n : 1, sizeof(*pmsgs));
    _cleanup_free_ Runtime__V1__PodSandboxStats **pptrs = calloc(b->n ? b->n : 1, sizeof(*pptrs));
    size_t np = 0;
    bool ok = cmsgs && pmsgs && pptrs;
    for (size_t i = 0; ok && i < b->n; i++) {
        struct pod *p = b->s[i].is_pod ? live_pod(x->call, b->s[i].id) : NULL;
        if (!p)
            continue;
        struct pod_msg *m = &pmsgs[np++]; /* counted now: freed even if half filled */
        ok = pod_msg_fill(m, p, &b->s[i]) && (m->containers = calloc(b->n, sizeof(*m->containers)));
        if (!ok)
            break;
        m->lx.containers = m->containers;
        for (size_t j = i + 1; j < b->n && !b->s[j].is_pod; j++)
            if (cmsgs[j].st.attributes) /* still there */
                m->containers[m->lx.n_containers++] = &cmsgs[j].st;
        pptrs[np - 1] = &m->st;
    }
    if (!ok) {
        fail_oom(x->call, x->rpc);
    } else if (x->rpc == RPC_POD) {
        if (np == 0) {
            grpc_call_fail(x->call, ERR_NOT_FOUND, "PodSandboxStats: pod sandbox %s was removed", b->s[0].id);
        } else {
            Runtime__V1__PodSandboxStatsResponse resp = RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
            resp.stats = pptrs[0];
            grpc_call_finish(x->call, &resp.base, NULL);
        }
    } else if (x->rpc == RPC_LIST_PODS) {
        Runtime__V1__ListPodSandboxStatsResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_STATS_RESPONSE__INIT;
        resp.n_stats = np;
        resp.stats = pptrs;
        grpc_call_finish(x->call, &resp.base, NULL);
    } else {
        for (size_t off = 0; off < np; off += STREAM_BATCH) {
            Runtime__V1__StreamPodSandboxStatsResponse resp = RUNTIME__V1__STREAM_POD_SANDBOX_STATS_RESPONSE__INIT;
            resp.n_pod_sandbox_stats = np - off < STREAM_BATCH ? np - off : STREAM_BATCH;
            resp.pod_sandbox_stats = pptrs + off;
            if (grpc_call_send(x->call, &resp.base) < 0)
                break;
        }
        grpc_call_finish(x->call, NULL, NULL);
    }
    for (size_t i = 0; pmsgs && i < np; i++)
        pod_msg_free(&pmsgs[i]);
    free(cptrs);
}

static void collected(void *data, struct stats_batch *b)
{
    struct stats_call *x = data;
    /* Nobody to answer, and during shutdown the daemon's lists may be gone
     * already: touch nothing. */
    if (grpc_call_is_cancelled(x->call))
        grpc_call_finish(x->call, NULL, NULL);
    else if (x->rpc <= RPC_STREAM_CONTAINERS)
        send_container_stats(x, b);
    else
        send_pod_stats(x, b);
    stats_batch_free(b);
    free(x);
}

/* Starts the pool job for a batch; the call is finished either way. */
static void collect(struct grpc_call *call, enum stats_rpc rpc, struct stats_batch *b)
{
    struct stats_collector *sc = collector;
    struct stats_call *x = calloc(1, sizeof(*x));
    if (!x) {
        stats_batch_free(b);
        fail_oom(call, rpc);
        return;
    }
    x->call = call;
    x->rpc = rpc;
    int r = stats_collect(sc, b, collected, x);
    if (r < 0) {
        free(x);
        stats_batch_free(b);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "%s: %s", rpc_names[rpc], strerror(-r));
    }
}

static void container_stats(struct grpc_call *call, enum stats_rpc rpc, const Runtime__V1__ContainerStatsFilter *f)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct stats_collector *sc = cri_stats_collector(call, rpc_names[rpc]);
    if (!sc)
        return;
    struct stats_batch *b = stats_batch_new(0);
    if (!b) {
        fail_oom(call, rpc);
        return;
    }
    struct list_node *pos, *tmp, *head = containers_list(d->containers);
    list_for_each_safe(pos, tmp, head)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (container_match(c, f) && !stats_batch_add_container(sc, b, c)) {
            stats_batch_free(b);
            fail_oom(call, rpc);
            return;
        }
    }
    collect(call, rpc, b);
}

/* A pod and its containers (all of them, as ListContainerStats gives:
 * kubelet drops the terminated ones itself). */
static bool add_pod(struct stats_collector *sc, struct stats_batch *b, struct containers *cs, const struct pod *p)
{
    if (!stats_batch_add_pod(sc, b, p))
        return false;
    struct list_node *pos, *tmp, *head = containers_list(cs);
    list_for_each_safe(pos, tmp, head)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (strcmp(c->pod_id, p->id) == 0 && !stats_batch_add_container(sc, b, c))
            return false;
    }
    return true;
}

/* Lists give the ready pods, as containerd does: a stopped pod has no
 * usage left to show (PodSandboxStats still answers for one). */
static void pod_stats(struct grpc_call *call, enum stats_rpc rpc, const Runtime__V1__PodSandboxStatsFilter *f)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct stats_collector *sc = cri_stats_collector(call, rpc_names[rpc]);
    if (!sc)
        return;
    struct stats_batch *b = stats_batch_new(0);
    if (!b) {
        fail_oom(call, rpc);
        return;
    }
    struct list_node *pos, *tmp, *head = pods_list(d->pods);
    list_for_each_safe(pos, tmp, head)
    {
        struct pod *p = list_entry(pos, struct pod, link);
        if (p->state != POD_READY || p->creating || !pod_match(p, f))
            continue;
        if (!add_pod(sc, b, d->containers, p)) {
            stats_batch_free(b);
            fail_oom(call, rpc);
            return;
        }
    }
    collect(call, rpc, b);
}

void cri_container_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ContainerStatsRequest *req = (const Runtime__V1__ContainerStatsRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);
    if (!req->container_id || !*req->container_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "ContainerStats: container_id is required");
        return;
    }
    struct container *c = containers_find(d->containers, req->container_id);
    if (!c) {
        grpc_call_fail(call, ERR_NOT_FOUND, "ContainerStats: container %s not found", req->container_id);
        return;
    }
    struct stats_collector *sc = cri_stats_collector(call, "ContainerStats");
    if (!sc)
        return;
    struct stats_batch *b = stats_batch_new(0);
    if (!b || !stats_batch_add_container(sc, b, c)) {
        stats_batch_free(b);
        fail_oom(call, RPC_CONTAINER);
        return;
    }
    collect(call, RPC_CONTAINER, b);
}

void cri_list_container_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    container_stats(call, RPC_LIST_CONTAINERS, ((const Runtime__V1__ListContainerStatsRequest *)request)->filter);
}

void cri_stream_container_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    container_stats(call, RPC_STREAM_CONTAINERS, ((const Runtime__V1__StreamContainerStatsRequest *)request)->filter);
}

void cri_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__PodSandboxStatsRequest *req = (const Runtime__V1__PodSandboxStatsRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "PodSandboxStats: pod_sandbox_id is required");
        return;
    }
    struct pod *p = pods_find(d->pods, req->pod_sandbox_id);
    if (!p) {
        grpc_call_fail(call, ERR_NOT_FOUND, "PodSandboxStats: pod sandbox %s not found", req->pod_sandbox_id);
        return;
    }
    struct stats_collector *sc = cri_stats_collector(call, "PodSandboxStats");
    if (!sc)
        return;
    struct stats_batch *b = stats_batch_new(0);
    if (!b || !add_pod(sc, b, d->containers, p)) {
        stats_batch_free(b);
        fail_oom(call, RPC_POD);
        return;
    }
    collect(call, RPC_POD, b);
}

void cri_list_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    pod_stats(call, RPC_LIST_PODS, ((const Runtime__V1__ListPodSandboxStatsRequest *)request)->filter);
}

void cri_stream_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request)
{
    pod_stats(call, RPC_STREAM_PODS, ((const Runtime__V1__StreamPodSandboxStatsRequest *)request)->filter);
}
