#include "runtime/pods.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "api.pb-c.h"
#include "loop/loop.h"
#include "net/cni.h"
#include "runtime/cgroup.h"
#include "runtime/process.h"
#include "runtime/resources.h"
#include "runtime/spawn.h"
#include "util/cleanup.h"
#include "util/ids.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/persist.h"

#define POD_RECORD_MAX (1u << 20)
#define SHM_SIZE       "65536k"
#define NSFS_MAGIC_    0x6e736673
#define RECORD_WAIT_MS 5

struct pod_priv {
    struct persist_file *file;
    struct process_watch *init_watch;
    bool owns_cgroup;   /* edgecri made it (it did not exist before the pod), so it removes it */
    bool network_ready; /* CNI ADD done and not yet DELeted */
    /* Stop and a failed run go on only once the init is reaped: a zombie
     * would outlive the pod, and the next step may free it. */
    void (*init_gone)(void *data);
    void *init_gone_data;
};

struct pods {
    uv_loop_t *loop;
    char *root, *state;
    struct cni *cni;
    struct cgroup_manager *cgroups;
    int self_exe_fd;
    struct list_node pods;
    struct pods_container_hooks hooks;
    int ops_running;
};

static struct pod_priv *priv(struct pod *pod)
{
    return pod->priv;
}

/* --- small helpers -------------------------------------------------------- */

static char *path_join(const char *a, const char *b)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", a, b) < 0)
        return NULL;
    return p;
}

static json_t *map_json(size_t n, void **entries)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        /* every generated map entry is {base, key, value} */
        const Runtime__V1__PodSandboxConfig__LabelsEntry *e = entries[i];
        if (e->key)
            json_object_set_new(o, e->key, json_string(e->value ? e->value : ""));
    }
    return o;
}

static char *strdup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

void pod_free(struct pod *pod)
{
    if (!pod)
        return;
    free(pod->name);
    free(pod->uid);
    free(pod->ns);
    json_decref(pod->labels);
    json_decref(pod->annotations);
    free(pod->runtime_handler);
    free(pod->hostname);
    free(pod->log_directory);
    free(pod->cgroup_path);
    json_decref(pod->config);
    for (size_t i = 0; i < pod->n_ips; i++)
        free(pod->ips[i]);
    free(pod->ips);
    free(pod->dir);
    free(pod->netns);
    free(pod->ipcns);
    free(pod->utsns);
    free(pod->userns);
    free(pod->userns_map);
    free(pod->resolv_conf);
    free(pod->hosts);
    free(pod->hostname_file);
    free(pod->shm);
    if (pod->priv) {
        process_watch_stop(priv(pod)->init_watch);
        persist_file_free(priv(pod)->file);
        free(pod->priv);
    }
    free(pod);
}

/* --- the record ------------------------------------------------------------ */

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static char *pod_serialize(const struct pod *pod)
{
    struct pod_priv *pp = pod->priv;
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:I, s:O, s:O, s:s, s:I, s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:O, s:o, s:b, s:I, "
        "s:I, s:b, s:b}",
        "version", 1, "id", pod->id, "name", pod->name, "uid", pod->uid, "namespace", pod->ns, "attempt",
        (json_int_t)pod->attempt, "labels", pod->labels, "annotations", pod->annotations, "runtimeHandler",
        pod->runtime_handler, "createdAt", (json_int_t)pod->created_at, "state",
        pod->state == POD_READY ? "ready" : "notready", "netMode", (int)pod->net_mode, "pidMode", (int)pod->pid_mode,
        "ipcMode", (int)pod->ipc_mode, "hostname", pod->hostname, "logDirectory", pod->log_directory, "cgroupPath",
        pod->cgroup_path, "config", pod->config ? pod->config : json_null(), "ips", strv_json(pod->ips, pod->n_ips),
        "privileged", pod->privileged, "initPid", (json_int_t)pod->init_pid, "initStartTime",
        (json_int_t)pod->init_start_time, "ownsCgroup", pp && pp->owns_cgroup, "networkReady", pp && pp->network_ready);
    if (o && pod->userns_map)
        json_object_set_new(o, "userns", userns_to_json(pod->userns_map));
    char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

static void saved(void *data, const err_t *err)
{
    struct pod *pod = data;
    if (err)
        log_error("pod %s: saving its record: %s", pod->id, err->msg);
}

/* Records are written atomically in the pool; `done` (may be NULL) once on
 * disk. */
static void pod_save(struct pod *pod, persist_done_fn done, void *data)
{
    _cleanup_free_ char *text = pod_serialize(pod);
    if (!text) {
        if (done) {
            err_t e = ERR_INIT;
            err_sys(&e, ENOMEM, "saving pod %s", pod->id);
            done(data, &e);
            err_clear(&e);
        }
        return;
    }
    persist_file_write(priv(pod)->file, text, strlen(text), done ? done : saved, done ? data : pod);
}

static int set_paths(struct pods *p, struct pod *pod)
{
    pod->dir = NULL;
    if (asprintf(&pod->dir, "%s/pods/%s", p->state, pod->id) < 0)
        return -ENOMEM;
    pod->resolv_conf = path_join(pod->dir, "resolv.conf");
    pod->hosts = path_join(pod->dir, "hosts");
    pod->hostname_file = path_join(pod->dir, "hostname");
    pod->shm = pod->ipc_mode == NS_MODE_POD ? path_join(pod->dir, "shm") : strdup("/dev/shm");
    if (pod->net_mode == NS_MODE_POD)
        pod->netns = path_join(pod->dir, "ns/net");
    if (pod->ipc_mode == NS_MODE_POD)
        pod->ipcns = path_join(pod->dir, "ns/ipc");
    if (pod->net_mode == NS_MODE_POD)
        pod->utsns = path_join(pod->dir, "ns/uts");
    if (pod->userns_map && !(pod->userns = path_join(pod->dir, "ns/user")))
        return -ENOMEM;
    return pod->resolv_conf && pod->hosts && pod->hostname_file && pod->shm ? 0 : -ENOMEM;
}

static struct pod *pod_alloc(struct pods *p, const char *id)
{
    struct pod *pod = calloc(1, sizeof(*pod));
    struct pod_priv *pp = calloc(1, sizeof(*pp));
    _cleanup_free_ char *rec = NULL;
    if (!pod || !pp || asprintf(&rec, "%s/pods/%s/pod.json", p->root, id) < 0 ||
        !(pp->file = persist_file_new(rec, 0600))) {
        free(pod);
        free(pp);
        return NULL;
    }
    pod->priv = pp;
    snprintf(pod->id, sizeof(pod->id), "%s", id);
    list_init(&pod->link);
    return pod;
}

static struct pod *pod_parse(struct pods *p, const char *id, json_t *o)
{
    const char *rid, *name, *uid, *ns, *handler, *state, *hostname, *logdir, *cg;
    json_int_t attempt, created, initpid, initstart;
    int net, pid, ipc, privileged, owns, netready;
    json_t *labels, *annotations, *config, *ips;
    if (json_unpack(o,
                    "{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:s, s:I, s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:o, s:o, s:b, "
                    "s:I, s:I, s:b, s:b}",
                    "id", &rid, "name", &name, "uid", &uid, "namespace", &ns, "attempt", &attempt, "labels", &labels,
                    "annotations", &annotations, "runtimeHandler", &handler, "createdAt", &created, "state", &state,
                    "netMode", &net, "pidMode", &pid, "ipcMode", &ipc, "hostname", &hostname, "logDirectory", &logdir,
                    "cgroupPath", &cg, "config", &config, "ips", &ips, "privileged", &privileged, "initPid", &initpid,
                    "initStartTime", &initstart, "ownsCgroup", &owns, "networkReady", &netready) < 0 ||
        strcmp(rid, id) != 0 || !json_is_object(labels) || !json_is_object(annotations) || !json_is_array(ips))
        return NULL;
    struct pod *pod = pod_alloc(p, id);
    if (!pod)
        return NULL;
    pod->name = strdup(name);
    pod->uid = strdup(uid);
    pod->ns = strdup(ns);
    pod->attempt = (uint32_t)attempt;
    pod->labels = json_incref(labels);
    pod->annotations = json_incref(annotations);
    pod->runtime_handler = strdup(handler);
    pod->created_at = created;
    pod->state = strcmp(state, "ready") == 0 ? POD_READY : POD_NOTREADY;
    pod->net_mode = (enum ns_mode)net;
    pod->pid_mode = (enum ns_mode)pid;
    pod->ipc_mode = (enum ns_mode)ipc;
    pod->hostname = strdup(hostname);
    pod->log_directory = strdup(logdir);
    pod->cgroup_path = strdup(cg);
    pod->config = json_incref(config);
    pod->privileged = privileged;
    pod->init_pid = (pid_t)initpid;
    pod->init_start_time = (uint64_t)initstart;
    priv(pod)->owns_cgroup = owns;
    priv(pod)->network_ready = netready;
    pod->n_ips = json_array_size(ips);
    pod->ips = calloc(pod->n_ips ? pod->n_ips : 1, sizeof(char *));
    for (size_t i = 0; pod->ips && i < pod->n_ips; i++)
        pod->ips[i] = strdup(json_string_value(json_array_get(ips, i)) ?: "");
    const json_t *userns = json_object_get(o, "userns");
    if (userns) {
        err_t e = ERR_INIT;
        if (!(pod->userns_map = malloc(sizeof(*pod->userns_map))) ||
            userns_from_json(userns, pod->userns_map, &e) < 0) {
            log_error("pod %s: record: %s", id, e.msg ? e.msg : "out of memory");
            err_clear(&e);
            pod_free(pod);
            return NULL;
        }
    }
    if (!pod->name || !pod->uid || !pod->ns || !pod->runtime_handler || !pod->hostname || !pod->log_directory ||
        !pod->cgroup_path || !pod->ips || set_paths(p, pod) < 0) {
        pod_free(pod);
        return NULL;
    }
    return pod;
}

/* --- files the containers mount ---------------------------------------------- */

static bool has_newline(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

static int write_resolv_conf(struct pod *pod, const Runtime__V1__DNSConfig *dns, err_t *err)
{
    if (!dns || (!dns->n_servers && !dns->n_searches && !dns->n_options)) {
        /* No DNS config (dnsPolicy Default, or crictl): the host's. */
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (fs_read_file("/etc/resolv.conf", 64 * 1024, &text, &len, NULL) < 0) {
            text = strdup("");
            len = 0;
        }
        return fs_write_atomic(pod->resolv_conf, text ? text : "", len, 0644, err);
    }
    size_t cap = 256;
    for (size_t i = 0; i < dns->n_servers; i++)
        cap += strlen(dns->servers[i]) + 16;
    for (size_t i = 0; i < dns->n_searches; i++)
        cap += strlen(dns->searches[i]) + 2;
    for (size_t i = 0; i < dns->n_options; i++)
        cap += strlen(dns->options[i]) + 2;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf)
        return err_sys(err, ENOMEM, "writing resolv.conf");
    size_t n = 0;
    if (dns->n_searches) {
        n += (size_t)sprintf(buf + n, "search");
        for (size_t i = 0; i < dns->n_searches; i++) {
            if (has_newline(dns->searches[i]) || strchr(dns->searches[i], ' '))
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid DNS search domain \"%s\"", dns->searches[i]);
            n += (size_t)sprintf(buf + n, " %s", dns->searches[i]);
        }
        buf[n++] = '\n';
    }
    for (size_t i = 0; i < dns->n_servers; i++) {
        if (has_newline(dns->servers[i]) || strchr(dns->servers[i], ' '))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid DNS server \"%s\"", dns->servers[i]);
        n += (size_t)sprintf(buf + n, "nameserver %s\n", dns->servers[i]);
    }
    if (dns->n_options) {
        n += (size_t)sprintf(buf + n, "options");
        for (size_t i = 0; i < dns->n_options; i++) {
            if (has_newline(dns->options[i]) || strchr(dns->options[i], ' '))
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid DNS option \"%s\"", dns->options[i]);
            n += (size_t)sprintf(buf + n, " %s", dns->options[i]);
        }
        buf[n++] = '\n';
    }
    return fs_write_atomic(pod->resolv_conf, buf, n, 0644, err);
}

static int write_hosts(struct pod *pod, err_t *err)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf),
                     "# Kubernetes-managed hosts file (edgecri).\n"
                     "127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\n"
                     "fe00::0\tip6-mcastprefix\n"
                     "fe00::1\tip6-allnodes\n"
                     "fe00::2\tip6-allrouters\n");
    for (size_t i = 0; i < pod->n_ips && n < (int)sizeof(buf) - 300; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\t%s\n", pod->ips[i], pod->hostname);
    if (pod->net_mode == NS_MODE_NODE) {
        /* host network: the host's file, as the pod is the host */
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (fs_read_file("/etc/hosts", 256 * 1024, &text, &len, NULL) == 0)
            return fs_write_atomic(pod->hosts, text, len, 0644, err);
    }
    return fs_write_atomic(pod->hosts, buf, (size_t)n, 0644, err);
}

/* --- sysctls ------------------------------------------------------------------ */

/* Namespaced sysctls only, as kubelet's safe/unsafe split assumes; anything
 * else would change the whole node. Returns the /proc/sys-relative path. */
static int sysctl_path(const struct pod *pod, const char *name, char *out, size_t n, err_t *err)
{
    if (!name || !*name || strlen(name) >= n || strstr(name, "..") || name[0] == '/' || name[0] == '.')
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid sysctl name \"%s\"", name ? name : "");
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("_./-", *c)))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid sysctl name \"%s\"", name);
    /* "net.ipv4.ip_forward" or "net/ipv4/conf/eth0.100/forwarding" */
    snprintf(out, n, "%s", name);
    if (!strchr(name, '/'))
        for (char *c = out; *c; c++)
            if (*c == '.')
                *c = '/';
    bool net = strncmp(out, "net/", 4) == 0;
    bool ipc = strncmp(out, "kernel/shm", 10) == 0 || strncmp(out, "kernel/msg", 10) == 0 ||
               strcmp(out, "kernel/sem") == 0 || strncmp(out, "fs/mqueue/", 10) == 0;
    bool uts = strcmp(out, "kernel/hostname") == 0 || strcmp(out, "kernel/domainname") == 0;
    if (!net && !ipc && !uts)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "sysctl %s is not namespaced: setting it for a pod would change the whole node", name);
    if ((net || uts) && pod->net_mode != NS_MODE_POD)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "sysctl %s cannot be set for a pod on the host network: it would change the node", name);
    if (ipc && pod->ipc_mode != NS_MODE_POD)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "sysctl %s cannot be set for a pod in the host IPC namespace: it would change the node", name);
    return 0;
}

/* --- bandwidth ------------------------------------------------------------------ */

/* A Kubernetes quantity ("10M", "1.5Gi", "500k", "2e6") as a whole number;
 * false for anything else. */
static bool parse_quantity(const char *s, double *out)
{
    static const struct {
        const char *suffix;
        double factor;
    } suffixes[] = {{"Ki", 1024.0},
                    {"Mi", 1048576.0},
                    {"Gi", 1073741824.0},
                    {"Ti", 1099511627776.0},
                    {"Pi", 1125899906842624.0},
                    {"Ei", 1152921504606846976.0},
                    {"k", 1e3},
                    {"M", 1e6},
                    {"G", 1e9},
                    {"T", 1e12},
                    {"P", 1e15},
                    {"E", 1e18},
                    {"m", 1e-3},
                    {"", 1.0}};
    if (!s || !*s || strlen(s) > 64 || !strchr("0123456789.", s[0]))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
        if (strcmp(end, suffixes[i].suffix) == 0) {
            *out = v * suffixes[i].factor;
            return true;
        }
    return false;
}

/* kubelet's traffic shaping annotations, for CNI's bandwidth capability,
 * read the way containerd reads them: a rate in bits per second and, as
 * there is no annotation for it, a burst that does not limit. kubelet's
 * bounds apply (1 kbit/s to 1 Pbit/s). */
static int bandwidth_of(const struct pod *pod, struct cni_bandwidth *bw, bool *has, err_t *err)
{
    static const char *const keys[2] = {"kubernetes.io/ingress-bandwidth", "kubernetes.io/egress-bandwidth"};
    *has = false;
    memset(bw, 0, sizeof(*bw));
    for (int i = 0; i < 2; i++) {
        json_t *a = json_object_get(pod->annotations, keys[i]);
        if (!a)
            continue;
        double v;
        if (!parse_quantity(json_string_value(a), &v) || v < 1e3 || v > 1e15)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "annotation %s: \"%s\" is not a bandwidth between 1k and 1P (bits per second)", keys[i],
                           json_string_value(a));
        if (pod->net_mode != NS_MODE_POD)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "annotation %s: a pod on the host network cannot be shaped", keys[i]);
        uint64_t rate = (uint64_t)v;
        if (i == 0) {
            bw->ingress_rate = rate;
            bw->ingress_burst = UINT32_MAX;
        } else {
            bw->egress_rate = rate;
            bw->egress_burst = UINT32_MAX;
        }
        *has = true;
    }
    return 0;
}

/* --- teardown -------------------------------------------------------------------- */

static void unmount_file(const char *path)
{
    if (!path)
        return;
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        log_warn("unmounting %s: %s", path, strerror(errno));
}

/* Releases namespaces and the shm of a pod (what Stop and Remove share). */
static void release_namespaces(struct pod *pod)
{
    unmount_file(pod->netns);
    unmount_file(pod->ipcns);
    unmount_file(pod->utsns);
    unmount_file(pod->userns);
    if (pod->ipc_mode == NS_MODE_POD)
        unmount_file(pod->shm);
}

/* Ends the pod's init, if it has one, and calls `then` once the watch has
 * reaped it (at once when there is none). */
static void end_init(struct pod *pod, void (*then)(void *), void *data)
{
    struct pod_priv *pp = priv(pod);
    if (!pp->init_watch) {
        then(data);
        return;
    }
    pp->init_gone = then;
    pp->init_gone_data = data;
    int r = process_signal(process_watch_pidfd(pp->init_watch), SIGKILL);
    if (r < 0 && r != -ESRCH) /* ESRCH: it is exiting already; the watch reports it either way */
        log_warn("pod %s: killing its init %d: %s", pod->id, (int)pod->init_pid, strerror(-r));
}

/* A timer that calls fn(data) once; 0, or -ENOMEM when it could not be set. */
struct later {
    uv_timer_t timer;
    void (*fn)(void *);
    void *data;
};

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    uv_close((uv_handle_t *)t, later_closed);
    l->fn(l->data);
}

static int call_later(struct pods *p, uint64_t ms, void (*fn)(void *), void *data)
{
    struct later *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    *l = (struct later){.fn = fn, .data = data};
    uv_timer_init(p->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, later_fire, ms, 0);
    return 0;
}

/* cgroup_destroy kills what is left and waits (up to seconds) for it to
 * leave: that runs in the thread pool so the loop never stalls. The manager
 * is only read there, and outlives the job (shutdown waits for pods_busy). */
struct cgroup_job {
    struct cgroup_manager *m;
    char *paths[2];
    size_t n;
    err_t err;
    void (*done)(void *data, const err_t *err);
    void *data;
};

static void cgroup_job_work(void *data)
{
    struct cgroup_job *j = data;
    for (size_t i = 0; i < j->n && !j->err.msg; i++)
        cgroup_destroy(j->m, j->paths[i], &j->err);
}

static void cgroup_job_free(struct cgroup_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->paths[i]);
    err_clear(&j->err);
    free(j);
}

static void cgroup_job_done(void *data, int status)
{
    struct cgroup_job *j = data;
    if (status < 0 && !j->err.msg)
        err_set(&j->err, ERR_INTERNAL, -status, "removing cgroup %s: %s", j->paths[0], uv_strerror(status));
    j->done(j->data, j->err.msg ? &j->err : NULL);
    cgroup_job_free(j);
}

/* Takes the paths (heap strings; NULLs are skipped). */
static void destroy_cgroups_async(struct pods *p, char *a, char *b, void (*done)(void *, const err_t *), void *data)
{
    struct cgroup_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(a);
        free(b);
        err_t e = ERR_INIT;
        err_set(&e, ERR_RESOURCE_EXHAUSTED, ENOMEM, "removing cgroups: out of memory");
        done(data, &e);
        err_clear(&e);
        return;
    }
    *j = (struct cgroup_job){.m = p->cgroups, .done = done, .data = data};
    if (a)
        j->paths[j->n++] = a;
    if (b)
        j->paths[j->n++] = b;
    if (j->n == 0) {
        free(j);
        done(data, NULL);
        return;
    }
    int r = loop_queue_work(cgroup_job_work, cgroup_job_done, j);
    if (r < 0) {
        err_set(&j->err, ERR_INTERNAL, -r, "removing cgroup %s: %s", j->paths[0], uv_strerror(r));
        cgroup_job_done(j, 0);
    }
}

/* The init of a pod-shared PID namespace lives in a cgroup of its own below
 * the pod's (where containerd puts the pause process): on cgroup v2 a cgroup
 * with a process in it cannot hand controllers down to children, so the
 * pod cgroup itself must stay empty for its containers' cgroups. */
static char *init_cgroup_path(struct pods *p, const struct pod *pod, err_t *err)
{
    char *path = NULL;
    if (!pod->cgroup_path) {
        err_set(err, ERR_INTERNAL, EINVAL, "pod %s has no cgroup", pod->id);
        return NULL;
    }
    if (cgroup_container_path(p->cgroups, pod->cgroup_path, pod->id, &path, err) < 0)
        return NULL;
    return path;
}

/* Whether the pod's cgroup is to be removed with it. A cgroup edgecri made
 * is; when another pod was given the same cgroup_parent, the last of them
 * removes it, so one pod going never takes the cgroup from under another. */
static bool cgroup_to_destroy(struct pods *p, struct pod *pod)
{
    if (!priv(pod)->owns_cgroup || !pod->cgroup_path)
        return false;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->pods)
    {
        struct pod *other = list_entry(pos, struct pod, link);
        if (other == pod || !other->cgroup_path || strcmp(other->cgroup_path, pod->cgroup_path) != 0)
            continue;
        priv(other)->owns_cgroup = true;
        priv(pod)->owns_cgroup = false;
        /* A pod still being made records it when it is ready. */
        if (!other->creating)
            pod_save(other, NULL, NULL);
        log_debug("pod %s: cgroup %s stays for pod %s", pod->id, pod->cgroup_path, other->id);
        return false;
    }
    return true;
}

/* What of the pod's cgroups goes with it: the pod cgroup when it is
 * edgecri's (and everything below), else only the init's. */
static void destroy_pod_cgroups(struct pods *p, struct pod *pod, void (*done)(void *, const err_t *), void *data)
{
    char *pod_cg = NULL, *init_cg = NULL;
    if (cgroup_to_destroy(p, pod))
        pod_cg = strdup(pod->cgroup_path);
    else if (pod->pid_mode == NS_MODE_POD && pod->cgroup_path)
        init_cg = init_cgroup_path(p, pod, NULL);
    destroy_cgroups_async(p, pod_cg, init_cg, done, data);
}

/* Whether the cgroup exists (in the hierarchy cgroup_populated reads). */
static bool cgroup_exists(struct pods *p, const char *path)
{
    bool populated;
    err_t e = ERR_INIT;
    int r = cgroup_populated(p->cgroups, path, &populated, &e);
    bool missing = r < 0 && e.errnum == ENOENT;
    err_clear(&e);
    return !missing;
}

/* --- RunPodSandbox ---------------------------------------------------------------------- */

struct run_ctx {
    struct pods *p;
    struct pod *pod;
    const Runtime__V1__PodSandboxConfig *config;
    pods_done_fn done;
    void *data;
    struct spawn_child *child;
    int devnull;
    /* sysctls prepared for the holder */
    char **sysctl_paths;
    char **sysctl_values;
    size_t n_sysctls;
    struct cni_port_mapping *ports;
    size_t n_ports;
    struct cni_bandwidth bandwidth;
    bool has_bandwidth;
    err_t err; /* why it failed, answered once everything is undone */
};

static void run_ctx_free(struct run_ctx *c)
{
    err_clear(&c->err);
    if (c->devnull >= 0)
        close(c->devnull);
    for (size_t i = 0; i < c->n_sysctls; i++) {
        free(c->sysctl_paths[i]);
        free(c->sysctl_values[i]);
    }
    free(c->sysctl_paths);
    free(c->sysctl_values);
    free(c->ports);
    free(c);
}

static void cni_request_of(const struct pod *pod, struct cni_request *req, const struct cni_port_mapping *ports,
                           size_t n_ports)
{
    *req = (struct cni_request){
        .container_id = pod->id,
        .netns = pod->netns,
        .ifname = "eth0",
        .pod_name = pod->name,
        .pod_namespace = pod->ns,
        .pod_uid = pod->uid,
        .port_mappings = ports,
        .n_port_mappings = n_ports,
    };
}

/* Port mappings from the record (for DEL after a restart). */
static size_t ports_from_config(const struct pod *pod, struct cni_port_mapping **out)
{
    json_t *ports = pod->config ? json_object_get(pod->config, "portMappings") : NULL;
    size_t n = json_array_size(ports);
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *pm = json_array_get(ports, i);
        (*out)[i].host_port = (int)json_integer_value(json_object_get(pm, "hostPort"));
        (*out)[i].container_port = (int)json_integer_value(json_object_get(pm, "containerPort"));
        (*out)[i].protocol = json_string_value(json_object_get(pm, "protocol"));
        (*out)[i].host_ip = json_string_value(json_object_get(pm, "hostIP"));
    }
    return n;
}

/* Undoing a failed RunPodSandbox. Everything it made goes before the
 * error is answered, so a caller that sees the error finds nothing left:
 * the init (reaped), the network (DEL while the namespace is still there,
 * so the plugins find the veth), the namespace mounts and files, the
 * record, and the cgroup (in the pool). */
static void abort_finish(void *data, const err_t *err)
{
    struct run_ctx *c = data;
    struct pods *p = c->p;
    struct pod *pod = c->pod;
    if (err)
        log_warn("pod %s: undoing RunPodSandbox: %s", pod->id, err->msg);
    list_del(&pod->link);
    p->ops_running--;
    c->done(c->data, NULL, &c->err);
    pod_free(pod);
    run_ctx_free(c);
}

static void abort_network_done(void *data, const struct cni_result *res, const err_t *err)
{
    (void)res;
    struct run_ctx *c = data;
    struct pods *p = c->p;
    struct pod *pod = c->pod;
    if (err)
        log_warn("pod %s: undoing RunPodSandbox: tearing the network down: %s", pod->id, err->msg);
    release_namespaces(pod);
    if (pod->dir)
        fs_remove_tree(pod->dir, NULL);
    _cleanup_free_ char *rec = NULL;
    if (asprintf(&rec, "%s/pods/%s", p->root, pod->id) >= 0)
        fs_remove_tree(rec, NULL);
    destroy_pod_cgroups(p, pod, abort_finish, c);
}

static void abort_init_gone(void *data)
{
    struct run_ctx *c = data;
    struct pod *pod = c->pod;
    if (priv(pod)->network_ready) {
        struct cni_request req;
        cni_request_of(pod, &req, c->ports, c->n_ports);
        priv(pod)->network_ready = false;
        err_t e = ERR_INIT;
        if (cni_del(c->p->cni, &req, abort_network_done, c, &e) == 0)
            return;
        log_warn("pod %s: undoing RunPodSandbox: %s", pod->id, e.msg);
        err_clear(&e);
    }
    abort_network_done(c, NULL, NULL);
}

static void run_abort(struct run_ctx *c, const err_t *err)
{
    struct pod *pod = c->pod;
    log_debug("RunPodSandbox %s/%s failed: %s; undoing", pod->ns, pod->name, err->msg);
    err_set(&c->err, err->code, err->errnum, "%s", err->msg);
    if (c->child) {
        spawn_end_hold(c->child);
        spawn_child_free(c->child);
        c->child = NULL;
    }
    end_init(pod, abort_init_gone, c);
}

static void run_failf(struct run_ctx *c, enum err_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void run_failf(struct run_ctx *c, enum err_code code, int errnum, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err_t e = ERR_INIT;
    err_set(&e, code, errnum, "RunPodSandbox %s/%s: %s", c->pod->ns, c->pod->name, msg);
    run_abort(c, &e);
    err_clear(&e);
}

static void run_fail(struct run_ctx *c, err_t *err)
{
    err_wrap(err, "RunPodSandbox %s/%s", c->pod->ns, c->pod->name);
    run_abort(c, err);
}

static void run_recorded(void *data, const err_t *err)
{
    struct run_ctx *c = data;
    if (err) {
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "%s", err->msg);
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    struct pod *pod = c->pod;
    pod->busy = false;
    pod->creating = false;
    c->p->ops_running--;
    log_info("pod %s (%s/%s) ready%s%s", pod->id, pod->ns, pod->name, pod->n_ips ? " with IP " : "",
             pod->n_ips ? pod->ips[0] : "");
    c->done(c->data, pod, NULL);
    run_ctx_free(c);
}

static void run_finish(struct run_ctx *c)
{
    err_t err = ERR_INIT;
    if (c->pod->pid_mode == NS_MODE_POD && !priv(c->pod)->init_watch) {
        run_failf(c, ERR_INTERNAL, ESRCH, "the pod's init exited while the pod was being created");
        return;
    }
    if (write_hosts(c->pod, &err) < 0) {
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    c->pod->state = POD_READY;
    pod_save(c->pod, run_recorded, c);
}

static void run_network_done(void *data, const struct cni_result *res, const err_t *err)
{
    struct run_ctx *c = data;
    struct pod *pod = c->pod;
    if (err) {
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "setting up the pod network: %s", err->msg);
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    priv(pod)->network_ready = true;
    pod->ips = calloc(res->n_ips ? res->n_ips : 1, sizeof(char *));
    for (size_t i = 0; pod->ips && i < res->n_ips; i++)
        if ((pod->ips[i] = strdup(res->ips[i])))
            pod->n_ips++;
    run_finish(c);
}

static void run_network(struct run_ctx *c)
{
    struct pod *pod = c->pod;
    if (pod->net_mode != NS_MODE_POD) {
        run_finish(c);
        return;
    }
    struct cni_request req;
    cni_request_of(pod, &req, c->ports, c->n_ports);
    if (c->has_bandwidth)
        req.bandwidth = &c->bandwidth;
    err_t err = ERR_INIT;
    if (cni_add(c->p->cni, &req, run_network_done, c, &err) < 0) {
        err_wrap(&err, "setting up the pod network");
        run_fail(c, &err);
        err_clear(&err);
    }
}

static void on_init_exit(void *data, const struct process_exit *e)
{
    struct pod *pod = data;
    struct pod_priv *pp = priv(pod);
    pp->init_watch = NULL;
    pod->init_pid = 0;
    pod->init_start_time = 0;
    void (*then)(void *) = pp->init_gone;
    pp->init_gone = NULL;
    if (then) {
        /* ended by us: whoever waits saves the state */
        then(pp->init_gone_data);
        return;
    }
    log_warn("pod %s: its PID namespace's init exited (code %d); the pod's PID namespace is gone", pod->id,
             e->known ? e->code : -1);
    if (pod->state == POD_READY && !pod->creating) {
        pod->state = POD_NOTREADY;
        pod_save(pod, NULL, NULL);
    }
}

static void run_init_started(void *data, struct spawn_child *child, const err_t *err)
{
    struct run_ctx *c = data;
    struct pod *pod = c->pod;
    if (err) {
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "starting the pod's init: %s", err->msg);
        spawn_child_free(child);
        c->child = NULL;
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    pod->init_pid = spawn_pid(child);
    pod->init_start_time = process_start_time(pod->init_pid);
    err_t e = ERR_INIT;
    priv(pod)->init_watch =
        process_watch_start(c->p->loop, spawn_take_pidfd(child), pod->init_pid, true, on_init_exit, pod, &e);
    spawn_child_free(child);
    c->child = NULL;
    if (!priv(pod)->init_watch) {
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    run_network(c);
}

/* containerd's restrict_oom_score_adj: going below our own oom_score_adj
 * takes CAP_SYS_RESOURCE, which root does not always have (containers,
 * some VMs); without it the init keeps ours rather than failing to start. */
static int init_oom_score_adj(int want, bool *set)
{
    int own = 0;
    unsigned long long eff = 0;
    char line[256];
    FILE *f = fopen("/proc/self/oom_score_adj", "re");
    if (f) {
        if (fscanf(f, "%d", &own) != 1)
            own = 0;
        fclose(f);
    }
    f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    if (f)
        fclose(f);
    bool may_lower = eff & (1ULL << CAP_SYS_RESOURCE);
    int v = want < own && !may_lower ? own : want;
    *set = v != own;
    return v;
}

static void run_init(struct run_ctx *c)
{
    struct pod *pod = c->pod;
    if (pod->pid_mode != NS_MODE_POD) {
        run_network(c);
        return;
    }
    /* A shared PID namespace needs a PID 1 to hold it and reap orphans:
     * edgecri's own binary in its smallest mode. */
    static const char *const argv[] = {"edgecri", "pod-init", NULL};
    static const char *const envp[] = {NULL};
    struct spawn_plan plan = {
        .clone_flags = CLONE_NEWPID,
        .cgroup_fd = -1,
        .pidns_fd = -1,
        .argv = argv,
        .envp = envp,
        .exec_fd = c->p->self_exe_fd,
        .stdio = {c->devnull, c->devnull, c->devnull},
        .set_oom_score_adj = true,
        .oom_score_adj = -998,
    };
    plan.oom_score_adj = init_oom_score_adj(plan.oom_score_adj, &plan.set_oom_score_adj);
    err_t err = ERR_INIT;
    /* In a user namespace the init runs as the pod's root, with no
     * capabilities: reaping needs none, and it shares the PID namespace
     * with the containers. */
    _cleanup_close_ int userns_fd = -1;
    if (pod->userns) {
        if ((userns_fd = pods_open_userns(pod, &err)) < 0) {
            run_fail(c, &err);
            err_clear(&err);
            return;
        }
        plan.join_userns = true;
        plan.userns_fd = userns_fd;
        plan.set_identity = true;
        plan.set_caps = true;
        plan.no_new_privs = true;
    }
    _cleanup_free_ char *cg = init_cgroup_path(c->p, pod, &err);
    if (!cg || cgroup_create(c->p->cgroups, cg, NULL, &err) < 0) {
        err_wrap(&err, "starting the pod's init");
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    int fd = cgroup_open_v2(c->p->cgroups, cg, NULL);
    if (fd >= 0)
        plan.cgroup_fd = fd;
    int r = spawn_start(c->p->loop, &plan, &c->child, &err);
    if (fd >= 0)
        close(fd);
    if (r == 0 && fd < 0)
        r = cgroup_attach(c->p->cgroups, cg, spawn_pid(c->child), &err);
    if (r == 0)
        r = spawn_release(c->child, run_init_started, c, &err);
    if (r < 0) {
        err_wrap(&err, "starting the pod's init");
        run_fail(c, &err);
        err_clear(&err);
    }
}

static int bind_ns(pid_t pid, const char *name, const char *dst, err_t *err)
{
    char src[64];
    snprintf(src, sizeof(src), "/proc/%d/ns/%s", (int)pid, name);
    int fd = open(dst, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0)
        return err_sys(err, errno, "creating %s", dst);
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        return err_sys(err, errno, "bind-mounting %s on %s", src, dst);
    return 0;
}

static void run_holder_ready(void *data, struct spawn_child *child, const err_t *err)
{
    struct run_ctx *c = data;
    struct pod *pod = c->pod;
    if (err) {
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "creating the pod's namespaces: %s", err->msg);
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    err_t e = ERR_INIT;
    pid_t pid = spawn_pid(child);
    int r = 0;
    if (pod->netns && r == 0)
        r = bind_ns(pid, "net", pod->netns, &e);
    if (pod->ipcns && r == 0)
        r = bind_ns(pid, "ipc", pod->ipcns, &e);
    if (pod->utsns && r == 0)
        r = bind_ns(pid, "uts", pod->utsns, &e);
    if (pod->userns && r == 0)
        r = bind_ns(pid, "user", pod->userns, &e);
    /* The namespaces are held by their mounts now: the holder goes. */
    spawn_end_hold(child);
    spawn_child_free(child);
    c->child = NULL;
    if (r < 0) {
        run_fail(c, &e);
        err_clear(&e);
        return;
    }
    run_init(c);
}

static void run_namespaces(struct run_ctx *c)
{
    struct pod *pod = c->pod;
    uint64_t flags = 0;
    if (pod->net_mode == NS_MODE_POD)
        flags |= CLONE_NEWNET | CLONE_NEWUTS;
    if (pod->ipc_mode == NS_MODE_POD)
        flags |= CLONE_NEWIPC;
    if (!flags) {
        run_init(c);
        return;
    }
    /* With a user namespace the holder makes it first: the other
     * namespaces then belong to it, so root in the pod may manage its own
     * network, hostname and IPC, and nothing of the host's. */
    _cleanup_free_ char *uid_map = NULL, *gid_map = NULL;
    if (pod->userns_map) {
        flags |= CLONE_NEWUSER;
        uid_map = userns_map_text(pod->userns_map->uids, pod->userns_map->n_uids);
        gid_map = userns_map_text(pod->userns_map->gids, pod->userns_map->n_gids);
        if (!uid_map || !gid_map) {
            run_failf(c, ERR_RESOURCE_EXHAUSTED, ENOMEM, "out of memory");
            return;
        }
    }
    struct spawn_plan plan = {
        .clone_flags = flags,
        .cgroup_fd = -1,
        .pidns_fd = -1,
        .exec_fd = -1,
        .hostname = (flags & CLONE_NEWUTS) ? pod->hostname : NULL,
        .sysctl_paths = (const char *const *)c->sysctl_paths,
        .sysctl_values = (const char *const *)c->sysctl_values,
        .n_sysctls = c->n_sysctls,
        .loopback_up = (flags & CLONE_NEWNET) != 0,
        .uid_map = uid_map,
        .gid_map = gid_map,
        .stdio = {c->devnull, c->devnull, c->devnull},
        .hold = true,
    };
    err_t err = ERR_INIT;
    int r = spawn_start(c->p->loop, &plan, &c->child, &err);
    if (r == 0)
        r = spawn_release(c->child, run_holder_ready, c, &err);
    if (r < 0) {
        err_wrap(&err, "creating the pod's namespaces");
        run_fail(c, &err);
        err_clear(&err);
    }
}

static struct pod *find_by_metadata(struct pods *p, const Runtime__V1__PodSandboxMetadata *m)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->pods)
    {
        struct pod *pod = list_entry(pos, struct pod, link);
        if (strcmp(pod->name, m->name) == 0 && strcmp(pod->ns, m->namespace_) == 0 && strcmp(pod->uid, m->uid) == 0 &&
            pod->attempt == m->attempt)
            return pod;
    }
    return NULL;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

void pods_run(struct pods *p, const void *config_msg, const char *runtime_handler, pods_done_fn done, void *data)
{
    const Runtime__V1__PodSandboxConfig *cfg = config_msg;
    err_t err = ERR_INIT;
    const Runtime__V1__PodSandboxMetadata *m = cfg->metadata;
    if (!m || empty(m->name) || empty(m->uid) || empty(m->namespace_)) {
        err_set(&err, ERR_INVALID_ARGUMENT, EINVAL, "RunPodSandbox: metadata with name, uid and namespace is required");
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }
    if (!empty(runtime_handler) && strcmp(runtime_handler, "edgecri") != 0 && strcmp(runtime_handler, "runc") != 0) {
        err_set(&err, ERR_NOT_FOUND, ENOENT,
                "RunPodSandbox %s/%s: unknown runtime handler \"%s\" (edgecri has \"\" and \"edgecri\")", m->namespace_,
                m->name, runtime_handler);
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }
    struct pod *existing = find_by_metadata(p, m);
    if (existing) {
        err_set(&err, ERR_ALREADY_EXISTS, EEXIST, "RunPodSandbox: the name %s_%s_%s_%u is reserved for pod sandbox %s",
                m->name, m->namespace_, m->uid, m->attempt, existing->id);
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }
    const Runtime__V1__LinuxPodSandboxConfig *lx = cfg->linux;
    const Runtime__V1__NamespaceOption *nso =
        lx && lx->security_context ? lx->security_context->namespace_options : NULL;
    struct userns_map *userns_map = NULL;
    if (nso && userns_from_cri(nso->userns_options, &userns_map, &err) < 0) {
        err_wrap(&err, "RunPodSandbox %s/%s", m->namespace_, m->name);
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }
    if (userns_map &&
        (nso->network != RUNTIME__V1__NAMESPACE_MODE__POD || nso->ipc != RUNTIME__V1__NAMESPACE_MODE__POD ||
         nso->pid == RUNTIME__V1__NAMESPACE_MODE__NODE || lx->security_context->privileged)) {
        /* As Kubernetes validates hostUsers: false: the host's namespaces
         * belong to the host's user namespace, where the pod has no say. */
        err_set(&err, ERR_INVALID_ARGUMENT, EINVAL,
                "RunPodSandbox %s/%s: a user namespace cannot be combined with the host's network, IPC or PID "
                "namespace, or with privileged",
                m->namespace_, m->name);
        free(userns_map);
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }

    char id[65];
    random_hex_id(id);
    struct pod *pod = pod_alloc(p, id);
    struct run_ctx *c = calloc(1, sizeof(*c));
    if (pod)
        pod->userns_map = steal_pointer(&userns_map);
    free(userns_map);
    if (!pod || !c) {
        pod_free(pod);
        free(c);
        err_sys(&err, ENOMEM, "RunPodSandbox");
        done(data, NULL, &err);
        err_clear(&err);
        return;
    }
    c->p = p;
    c->pod = pod;
    c->config = cfg;
    c->done = done;
    c->data = data;
    c->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    pod->busy = true;
    pod->creating = true;
    pod->state = POD_NOTREADY;
    pod->name = strdup(m->name);
    pod->uid = strdup(m->uid);
    pod->ns = strdup(m->namespace_);
    pod->attempt = m->attempt;
    pod->labels = map_json(cfg->n_labels, (void **)cfg->labels);
    pod->annotations = map_json(cfg->n_annotations, (void **)cfg->annotations);
    pod->runtime_handler = strdup_or_empty(runtime_handler);
    pod->created_at = time_now_ns();
    pod->net_mode = nso ? (enum ns_mode)nso->network : NS_MODE_POD;
    pod->pid_mode = nso ? (enum ns_mode)nso->pid : NS_MODE_CONTAINER;
    pod->ipc_mode = nso ? (enum ns_mode)nso->ipc : NS_MODE_POD;
    pod->privileged = lx && lx->security_context && lx->security_context->privileged;
    pod->log_directory = strdup_or_empty(cfg->log_directory);
    char host[256] = "";
    if (pod->net_mode == NS_MODE_NODE)
        gethostname(host, sizeof(host) - 1);
    pod->hostname = strdup(pod->net_mode == NS_MODE_NODE ? host : (!empty(cfg->hostname) ? cfg->hostname : m->name));
    list_add_tail(&p->pods, &pod->link);
    p->ops_running++;

    if (pod->net_mode != NS_MODE_POD && pod->net_mode != NS_MODE_NODE) {
        run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "network namespace mode %d is not valid for a pod", pod->net_mode);
        return;
    }
    if (pod->ipc_mode != NS_MODE_POD && pod->ipc_mode != NS_MODE_NODE) {
        run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "IPC namespace mode %d is not valid for a pod", pod->ipc_mode);
        return;
    }
    if (pod->pid_mode == NS_MODE_TARGET) {
        run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "PID namespace mode TARGET is not valid for a pod");
        return;
    }
    if (!pod->name || !pod->uid || !pod->ns || !pod->labels || !pod->annotations || !pod->runtime_handler ||
        !pod->log_directory || !pod->hostname || set_paths(p, pod) < 0 || c->devnull < 0) {
        run_failf(c, ERR_RESOURCE_EXHAUSTED, ENOMEM, "out of memory");
        return;
    }
    if (has_newline(pod->hostname) || strlen(pod->hostname) > 64) {
        run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "invalid hostname \"%s\"", pod->hostname);
        return;
    }

    /* The record keeps what Stop, Remove and Status need later. */
    json_t *ports = json_array();
    c->ports = calloc(cfg->n_port_mappings ? cfg->n_port_mappings : 1, sizeof(*c->ports));
    static const char *const protos[] = {"tcp", "udp", "sctp"};
    for (size_t i = 0; c->ports && i < cfg->n_port_mappings; i++) {
        const Runtime__V1__PortMapping *pm = cfg->port_mappings[i];
        if (pm->container_port <= 0 || pm->container_port > 65535 || pm->host_port < 0 || pm->host_port > 65535 ||
            (unsigned)pm->protocol > 2) {
            json_decref(ports);
            run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "invalid port mapping %d:%d", pm->host_port, pm->container_port);
            return;
        }
        c->ports[i] = (struct cni_port_mapping){pm->host_port, pm->container_port, protos[pm->protocol],
                                                empty(pm->host_ip) ? NULL : pm->host_ip};
        json_array_append_new(ports, json_pack("{s:i, s:i, s:s, s:s}", "hostPort", pm->host_port, "containerPort",
                                               pm->container_port, "protocol", protos[pm->protocol], "hostIP",
                                               pm->host_ip ? pm->host_ip : ""));
    }
    c->n_ports = cfg->n_port_mappings;
    if (bandwidth_of(pod, &c->bandwidth, &c->has_bandwidth, &err) < 0) {
        json_decref(ports);
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    json_t *sysctls = json_object();
    if (lx && lx->n_sysctls) {
        c->sysctl_paths = calloc(lx->n_sysctls, sizeof(char *));
        c->sysctl_values = calloc(lx->n_sysctls, sizeof(char *));
        for (size_t i = 0; c->sysctl_paths && c->sysctl_values && i < lx->n_sysctls; i++) {
            char path[256];
            if (sysctl_path(pod, lx->sysctls[i]->key, path, sizeof(path), &err) < 0) {
                json_decref(ports);
                json_decref(sysctls);
                run_fail(c, &err);
                err_clear(&err);
                return;
            }
            if (has_newline(lx->sysctls[i]->value)) {
                json_decref(ports);
                json_decref(sysctls);
                run_failf(c, ERR_INVALID_ARGUMENT, EINVAL, "invalid value for sysctl %s", lx->sysctls[i]->key);
                return;
            }
            c->sysctl_paths[i] = strdup(path);
            c->sysctl_values[i] = strdup(lx->sysctls[i]->value ? lx->sysctls[i]->value : "");
            c->n_sysctls++;
            json_object_set_new(sysctls, lx->sysctls[i]->key, json_string(lx->sysctls[i]->value));
        }
    }
    const Runtime__V1__DNSConfig *dns = cfg->dns_config;
    json_t *dnsj =
        json_pack("{s:o, s:o, s:o}", "servers", strv_json(dns ? dns->servers : NULL, dns ? dns->n_servers : 0),
                  "searches", strv_json(dns ? dns->searches : NULL, dns ? dns->n_searches : 0), "options",
                  strv_json(dns ? dns->options : NULL, dns ? dns->n_options : 0));
    pod->config = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s}", "portMappings", ports, "sysctls", sysctls, "dns", dnsj,
                            "overhead", cri_resources_json(lx ? lx->overhead : NULL), "resources",
                            cri_resources_json(lx ? lx->resources : NULL), "cgroupParent",
                            lx && lx->cgroup_parent ? lx->cgroup_parent : "");

    /* directories and files */
    _cleanup_free_ char *nsdir = path_join(pod->dir, "ns");
    _cleanup_free_ char *recdir = NULL;
    if (!nsdir || asprintf(&recdir, "%s/pods/%s", p->root, pod->id) < 0) {
        run_failf(c, ERR_RESOURCE_EXHAUSTED, ENOMEM, "out of memory");
        return;
    }
    char hostname_line[80];
    int hn = snprintf(hostname_line, sizeof(hostname_line), "%s\n", pod->hostname);
    if (fs_mkdir_p(nsdir, 0711, &err) < 0 || fs_mkdir_p(recdir, 0700, &err) < 0 ||
        write_resolv_conf(pod, dns, &err) < 0 ||
        fs_write_atomic(pod->hostname_file, hostname_line, (size_t)hn, 0644, &err) < 0) {
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    if (pod->ipc_mode == NS_MODE_POD) {
        if (fs_mkdir_p(pod->shm, 01777, &err) < 0) {
            run_fail(c, &err);
            err_clear(&err);
            return;
        }
        char opts[96] = "mode=1777,size=" SHM_SIZE;
        uint32_t ru, rg;
        if (pod->userns_map && userns_to_host(pod->userns_map->uids, pod->userns_map->n_uids, 0, &ru) &&
            userns_to_host(pod->userns_map->gids, pod->userns_map->n_gids, 0, &rg))
            snprintf(opts, sizeof(opts), "mode=1777,size=%s,uid=%u,gid=%u", SHM_SIZE, ru, rg);
        if (mount("shm", pod->shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
            run_failf(c, ERR_INTERNAL, errno, "mounting the pod's /dev/shm: %s", strerror(errno));
            return;
        }
    }

    /* The pod cgroup: kubelet's (cgroup_parent, which it manages) or ours. */
    const char *parent = lx && lx->cgroup_parent ? lx->cgroup_parent : "";
    if (cgroup_pod_path(p->cgroups, parent, pod->id, &pod->cgroup_path, &err) < 0) {
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    /* kubelet makes the pod cgroup it names before RunPodSandbox and
     * removes it itself; one that did not exist is edgecri's to remove. */
    priv(pod)->owns_cgroup = !cgroup_exists(p, pod->cgroup_path);
    struct cri_resources res;
    if (cri_resources_pod(lx ? lx->resources : NULL, lx ? lx->overhead : NULL, &res, &err) < 0 ||
        cgroup_create(p->cgroups, pod->cgroup_path, &res.r, &err) < 0) {
        cri_resources_free(&res);
        run_fail(c, &err);
        err_clear(&err);
        return;
    }
    cri_resources_free(&res);
    log_debug("creating pod %s (%s/%s), cgroup %s", pod->id, pod->ns, pod->name, pod->cgroup_path);
    run_namespaces(c);
}

/* --- StopPodSandbox ---------------------------------------------------------------- */

struct stop_ctx {
    struct pods *p;
    struct pod *pod;
    pods_done_fn done;
    void *data;
    bool remove_after;
    struct cni_port_mapping *ports;
};

static void remove_continue(struct stop_ctx *s);

/* Ends a Stop or Remove: the pod is free for the next operation. */
static void stop_end(struct stop_ctx *s, struct pod *pod, const err_t *err)
{
    s->pod->busy = false;
    s->p->ops_running--;
    s->done(s->data, pod, err);
    free(s->ports);
    free(s);
}

static void stop_saved(void *data, const err_t *err)
{
    struct stop_ctx *s = data;
    if (s->remove_after && !err) {
        remove_continue(s);
        return;
    }
    stop_end(s, s->pod, err);
}

static void stop_init_gone(void *data)
{
    struct stop_ctx *s = data;
    struct pod *pod = s->pod;
    release_namespaces(pod);
    if (pod->state == POD_READY)
        log_info("pod %s (%s/%s) stopped", pod->id, pod->ns, pod->name);
    pod->state = POD_NOTREADY;
    pod_save(pod, stop_saved, s);
}

static void stop_finish(struct stop_ctx *s)
{
    /* StopPodSandbox answers once nothing of the pod runs any more. */
    end_init(s->pod, stop_init_gone, s);
}

static void stop_network_done(void *data, const struct cni_result *res, const err_t *err)
{
    (void)res;
    struct stop_ctx *s = data;
    if (err) {
        /* Keep the pod as it is; kubelet calls Stop again. */
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "StopPodSandbox %s: tearing the network down: %s", s->pod->id, err->msg);
        stop_end(s, s->pod, &e);
        err_clear(&e);
        return;
    }
    priv(s->pod)->network_ready = false;
    stop_finish(s);
}

static void stop_containers_done(void *data, const err_t *err)
{
    struct stop_ctx *s = data;
    struct pod *pod = s->pod;
    if (err)
        log_warn("pod %s: stopping its containers: %s", pod->id, err->msg);
    if (pod->net_mode == NS_MODE_POD && priv(pod)->network_ready) {
        size_t n = ports_from_config(pod, &s->ports);
        struct cni_request req;
        cni_request_of(pod, &req, s->ports, n);
        struct stat st;
        if (!pod->netns || stat(pod->netns, &st) < 0)
            req.netns = NULL;
        err_t e = ERR_INIT;
        if (cni_del(s->p->cni, &req, stop_network_done, s, &e) < 0) {
            /* No network configured any more: nothing to tear down. */
            log_warn("pod %s: %s", pod->id, e.msg);
            err_clear(&e);
            priv(pod)->network_ready = false;
            stop_finish(s);
        }
        return;
    }
    stop_finish(s);
}

static void stop_start(struct pods *p, struct pod *pod, bool remove_after, pods_done_fn done, void *data)
{
    struct stop_ctx *s = calloc(1, sizeof(*s));
    if (!s) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "stopping pod %s", pod->id);
        done(data, pod, &e);
        err_clear(&e);
        return;
    }
    *s = (struct stop_ctx){.p = p, .pod = pod, .done = done, .data = data, .remove_after = remove_after};
    pod->busy = true;
    p->ops_running++;
    if (p->hooks.stop_all)
        p->hooks.stop_all(p->hooks.data, pod->id, 0, stop_containers_done, s);
    else
        stop_containers_done(s, NULL);
}

static void busy_error(struct pod *pod, pods_done_fn done, void *data, const char *rpc)
{
    err_t e = ERR_INIT;
    err_set(&e, ERR_UNAVAILABLE, EBUSY, "%s %s: the pod is busy with another operation; try again", rpc, pod->id);
    done(data, pod, &e);
    err_clear(&e);
}

/* A prefix that matches several pods is an error: acting on one of them, or
 * on none while answering success, would surprise the caller. */
static struct pod *find_for(struct pods *p, const char *id, const char *rpc, pods_done_fn done, void *data,
                            bool *handled)
{
    *handled = false;
    struct pod *pod = pods_find(p, id);
    if (pod || !id || !*id)
        return pod;
    size_t n = strlen(id), matches = 0;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->pods)
    {
        struct pod *other = list_entry(pos, struct pod, link);
        if (!other->creating && strncmp(other->id, id, n) == 0)
            matches++;
    }
    if (matches > 1) {
        err_t e = ERR_INIT;
        err_set(&e, ERR_INVALID_ARGUMENT, EINVAL, "%s: pod sandbox id prefix %s matches %zu pods", rpc, id, matches);
        done(data, NULL, &e);
        err_clear(&e);
        *handled = true;
    }
    return NULL;
}

void pods_stop(struct pods *p, const char *id, pods_done_fn done, void *data)
{
    bool handled;
    struct pod *pod = find_for(p, id, "StopPodSandbox", done, data, &handled);
    if (handled)
        return;
    if (!pod) {
        err_t e = ERR_INIT;
        err_set(&e, ERR_NOT_FOUND, ENOENT, "StopPodSandbox: pod sandbox %s not found", id);
        done(data, NULL, &e);
        err_clear(&e);
        return;
    }
    if (pod->busy) {
        busy_error(pod, done, data, "StopPodSandbox");
        return;
    }
    stop_start(p, pod, false, done, data);
}

/* --- RemovePodSandbox ------------------------------------------------------------------ */

static void remove_fail(struct stop_ctx *s, err_t *e)
{
    err_wrap(e, "RemovePodSandbox %s", s->pod->id);
    stop_end(s, s->pod, e);
    err_clear(e);
}

/* The record goes last: until then a failed Remove can be retried. */
static void remove_record(void *data)
{
    struct stop_ctx *s = data;
    struct pods *p = s->p;
    struct pod *pod = s->pod;
    /* A write of the record may still be running in the pool (the pod's
     * init ended on its own, resources were updated): freeing the pod under
     * it, or removing the directory it writes into, must wait for it. */
    bool writing = persist_file_busy(priv(pod)->file);
    if (writing && call_later(p, RECORD_WAIT_MS, remove_record, s) == 0)
        return;
    err_t e = ERR_INIT;
    _cleanup_free_ char *rec = NULL;
    if (asprintf(&rec, "%s/pods/%s", p->root, pod->id) < 0)
        err_sys(&e, ENOMEM, "removing the record");
    if (e.msg || fs_remove_tree(rec, &e) < 0) {
        remove_fail(s, &e);
        return;
    }
    log_info("pod %s (%s/%s) removed", pod->id, pod->ns, pod->name);
    list_del(&pod->link);
    stop_end(s, NULL, NULL);
    if (!writing)
        pod_free(pod); /* else (out of memory for a timer) leak it rather than free it under the pool */
}

static void removed_cgroup(void *data, const err_t *err)
{
    struct stop_ctx *s = data;
    if (err) {
        /* Keep the record so that kubelet's next Remove tries again. */
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "%s", err->msg);
        remove_fail(s, &e);
        return;
    }
    remove_record(s);
}

static void removed_containers(void *data, const err_t *err)
{
    struct stop_ctx *s = data;
    struct pods *p = s->p;
    struct pod *pod = s->pod;
    if (err) {
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "removing its containers: %s", err->msg);
        remove_fail(s, &e);
        return;
    }
    release_namespaces(pod);
    err_t e = ERR_INIT;
    if (pod->dir && fs_remove_tree(pod->dir, &e) < 0) {
        log_warn("pod %s: %s", pod->id, e.msg);
        err_clear(&e);
    }
    destroy_pod_cgroups(p, pod, removed_cgroup, s);
}

static void remove_continue(struct stop_ctx *s)
{
    struct pods *p = s->p;
    s->pod->busy = true;
    if (p->hooks.remove_all)
        p->hooks.remove_all(p->hooks.data, s->pod->id, removed_containers, s);
    else
        removed_containers(s, NULL);
}

void pods_remove(struct pods *p, const char *id, pods_done_fn done, void *data)
{
    bool handled;
    struct pod *pod = find_for(p, id, "RemovePodSandbox", done, data, &handled);
    if (handled)
        return;
    if (!pod) {
        /* Already gone: kubelet retries removals, that is success. */
        done(data, NULL, NULL);
        return;
    }
    if (pod->busy) {
        busy_error(pod, done, data, "RemovePodSandbox");
        return;
    }
    stop_start(p, pod, true, done, data);
}

/* --- UpdatePodSandboxResources ---------------------------------------------------------- */

/* Applies the resources (the part not given keeps its recorded value: the
 * cgroup gets both) and updates the record in memory. */
static int update_resources(struct pods *p, struct pod *pod, const void *overhead, const void *resources, err_t *err)
{
    if (pod->busy)
        return err_set(err, ERR_UNAVAILABLE, EBUSY, "pod %s is busy with another operation; try again", pod->id);
    Runtime__V1__LinuxContainerResources *rec_res = NULL, *rec_overhead = NULL;
    if (!resources && pod->config)
        resources = rec_res = cri_resources_from_json(json_object_get(pod->config, "resources"));
    if (!overhead && pod->config)
        overhead = rec_overhead = cri_resources_from_json(json_object_get(pod->config, "overhead"));
    struct cri_resources res;
    int r = cri_resources_pod(resources, overhead, &res, err);
    if (r == 0)
        r = cgroup_update(p->cgroups, pod->cgroup_path, &res.r, err);
    cri_resources_free(&res);
    if (r == 0 && pod->config) {
        if (overhead && !rec_overhead)
            json_object_set_new(pod->config, "overhead", cri_resources_json(overhead));
        if (resources && !rec_res)
            json_object_set_new(pod->config, "resources", cri_resources_json(resources));
    }
    cri_resources_free_msg(rec_res);
    cri_resources_free_msg(rec_overhead);
    return r;
}

int pods_update_resources(struct pods *p, struct pod *pod, const void *overhead, const void *resources, err_t *err)
{
    int r = update_resources(p, pod, overhead, resources, err);
    if (r == 0)
        pod_save(pod, NULL, NULL);
    return r;
}

struct update_ctx {
    struct pods *p;
    struct pod *pod;
    pods_done_fn done;
    void *data;
};

static void update_saved(void *data, const err_t *err)
{
    struct update_ctx *u = data;
    u->pod->busy = false;
    u->p->ops_running--;
    u->done(u->data, u->pod, err);
    free(u);
}

void pods_update(struct pods *p, const char *id, const void *overhead, const void *resources, pods_done_fn done,
                 void *data)
{
    err_t e = ERR_INIT;
    struct pod *pod = pods_find(p, id);
    struct update_ctx *u = NULL;
    if (!pod)
        err_set(&e, ERR_NOT_FOUND, ENOENT, "UpdatePodSandboxResources: pod sandbox %s not found", id ? id : "");
    else if (update_resources(p, pod, overhead, resources, &e) < 0)
        err_wrap(&e, "UpdatePodSandboxResources %s", pod->id);
    else if (!(u = calloc(1, sizeof(*u))))
        err_sys(&e, ENOMEM, "UpdatePodSandboxResources %s", pod->id);
    if (e.msg) {
        done(data, pod, &e);
        err_clear(&e);
        return;
    }
    *u = (struct update_ctx){.p = p, .pod = pod, .done = done, .data = data};
    /* Busy until the record is written: a Remove meanwhile would free the
     * pod under the write. */
    pod->busy = true;
    p->ops_running++;
    pod_save(pod, update_saved, u);
}

/* --- lookups ------------------------------------------------------------------------------ */

struct pod *pods_find(struct pods *p, const char *id)
{
    if (!id || !*id)
        return NULL;
    size_t n = strlen(id);
    struct pod *found = NULL;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->pods)
    {
        struct pod *pod = list_entry(pos, struct pod, link);
        if (pod->creating)
            continue;
        if (strcmp(pod->id, id) == 0)
            return pod;
        if (strncmp(pod->id, id, n) == 0) {
            if (found)
                return NULL; /* ambiguous prefix */
            found = pod;
        }
    }
    return found;
}

struct list_node *pods_list(struct pods *p)
{
    return &p->pods;
}

int pods_open_pidns(struct pod *pod, err_t *err)
{
    if (pod->pid_mode != NS_MODE_POD || pod->init_pid <= 0)
        return err_set(err, ERR_FAILED_PRECONDITION, ESRCH, "pod %s has no shared PID namespace", pod->id);
    if (process_start_time(pod->init_pid) != pod->init_start_time)
        return err_set(err, ERR_FAILED_PRECONDITION, ESRCH, "pod %s: its PID namespace's init is gone", pod->id);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pod->init_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening the PID namespace of pod %s", pod->id);
    return fd;
}

int pods_open_userns(const struct pod *pod, err_t *err)
{
    int fd = open(pod->userns, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening the user namespace of pod %s", pod->id);
    return fd;
}

void pods_set_container_hooks(struct pods *p, const struct pods_container_hooks *hooks)
{
    p->hooks = *hooks;
}

bool pods_busy(const struct pods *p)
{
    if (p->ops_running > 0)
        return true;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, (struct list_node *)&p->pods)
    {
        struct pod *pod = list_entry(pos, struct pod, link);
        if (persist_file_busy(priv(pod)->file))
            return true;
    }
    return false;
}

/* --- startup -------------------------------------------------------------------------------- */

static bool is_nsfs(const char *path)
{
    struct statfs sf;
    return path && statfs(path, &sf) == 0 && (unsigned long)sf.f_type == NSFS_MAGIC_;
}

/* What survived: a pod is ready only if its namespaces are still mounted
 * (a reboot empties the state directory) and its init, if any, lives. */
static void recover(struct pods *p, struct pod *pod)
{
    if (pod->state != POD_READY)
        return;
    bool ok = (!pod->netns || is_nsfs(pod->netns)) && (!pod->ipcns || is_nsfs(pod->ipcns)) &&
              (!pod->userns || is_nsfs(pod->userns));
    if (ok && pod->pid_mode == NS_MODE_POD) {
        int fd = -1;
        err_t e = ERR_INIT;
        if (process_adopt(pod->init_pid, pod->init_start_time, &fd, &e) < 0) {
            ok = false;
            err_clear(&e);
        } else {
            priv(pod)->init_watch = process_watch_start(p->loop, fd, pod->init_pid, false, on_init_exit, pod, &e);
            if (!priv(pod)->init_watch) {
                ok = false;
                err_clear(&e);
            }
        }
    }
    if (!ok) {
        log_warn("pod %s (%s/%s) did not survive (namespaces or init gone): NOTREADY", pod->id, pod->ns, pod->name);
        pod->state = POD_NOTREADY;
        pod_save(pod, NULL, NULL);
    }
}

/* What a crash in the middle of RunPodSandbox (or RemovePodSandbox) left
 * of a pod that has no record: namespace mounts and files under the state
 * directory, a network attachment (host-local's address), a cgroup of
 * edgecri's own naming and the init in it. */
struct sweep {
    struct pods *p;
    char id[65];
    char *dir; /* <state>/pods/<id> */
    char *cgroup;
};

static void sweep_done(void *data, const err_t *err)
{
    struct sweep *w = data;
    if (err)
        log_warn("pod %s (left by a crash): %s", w->id, err->msg);
    else
        log_info("pod %s: removed what a crash left of it", w->id);
    w->p->ops_running--;
    free(w->dir);
    free(w->cgroup);
    free(w);
}

static void sweep_network_done(void *data, const struct cni_result *res, const err_t *err)
{
    (void)res;
    static const char *const mounts[] = {"ns/net", "ns/ipc", "ns/uts", "ns/user", "shm"};
    struct sweep *w = data;
    if (err)
        log_warn("pod %s (left by a crash): tearing the network down: %s", w->id, err->msg);
    for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
        _cleanup_free_ char *m = path_join(w->dir, mounts[i]);
        unmount_file(m);
    }
    fs_remove_tree(w->dir, NULL);
    if (w->cgroup) {
        destroy_cgroups_async(w->p, steal_pointer(&w->cgroup), NULL, sweep_done, w);
        return;
    }
    sweep_done(w, NULL);
}

static void sweep_orphan(struct pods *p, const char *id)
{
    log_warn("pod %s has no record (edgecri stopped while making or removing it); removing what is left", id);
    struct sweep *w = calloc(1, sizeof(*w));
    if (!w || asprintf(&w->dir, "%s/pods/%s", p->state, id) < 0) {
        free(w);
        return;
    }
    w->p = p;
    snprintf(w->id, sizeof(w->id), "%s", id);
    if (cgroup_pod_path(p->cgroups, NULL, id, &w->cgroup, NULL) < 0)
        w->cgroup = NULL;
    p->ops_running++;
    /* DEL while the namespace is still mounted, so the plugins find the
     * veth; the mounts go after it. */
    _cleanup_free_ char *netns = path_join(w->dir, "ns/net");
    struct cni_request req = {.container_id = id, .netns = is_nsfs(netns) ? netns : NULL, .ifname = "eth0"};
    err_t e = ERR_INIT;
    if (cni_del(p->cni, &req, sweep_network_done, w, &e) < 0) {
        log_warn("pod %s (left by a crash): %s", id, e.msg);
        err_clear(&e);
        sweep_network_done(w, NULL, NULL);
    }
}

static bool known_pod(struct pods *p, const char *id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->pods)
    {
        if (strcmp(list_entry(pos, struct pod, link)->id, id) == 0)
            return true;
    }
    return false;
}

/* State directories of pods without a record (a record that is there but
 * damaged keeps its pod's state: nothing is undone on a guess). */
static void sweep_orphans(struct pods *p, const char *rdir, const char *sdir)
{
    _cleanup_closedir_ DIR *d = opendir(sdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strlen(de->d_name) != 64 || known_pod(p, de->d_name))
            continue;
        _cleanup_free_ char *rec = NULL;
        if (asprintf(&rec, "%s/%s/pod.json", rdir, de->d_name) < 0 || access(rec, F_OK) == 0)
            continue;
        sweep_orphan(p, de->d_name);
    }
}

int pods_open(uv_loop_t *loop, const struct pods_options *opts, struct pods **out, err_t *err)
{
    struct pods *p = calloc(1, sizeof(*p));
    if (!p || !(p->root = strdup(opts->root)) || !(p->state = strdup(opts->state))) {
        if (p)
            free(p->root);
        free(p);
        return err_sys(err, ENOMEM, "opening the pod store");
    }
    p->loop = loop;
    p->cni = opts->cni;
    p->cgroups = opts->cgroups;
    p->self_exe_fd = opts->self_exe_fd;
    list_init(&p->pods);
    _cleanup_free_ char *dir = path_join(p->root, "pods");
    _cleanup_free_ char *sdir = path_join(p->state, "pods");
    int r = dir && sdir ? fs_mkdir_p(dir, 0700, err) : -ENOMEM;
    if (r == 0)
        r = fs_mkdir_p(sdir, 0711, err);
    if (r < 0) {
        pods_free(p);
        return r;
    }
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
            continue;
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len;
        if (asprintf(&path, "%s/%s/pod.json", dir, de->d_name) < 0)
            continue;
        err_t e = ERR_INIT;
        if (fs_read_file(path, POD_RECORD_MAX, &text, &len, &e) < 0) {
            /* A pod whose first record never landed: a crash mid-create. */
            log_warn("pod %s: %s; removing what is left of it", de->d_name, e.msg);
            err_clear(&e);
            _cleanup_free_ char *pdir = NULL, *sub = NULL;
            if (asprintf(&pdir, "%s/%s", dir, de->d_name) >= 0)
                fs_remove_tree(pdir, NULL);
            /* Its state directory is swept below; without one (a reboot
             * since) the network and cgroup still are. */
            if (asprintf(&sub, "%s/%s", sdir, de->d_name) >= 0 && access(sub, F_OK) < 0)
                sweep_orphan(p, de->d_name);
            continue;
        }
        json_error_t jerr;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        struct pod *pod = o ? pod_parse(p, de->d_name, o) : NULL;
        json_decref(o);
        if (!pod) {
            log_error("pod %s: %s is damaged; ignoring it", de->d_name, path);
            continue;
        }
        list_add_tail(&p->pods, &pod->link);
        recover(p, pod);
    }
    sweep_orphans(p, dir, sdir);
    *out = p;
    return 0;
}

void pods_free(struct pods *p)
{
    if (!p)
        return;
    while (!list_empty(&p->pods)) {
        struct pod *pod = list_entry(p->pods.next, struct pod, link);
        list_del(&pod->link);
        pod_free(pod);
    }
    free(p->root);
    free(p->state);
    free(p);
}
