#include "runtime/containers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "image/images.h"
#include "runtime/caps.h"
#include "runtime/cgroup.h"
#include "runtime/container_devices.h"
#include "runtime/container_spec.h"
#include "runtime/identity.h"
#include "runtime/logpump.h"
#include "runtime/pods.h"
#include "runtime/resources.h"
#include "runtime/rootfs.h"
#include "runtime/seccomp.h"
#include "runtime/spawn.h"
#include "util/cleanup.h"
#include "util/ids.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/persist.h"

#define RECORD_MAX (4u << 20)

struct waiter {
    struct list_node link;
    containers_done_fn done;
    void *data;
};

struct exit_ctx {
    struct containers *s;
    struct container *c;
};

struct cpriv {
    struct exit_ctx exit_ctx;
    /* The image's layers, bottom first, fixed at create: the root stays
     * buildable (and its layers kept) even if the image is removed. */
    char **chain_ids;
    struct persist_file *file;     /* container.json, rewritten at every change */
    struct persist_file *cfg_file; /* config.pb, written once at create */
    struct process_watch *watch;
    struct logpump *pump;
    int stdin_fd;
    bool rootfs_mounted;
    bool busy;
    bool stopping;
    bool exit_saving; /* exited, the record not yet on disk: Stop waits for it */
    uv_timer_t *kill_timer;
    struct list_node waiters; /* for the exit */
    char *dir, *sdir, *rootfs;
    /* what the process runs, fixed at create */
    struct process_spec spec;
    int stop_signal;
    Runtime__V1__LinuxContainerResources *resources; /* after UpdateContainerResources */
    struct seccomp_program seccomp;
    bool seccomp_built;
};

struct containers {
    uv_loop_t *loop;
    char *root, *state;
    char *empty_dir;
    struct pods *pods;
    struct images *images;
    struct cgroup_manager *cgroups;
    container_event_fn on_event;
    void *event_data;
    struct list_node list;
    int ops;
    int own_oom_score_adj;
    bool can_lower_oom;
};

static struct cpriv *P(struct container *c)
{
    return c->priv;
}

/* --- helpers ---------------------------------------------------------------- */

static void emit(struct containers *s, enum container_event ev, const struct container *c)
{
    if (s->on_event)
        s->on_event(s->event_data, ev, c);
}

int signal_from_name(const char *name)
{
    static const struct {
        const char *n;
        int v;
    } sigs[] = {
        {"ABRT", SIGABRT},     {"ALRM", SIGALRM},   {"BUS", SIGBUS},   {"CHLD", SIGCHLD}, {"CLD", SIGCHLD},
        {"CONT", SIGCONT},     {"FPE", SIGFPE},     {"HUP", SIGHUP},   {"ILL", SIGILL},   {"INT", SIGINT},
        {"IO", SIGIO},         {"IOT", SIGIOT},     {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"POLL", SIGPOLL},
        {"PROF", SIGPROF},     {"PWR", SIGPWR},     {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV}, {"STKFLT", SIGSTKFLT},
        {"STOP", SIGSTOP},     {"SYS", SIGSYS},     {"TERM", SIGTERM}, {"TRAP", SIGTRAP}, {"TSTP", SIGTSTP},
        {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
        {"VTALRM", SIGVTALRM}, {"WINCH", SIGWINCH}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    };
    if (!name || !*name)
        return -1;
    char *end;
    long n = strtol(name, &end, 10);
    if (!*end)
        return n > 0 && n < 65 ? (int)n : -1;
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        if (strcasecmp(name, sigs[i].n) == 0)
            return sigs[i].v;
    int k;
    if (strncasecmp(name, "RTMIN", 5) == 0) {
        const char *r = name + 5;
        if (!*r)
            return SIGRTMIN;
        if ((*r == '+' && sscanf(r + 1, "%d", &k) == 1) ||
            (strncasecmp(r, "PLUS", 4) == 0 && sscanf(r + 4, "%d", &k) == 1))
            return SIGRTMIN + k <= SIGRTMAX ? SIGRTMIN + k : -1;
    }
    if (strncasecmp(name, "RTMAX", 5) == 0) {
        const char *r = name + 5;
        if (!*r)
            return SIGRTMAX;
        if ((*r == '-' && sscanf(r + 1, "%d", &k) == 1) ||
            (strncasecmp(r, "MINUS", 5) == 0 && sscanf(r + 5, "%d", &k) == 1))
            return SIGRTMAX - k >= SIGRTMIN ? SIGRTMAX - k : -1;
    }
    return -1;
}

/* The CRI Signal enum, by its value name ("SIGTERM", "SIGRTMINPLUS3"). */
static int cri_signal(Runtime__V1__Signal sig)
{
    if (sig == RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT)
        return 0;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&runtime__v1__signal__descriptor, (int)sig);
    return v ? signal_from_name(v->name) : 0;
}

/* --- records ---------------------------------------------------------------- */

static const char *state_name(enum container_state st)
{
    static const char *const names[] = {"created", "running", "exited", "unknown"};
    return (unsigned)st < 4 ? names[st] : "unknown";
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static char *serialize(const struct container *c)
{
    const struct cpriv *p = c->priv;
    json_t *groups = json_array();
    for (size_t i = 0; i < c->n_groups; i++)
        json_array_append_new(groups, json_integer(c->groups[i]));
    json_t *res = json_null();
    if (p->resources) {
        size_t len = protobuf_c_message_get_packed_size(&p->resources->base);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf) {
            protobuf_c_message_pack(&p->resources->base, buf);
            /* hex: the record stays text, and resources are small */
            char *hex = malloc(len * 2 + 1);
            for (size_t i = 0; hex && i < len; i++)
                sprintf(hex + 2 * i, "%02x", buf[i]);
            if (hex) {
                hex[len * 2] = '\0';
                json_decref(res);
                res = json_string(hex);
            }
            free(hex);
            free(buf);
        }
    }
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s, s:s, s:I, s:I, s:s, "
        "s:I, s:I, s:o, s:o, s:o, s:s, s:i, s:o, s:o}",
        "version", 1, "id", c->id, "podId", c->pod_id, "name", c->name, "attempt", (json_int_t)c->attempt, "imageRef",
        c->image_ref, "logPath", c->log_path, "state", state_name(c->state), "createdAt", (json_int_t)c->created_at,
        "startedAt", (json_int_t)c->started_at, "finishedAt", (json_int_t)c->finished_at, "exitCode", c->exit_code,
        "reason", c->reason ? c->reason : "", "message", c->message ? c->message : "", "pid", (json_int_t)c->pid,
        "startTime", (json_int_t)c->start_time, "cgroupPath", c->cgroup_path ? c->cgroup_path : "", "uid",
        (json_int_t)c->uid, "gid", (json_int_t)c->gid, "groups", groups, "argv", strv_json(p->spec.argv), "env",
        strv_json(p->spec.env), "cwd", p->spec.cwd ? p->spec.cwd : "/", "stopSignal", p->stop_signal, "resources", res,
        "chainIds", strv_json(p->chain_ids));
    char *text = o ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

static void record_saved(void *data, const err_t *err)
{
    struct container *c = data;
    if (err)
        log_error("container %s: saving its record: %s", c->id, err->msg);
}

static void save(struct container *c, persist_done_fn done, void *data)
{
    _cleanup_free_ char *text = serialize(c);
    if (!text) {
        if (done) {
            err_t e = ERR_INIT;
            err_sys(&e, ENOMEM, "saving container %s", c->id);
            done(data, &e);
            err_clear(&e);
        }
        return;
    }
    persist_file_write(P(c)->file, text, strlen(text), done ? done : record_saved, done ? data : c);
}

static void container_free(struct container *c)
{
    if (!c)
        return;
    struct cpriv *p = c->priv;
    if (p) {
        process_watch_stop(p->watch);
        if (p->pump)
            logpump_finish(p->pump);
        if (p->stdin_fd >= 0)
            close(p->stdin_fd);
        persist_file_free(p->file);
        persist_file_free(p->cfg_file);
        for (size_t i = 0; p->chain_ids && p->chain_ids[i]; i++)
            free(p->chain_ids[i]);
        free(p->chain_ids);
        process_spec_free(&p->spec);
        if (p->resources)
            protobuf_c_message_free_unpacked(&p->resources->base, NULL);
        seccomp_program_free(&p->seccomp);
        free(p->dir);
        free(p->sdir);
        free(p->rootfs);
        free(p);
    }
    if (c->config)
        protobuf_c_message_free_unpacked(&c->config->base, NULL);
    free(c->name);
    free(c->image_ref);
    free(c->log_path);
    free(c->reason);
    free(c->message);
    free(c->cgroup_path);
    free(c->groups);
    free(c);
}

static struct container *container_alloc(struct containers *s, const char *id)
{
    struct container *c = calloc(1, sizeof(*c));
    struct cpriv *p = calloc(1, sizeof(*p));
    _cleanup_free_ char *rec = NULL;
    if (!c || !p) {
        free(c);
        free(p);
        return NULL;
    }
    c->priv = p;
    p->stdin_fd = -1;
    list_init(&p->waiters);
    list_init(&c->link);
    snprintf(c->id, sizeof(c->id), "%s", id);
    if (asprintf(&p->dir, "%s/containers/%s", s->root, id) < 0 ||
        asprintf(&p->sdir, "%s/containers/%s", s->state, id) < 0 || asprintf(&p->rootfs, "%s/rootfs", p->sdir) < 0 ||
        asprintf(&rec, "%s/container.json", p->dir) < 0 || !(p->file = persist_file_new(rec, 0600))) {
        container_free(c);
        return NULL;
    }
    return c;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* --- oom_score_adj ---------------------------------------------------------- */

/* Root without CAP_SYS_RESOURCE may not go below its own oom_score_adj
 * (containerd's restrict_oom_score_adj): clamp instead of failing. */
static int clamp_oom(const struct containers *s, int64_t want)
{
    if (want < -1000)
        want = -1000;
    if (want > 1000)
        want = 1000;
    if (!s->can_lower_oom && want < s->own_oom_score_adj)
        return s->own_oom_score_adj;
    return (int)want;
}

/* --- events of the process ---------------------------------------------------- */

static void finish_waiters(struct container *c, const err_t *err)
{
    while (!list_empty(&P(c)->waiters)) {
        struct waiter *w = list_entry(P(c)->waiters.next, struct waiter, link);
        list_del(&w->link);
        w->done(w->data, c, err);
        free(w);
    }
}

static void kill_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void stop_kill_timer(struct container *c)
{
    if (P(c)->kill_timer) {
        uv_close((uv_handle_t *)P(c)->kill_timer, kill_timer_closed);
        P(c)->kill_timer = NULL;
    }
}

struct cg_destroy {
    struct containers *s;
    char *path;
};

static void cg_destroy_work(void *data)
{
    struct cg_destroy *d = data;
    err_t e = ERR_INIT;
    if (cgroup_destroy(d->s->cgroups, d->path, &e) < 0)
        log_warn("removing cgroup %s: %s", d->path, e.msg);
    err_clear(&e);
}

static void cg_destroy_done(void *data, int status)
{
    (void)status;
    struct cg_destroy *d = data;
    d->s->ops--;
    free(d->path);
    free(d);
}

/* cgroup_destroy may wait for the kernel to empty the cgroup: not on the
 * loop. */
static void destroy_cgroup_later(struct containers *s, const char *path)
{
    struct cg_destroy *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = strdup(path))) {
        free(d);
        return;
    }
    d->s = s;
    s->ops++;
    if (images_queue_work(s->images, cg_destroy_work, cg_destroy_done, d) < 0) {
        s->ops--;
        free(d->path);
        free(d);
    }
}

static void attach_container_exited(struct container *c); /* the attach section, at the end */

static void exit_recorded(void *data, const err_t *err)
{
    struct container *c = data;
    if (err)
        log_error("container %s: recording its exit: %s", c->id, err->msg);
    P(c)->exit_saving = false;
    emit(P(c)->exit_ctx.s, CONTAINER_EVENT_STOPPED, c);
    attach_container_exited(c);
    finish_waiters(c, NULL);
}

static void exited(struct containers *s, struct container *c, const struct process_exit *e)
{
    struct cpriv *p = P(c);
    p->watch = NULL;
    stop_kill_timer(c);
    if (p->pump) {
        logpump_finish(p->pump);
        p->pump = NULL;
    }
    if (p->stdin_fd >= 0) {
        close(p->stdin_fd);
        p->stdin_fd = -1;
    }
    uint64_t ooms = 0;
    bool oom = c->cgroup_path && cgroup_oom_kills(s->cgroups, c->cgroup_path, &ooms, NULL) == 0 && ooms > 0;
    c->finished_at = time_now_ns();
    c->exit_code = e->known ? e->code : 255;
    if (oom) {
        set_str(&c->reason, "OOMKilled");
        if (!e->known)
            c->exit_code = 137;
    } else if (!e->known) {
        set_str(&c->reason, "Unknown");
        set_str(&c->message, "the container exited while edgecri could not collect its status");
    } else {
        set_str(&c->reason, c->exit_code == 0 ? "Completed" : "Error");
    }
    c->state = CONTAINER_EXITED;
    p->stopping = false;
    if (p->rootfs_mounted) {
        rootfs_unmount(p->rootfs);
        p->rootfs_mounted = false;
    }
    if (c->cgroup_path && *c->cgroup_path)
        destroy_cgroup_later(s, c->cgroup_path);
    log_info("container %s (%s) exited with %d (%s)", c->id, c->name, c->exit_code, c->reason);
    /* StopContainer answers once the exit is on disk: a crash right after
     * must not turn a known exit code into "Unknown". */
    p->exit_saving = true;
    p->exit_ctx.s = s; /* an adopted container that had ended never had a watch */
    p->exit_ctx.c = c;
    save(c, exit_recorded, c);
}

static void on_exit_cb(void *data, const struct process_exit *e)
{
    struct exit_ctx *x = data;
    exited(x->s, x->c, e);
}

/* The watch's context lives in the container: nothing to free when the
 * watch is stopped without an exit (shutdown with containers running). */
static int watch(struct containers *s, struct container *c, int pidfd, bool is_child, err_t *err)
{
    struct exit_ctx *x = &P(c)->exit_ctx;
    x->s = s;
    x->c = c;
    P(c)->watch = process_watch_start(s->loop, pidfd, c->pid, is_child, on_exit_cb, x, err);
    if (!P(c)->watch)
        return -ENOMEM;
    return 0;
}

/* --- CreateContainer ---------------------------------------------------------------- */

static struct container *find_name(struct containers *s, const char *pod_id, const char *name, uint32_t attempt)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (strcmp(c->pod_id, pod_id) == 0 && strcmp(c->name, name) == 0 && c->attempt == attempt)
            return c;
    }
    return NULL;
}

struct create_ctx {
    struct containers *s;
    struct container *c;
    containers_done_fn done;
    void *data;
    int writes;
    err_t err;
};

static void create_abort(struct containers *s, struct container *c)
{
    struct cpriv *p = P(c);
    if (p->rootfs_mounted)
        rootfs_unmount(p->rootfs);
    p->rootfs_mounted = false;
    fs_remove_tree(p->sdir, NULL);
    fs_remove_tree(p->dir, NULL);
    (void)s;
}

static void create_written(void *data, const err_t *err)
{
    struct create_ctx *x = data;
    if (err && !x->err.msg)
        err_set(&x->err, err->code, err->errnum, "%s", err->msg);
    if (--x->writes > 0)
        return;
    struct containers *s = x->s;
    struct container *c = x->c;
    s->ops--;
    P(c)->busy = false;
    if (x->err.msg) {
        list_del(&c->link);
        create_abort(s, c);
        x->done(x->data, NULL, &x->err);
        /* the persist files may still be in the pool: free when idle */
        container_free(c);
    } else {
        log_info("container %s (%s) created in pod %s", c->id, c->name, c->pod_id);
        emit(s, CONTAINER_EVENT_CREATED, c);
        x->done(x->data, c, NULL);
    }
    err_clear(&x->err);
    free(x);
}

static bool gid_mapped(const struct userns_map *m, gid_t gid)
{
    uint32_t h;
    return userns_to_host(m->gids, m->n_gids, gid, &h);
}

/* A container of a pod with a user namespace runs in it: the request may
 * repeat the pod's mappings (kubelet does) but not differ, and its user
 * and groups must be ids the namespace maps, or setresuid would fail at
 * start with a bare EINVAL. */
static int check_userns(const struct pod *pod, const struct container *c,
                        const Runtime__V1__LinuxContainerSecurityContext *sc, err_t *err)
{
    const Runtime__V1__NamespaceOption *nso = sc ? sc->namespace_options : NULL;
    _cleanup_free_ struct userns_map *want = NULL;
    if (nso && nso->userns_options && userns_from_cri(nso->userns_options, &want, err) < 0)
        return -EINVAL;
    const struct userns_map *m = pod->userns_map;
    if (!m) {
        if (want)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "the container asks for a user namespace, and its pod sandbox %s has none", pod->id);
        return 0;
    }
    if (nso && nso->userns_options && !want)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "the container asks for the host's user namespace, and its pod sandbox %s has its own", pod->id);
    if (want && (!userns_ranges_equal(want->uids, want->n_uids, m->uids, m->n_uids) ||
                 !userns_ranges_equal(want->gids, want->n_gids, m->gids, m->n_gids)))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "the container's user namespace mappings differ from its pod sandbox's");
    if (sc && sc->privileged)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "a privileged container cannot run in a user namespace");
    uint32_t h;
    if (!userns_to_host(m->uids, m->n_uids, c->uid, &h))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user %u is not mapped in the pod's user namespace",
                       (unsigned)c->uid);
    for (size_t i = 0; i < c->n_groups; i++)
        if (!gid_mapped(m, c->groups[i]))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "group %u is not mapped in the pod's user namespace",
                           (unsigned)c->groups[i]);
    if (!gid_mapped(m, c->gid))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "group %u is not mapped in the pod's user namespace",
                       (unsigned)c->gid);
    return 0;
}

static int mount_rootfs(struct containers *s, struct container *c, err_t *err)
{
    struct cpriv *p = P(c);
    size_t n_layers = 0;
    while (p->chain_ids && p->chain_ids[n_layers])
        n_layers++;
    if (n_layers == 0)
        return err_set(err, ERR_DATA_LOSS, EINVAL, "container %s has no image layers recorded", c->id);
    _cleanup_free_ char *upper = NULL, *work = NULL, *scratch = NULL;
    if (asprintf(&upper, "%s/upper", p->dir) < 0 || asprintf(&work, "%s/work", p->dir) < 0 ||
        asprintf(&scratch, "%s/idmapped", p->dir) < 0)
        return err_sys(err, ENOMEM, "container %s", c->id);
    struct pod *pod = pods_find(s->pods, c->pod_id);
    const struct userns_map *um = pod ? pod->userns_map : NULL;
    _cleanup_close_ int userns_fd = -1;
    if (um && (userns_fd = pods_open_userns(pod, err)) < 0)
        return -1;
    bool fresh = access(upper, F_OK) < 0;
    int r = fs_mkdir_p(upper, 0755, err);
    /* The overlay's root is the upper directory's: in a user namespace it
     * belongs to the container's root (once; later chowns inside stay). */
    uint32_t ru, rg;
    if (r == 0 && um && fresh && userns_to_host(um->uids, um->n_uids, 0, &ru) &&
        userns_to_host(um->gids, um->n_gids, 0, &rg) && chown(upper, ru, rg) < 0)
        r = err_sys(err, errno, "chown %s", upper);
    if (r == 0)
        r = fs_mkdir_p(work, 0700, err);
    if (r == 0)
        r = fs_mkdir_p(p->rootfs, 0755, err);
    if (r < 0)
        return r;
    char **lowers = calloc(n_layers, sizeof(char *));
    if (!lowers)
        return err_sys(err, ENOMEM, "container %s", c->id);
    for (size_t i = 0; i < n_layers; i++)
        if (!(lowers[i] = images_layer_path(s->images, p->chain_ids[i])))
            r = err_sys(err, ENOMEM, "container %s", c->id);
    if (r == 0 && um)
        r = rootfs_mount_idmapped((const char *const *)lowers, n_layers, userns_fd, scratch, upper, work, p->rootfs,
                                  err);
    else if (r == 0)
        r = rootfs_mount((const char *const *)lowers, n_layers, s->empty_dir, upper, work, p->rootfs, err);
    for (size_t i = 0; i < n_layers; i++)
        free(lowers[i]);
    free(lowers);
    if (r == 0)
        p->rootfs_mounted = true;
    return r;
}

static int build_seccomp(struct container *c, uint64_t caps, err_t *err)
{
    struct cpriv *p = P(c);
    if (p->seccomp_built)
        return 0;
    const Runtime__V1__LinuxContainerSecurityContext *sc = c->config->linux ? c->config->linux->security_context : NULL;
    /* Marked built only on success: a failed build must never leave the
     * container to start unconfined. */
    if (!sc || sc->privileged || !sc->seccomp ||
        sc->seccomp->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined) {
        p->seccomp_built = true;
        return 0;
    }
    int r;
    if (sc->seccomp->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault) {
        r = seccomp_build_default(caps, &p->seccomp, err);
    } else {
        const char *ref = sc->seccomp->localhost_ref ? sc->seccomp->localhost_ref : "";
        if (ref[0] != '/')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "seccomp profile \"%s\" is not an absolute path", ref);
        _cleanup_free_ char *text = NULL;
        size_t len;
        r = fs_read_file(ref, SECCOMP_PROFILE_MAX_SIZE, &text, &len, err);
        if (r == 0)
            r = seccomp_build_from_json(text, len, caps, &p->seccomp, err);
        if (r < 0)
            err_wrap(err, "seccomp profile %s", ref);
    }
    if (r == 0)
        p->seccomp_built = true;
    return r;
}

/* Capabilities of the container's process. */
static int compute_caps(const struct container *c, uint64_t *out, err_t *err)
{
    const Runtime__V1__LinuxContainerSecurityContext *sc = c->config->linux ? c->config->linux->security_context : NULL;
    if (sc && sc->privileged) {
        /* Everything we may hand on: a capability outside our own bounding
         * set (root without CAP_SYS_RESOURCE, say) would fail capset. */
        *out = caps_all() & caps_bounding_self();
        return 0;
    }
    const Runtime__V1__Capability *cap = sc ? sc->capabilities : NULL;
    return caps_compute(caps_default(), cap ? (const char *const *)cap->add_capabilities : NULL,
                        cap ? cap->n_add_capabilities : 0, cap ? (const char *const *)cap->drop_capabilities : NULL,
                        cap ? cap->n_drop_capabilities : 0, out, err);
}

void containers_create(struct containers *s, const char *pod_id, const Runtime__V1__ContainerConfig *cfg,
                       containers_done_fn done, void *data)
{
    _cleanup_err_ err_t err = ERR_INIT;
    struct pod *pod = pods_find(s->pods, pod_id);
    const char *name = cfg->metadata && cfg->metadata->name ? cfg->metadata->name : "";
    if (!pod) {
        err_set(&err, ERR_NOT_FOUND, ENOENT, "CreateContainer: pod sandbox %s not found", pod_id);
        done(data, NULL, &err);
        return;
    }
    if (pod->state != POD_READY) {
        err_set(&err, ERR_FAILED_PRECONDITION, EINVAL, "CreateContainer: pod sandbox %s is not ready", pod->id);
        done(data, NULL, &err);
        return;
    }
    if (!*name) {
        err_set(&err, ERR_INVALID_ARGUMENT, EINVAL, "CreateContainer: metadata.name is required");
        done(data, NULL, &err);
        return;
    }
    struct container *dup = find_name(s, pod->id, name, cfg->metadata->attempt);
    if (dup) {
        err_set(&err, ERR_ALREADY_EXISTS, EEXIST,
                "CreateContainer: the name %s (attempt %u) is reserved for container %s", name, cfg->metadata->attempt,
                dup->id);
        done(data, NULL, &err);
        return;
    }
    const char *image_name = cfg->image && cfg->image->image ? cfg->image->image : "";
    const struct image_record *img = images_lookup(s->images, image_name);
    if (!img) {
        err_set(&err, ERR_NOT_FOUND, ENOENT, "CreateContainer %s: image \"%s\" is not present; pull it first", name,
                image_name);
        done(data, NULL, &err);
        return;
    }
    const struct image_config *icfg = images_config(s->images, img->id);
    const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
    if (sc && sc->apparmor && sc->apparmor->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost) {
        err_set(&err, ERR_FAILED_PRECONDITION, ENOTSUP,
                "CreateContainer %s: AppArmor profile %s requested, but AppArmor is not available on this node", name,
                sc->apparmor->localhost_ref ? sc->apparmor->localhost_ref : "");
        done(data, NULL, &err);
        return;
    }
    if (sc && sc->namespace_options && sc->namespace_options->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET) {
        if (!containers_find(s, sc->namespace_options->target_id)) {
            err_set(&err, ERR_NOT_FOUND, ENOENT,
                    "CreateContainer %s: target container %s for the PID namespace not found", name,
                    sc->namespace_options->target_id ? sc->namespace_options->target_id : "");
            done(data, NULL, &err);
            return;
        }
    }

    char id[65];
    random_hex_id(id);
    struct container *c = container_alloc(s, id);
    struct create_ctx *x = calloc(1, sizeof(*x));
    if (!c || !x) {
        container_free(c);
        free(x);
        err_sys(&err, ENOMEM, "CreateContainer");
        done(data, NULL, &err);
        return;
    }
    struct cpriv *p = P(c);
    snprintf(c->pod_id, sizeof(c->pod_id), "%s", pod->id);
    c->name = strdup(name);
    c->attempt = cfg->metadata->attempt;
    c->image_ref = strdup(img->id);
    p->chain_ids = calloc(img->n_layers + 1, sizeof(char *));
    for (size_t i = 0; p->chain_ids && i < img->n_layers; i++)
        p->chain_ids[i] = strdup(img->chain_ids[i]);
    c->state = CONTAINER_CREATED;
    c->created_at = time_now_ns();
    c->reason = strdup("");
    c->message = strdup("");
    if (pod->log_directory && *pod->log_directory && cfg->log_path && *cfg->log_path) {
        if (asprintf(&c->log_path, "%s/%s", pod->log_directory, cfg->log_path) < 0)
            c->log_path = NULL;
    } else {
        c->log_path = strdup("");
    }
    /* Keep the request itself: start, exec, status and a restart use it. */
    size_t len = protobuf_c_message_get_packed_size(&cfg->base);
    _cleanup_free_ uint8_t *packed = malloc(len ? len : 1);
    if (packed) {
        protobuf_c_message_pack(&cfg->base, packed);
        c->config = runtime__v1__container_config__unpack(NULL, len, packed);
    }
    int r = 0;
    if (!c->name || !c->image_ref || !c->log_path || !c->reason || !c->message || !c->config)
        r = err_sys(&err, ENOMEM, "CreateContainer %s", name);
    if (r == 0)
        r = mount_rootfs(s, c, &err);
    /* Identity: resolved against the image's own /etc/passwd and group. */
    if (r == 0) {
        _cleanup_close_ int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct identity_request ir = {
            .image_user = icfg && icfg->user ? icfg->user : "",
            .run_as_username = sc && sc->run_as_username ? sc->run_as_username : "",
            .supplemental_groups = sc ? sc->supplemental_groups : NULL,
            .n_supplemental_groups = sc ? sc->n_supplemental_groups : 0,
            .policy = sc ? (enum supplemental_policy)sc->supplemental_groups_policy : SUPPLEMENTAL_MERGE,
        };
        if (sc && sc->run_as_user) {
            ir.has_run_as_user = true;
            ir.run_as_user = sc->run_as_user->value;
        }
        if (sc && sc->run_as_group) {
            ir.has_run_as_group = true;
            ir.run_as_group = sc->run_as_group->value;
        }
        struct identity id_ = {0};
        r = rootfd < 0 ? err_sys(&err, errno, "opening the root of container %s", name)
                       : identity_resolve(rootfd, &ir, &id_, &err);
        if (r == 0) {
            c->uid = id_.uid;
            c->gid = id_.gid;
            c->groups = id_.groups;
            c->n_groups = id_.n_groups;
            id_.groups = NULL;
            r = container_process_spec(icfg, c->config, pod->hostname, id_.home, &p->spec, &err);
            identity_free(&id_);
        }
    }
    if (r == 0) {
        p->stop_signal = cri_signal(cfg->stop_signal);
        if (!p->stop_signal && icfg && icfg->stop_signal)
            p->stop_signal = signal_from_name(icfg->stop_signal);
        if (p->stop_signal <= 0)
            p->stop_signal = SIGTERM;
    }
    if (r == 0)
        r = check_userns(pod, c, sc, &err);
    /* Capabilities and the seccomp profile are checked (and the profile
     * compiled) now, so a bad name or profile fails CreateContainer. */
    if (r == 0) {
        uint64_t caps;
        if ((r = compute_caps(c, &caps, &err)) == 0)
            r = build_seccomp(c, caps, &err);
    }
    /* The mounts are checked now (host paths, devices) for an early error;
     * they are planned again at start. */
    if (r == 0) {
        struct mount_inputs mi = {.cfg = c->config, .shm = pod->shm, .cgroup_version = 2, .userns = pod->userns_map};
        struct mount_plan mp;
        r = container_mount_plan(&mi, &mp, &err);
        if (r == 0)
            mount_plan_free(&mp);
    }
    if (r < 0) {
        err_wrap(&err, "CreateContainer %s", name);
        create_abort(s, c);
        container_free(c);
        free(x);
        done(data, NULL, &err);
        return;
    }
    x->s = s;
    x->c = c;
    x->done = done;
    x->data = data;
    x->writes = 2;
    p->busy = true;
    s->ops++;
    list_add_tail(&s->list, &c->link);
    /* config.pb once, container.json at every change */
    _cleanup_free_ char *cfg_path = NULL;
    if (asprintf(&cfg_path, "%s/config.pb", p->dir) < 0 || !(p->cfg_file = persist_file_new(cfg_path, 0600))) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "CreateContainer %s", name);
        create_written(x, &e);
        err_clear(&e);
        save(c, create_written, x);
        return;
    }
    persist_file_write(p->cfg_file, packed, len, create_written, x);
    save(c, create_written, x);
}

/* --- StartContainer ------------------------------------------------------------------ */

struct start_ctx {
    struct containers *s;
    struct container *c;
    containers_done_fn done;
    void *data;
    struct spawn_child *child;
    int fds[8];
    size_t n_fds;
    int out_fd, err_fd; /* our read ends (FIFO or pty master) */
    int stdin_w;
};

static void start_ctx_close(struct start_ctx *x)
{
    for (size_t i = 0; i < x->n_fds; i++)
        if (x->fds[i] >= 0)
            close(x->fds[i]);
    x->n_fds = 0;
}

static int keep_fd(struct start_ctx *x, int fd)
{
    if (fd >= 0 && x->n_fds < ARRAY_SIZE(x->fds))
        x->fds[x->n_fds++] = fd;
    return fd;
}

static void start_failed(struct start_ctx *x, const err_t *err)
{
    struct containers *s = x->s;
    struct container *c = x->c;
    if (x->child) {
        spawn_child_free(x->child);
        x->child = NULL;
    }
    start_ctx_close(x);
    if (x->out_fd >= 0)
        close(x->out_fd);
    if (x->err_fd >= 0)
        close(x->err_fd);
    if (x->stdin_w >= 0)
        close(x->stdin_w);
    c->state = CONTAINER_EXITED;
    c->exit_code = 128;
    c->started_at = 0;
    c->finished_at = time_now_ns();
    set_str(&c->reason, "StartError");
    set_str(&c->message, err->msg ? err->msg : "start failed");
    if (P(c)->rootfs_mounted) {
        rootfs_unmount(P(c)->rootfs);
        P(c)->rootfs_mounted = false;
    }
    if (c->cgroup_path && *c->cgroup_path)
        destroy_cgroup_later(s, c->cgroup_path);
    P(c)->busy = false;
    s->ops--;
    log_info("container %s (%s) failed to start: %s", c->id, c->name, c->message);
    save(c, NULL, NULL);
    emit(s, CONTAINER_EVENT_STOPPED, c);
    err_t e = ERR_INIT;
    err_set(&e, err->code == ERR_OK ? ERR_UNKNOWN : err->code, err->errnum, "StartContainer %s: %s", c->id,
            err->msg ? err->msg : "start failed");
    x->done(x->data, c, &e);
    err_clear(&e);
    free(x);
}

static void start_failf(struct start_ctx *x, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void start_failf(struct start_ctx *x, enum err_code code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err_t e = ERR_INIT;
    err_set(&e, code, EINVAL, "%s", msg);
    start_failed(x, &e);
    err_clear(&e);
}

static void start_recorded(void *data, const err_t *err)
{
    struct start_ctx *x = data;
    struct containers *s = x->s;
    struct container *c = x->c;
    /* The process runs whatever the disk says: failing the call would make
     * kubelet start it again beside the running one. */
    if (err)
        log_error("container %s: recording its start: %s", c->id, err->msg);
    P(c)->busy = false;
    s->ops--;
    emit(s, CONTAINER_EVENT_STARTED, c);
    x->done(x->data, c, NULL);
    free(x);
}

static void started(void *data, struct spawn_child *child, const err_t *err)
{
    struct start_ctx *x = data;
    struct containers *s = x->s;
    struct container *c = x->c;
    if (err) {
        start_failed(x, err);
        return;
    }
    c->pid = spawn_pid(child);
    c->start_time = process_start_time(c->pid);
    c->started_at = time_now_ns();
    c->state = CONTAINER_RUNNING;
    err_t e = ERR_INIT;
    int pidfd = spawn_take_pidfd(child);
    spawn_child_free(child);
    x->child = NULL;
    start_ctx_close(x);
    if (watch(s, c, pidfd, true, &e) < 0)
        log_error("container %s: %s", c->id, e.msg);
    err_clear(&e);
    if (logpump_start(s->loop, c->log_path, x->out_fd, x->err_fd, &P(c)->pump, &e) < 0) {
        log_error("container %s: %s", c->id, e.msg);
        err_clear(&e);
    }
    P(c)->stdin_fd = x->stdin_w;
    /* The container's mount namespace holds its root now: the host does not
     * need to see it. */
    if (P(c)->rootfs_mounted) {
        rootfs_unmount(P(c)->rootfs);
        P(c)->rootfs_mounted = false;
    }
    log_info("container %s (%s) started, pid %d", c->id, c->name, (int)c->pid);
    /* Answered once the record says running: a crash right after an OK
     * must not bring the container back as created while its process
     * runs. */
    save(c, start_recorded, x);
}

static int ns_fd(struct start_ctx *x, const char *path, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening namespace %s", path);
    return keep_fd(x, fd);
}

/* The cgroup v1 hierarchies to show a container (name, options). */
static size_t v1_hierarchies(char names[][64], char opts[][128], size_t max)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    char line[4096];
    size_t n = 0;
    while (n < max && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup ", 7) != 0)
            continue;
        /* mount point is field 5 */
        char *mp = line;
        for (int i = 0; i < 4 && mp; i++)
            mp = strchr(mp, ' ') ? strchr(mp, ' ') + 1 : NULL;
        if (!mp || strncmp(mp, "/sys/fs/cgroup/", 15) != 0)
            continue;
        char *end = strchr(mp, ' ');
        if (!end)
            continue;
        snprintf(names[n], 64, "%.*s", (int)(end - mp - 15), mp + 15);
        if (strchr(names[n], '/'))
            continue;
        /* super options are after "cgroup <source> " */
        char *super = strchr(sep + 10, ' ');
        if (!super)
            continue;
        super++;
        super[strcspn(super, "\n")] = '\0';
        /* keep the controller names and name=… only */
        char buf[128] = "";
        _cleanup_free_ char *copy = strdup(super);
        for (char *rest = copy, *o; copy && (o = strsep(&rest, ",")) != NULL;) {
            if (!strcmp(o, "rw") || !strcmp(o, "ro") || !strcmp(o, "relatime") || !strcmp(o, "nosuid") ||
                !strcmp(o, "nodev") || !strcmp(o, "noexec") || !strncmp(o, "release_agent", 13) ||
                !strcmp(o, "clone_children") || !strcmp(o, "xattr"))
                continue;
            size_t l = strlen(buf);
            snprintf(buf + l, sizeof(buf) - l, "%s%s", l ? "," : "", o);
        }
        if (!*buf)
            continue;
        snprintf(opts[n], 128, "%s", buf);
        n++;
    }
    fclose(f);
    return n;
}

static int open_pty(int *master, int *slave, err_t *err)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return err_sys(err, errno, "opening a pseudo-terminal");
    char name[128];
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
        int e = errno;
        close(m);
        return err_sys(err, e, "setting up a pseudo-terminal");
    }
    int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (sl < 0) {
        int e = errno;
        close(m);
        return err_sys(err, e, "opening %s", name);
    }
    *master = m;
    *slave = sl;
    return 0;
}

/* Device access for a container: one rule list (deny all, then runc's and
 * containerd's default set — the standard nodes, any mknod, ptys — and the
 * devices the request gives with their permissions; allow all when
 * privileged) goes to cgroup v1's devices controller where it is mounted
 * and, as an eBPF device program, to the container's cgroup in the cgroup2
 * hierarchy: the only enforcement on pure v2, a second one on hybrid nodes.
 * Runs before any process enters the cgroup. */
static int apply_device_rules(struct containers *s, struct container *c, bool privileged, err_t *err)
{
    _cleanup_free_ struct devfilter_rules *rules = malloc(sizeof(*rules));
    if (!rules)
        return err_sys(err, ENOMEM, "device rules of container %s", c->id);
    int r = container_device_rules(c->config, privileged, rules, err);
    return r < 0 ? r : container_devices_apply(s->cgroups, c->cgroup_path, rules, err);
}

void containers_start(struct containers *s, const char *id, containers_done_fn done, void *data)
{
    _cleanup_err_ err_t err = ERR_INIT;
    struct container *c = containers_find(s, id);
    if (!c) {
        err_set(&err, ERR_NOT_FOUND, ENOENT, "StartContainer: container %s not found", id);
        done(data, NULL, &err);
        return;
    }
    if (P(c)->busy || c->state != CONTAINER_CREATED) {
        err_set(&err, ERR_FAILED_PRECONDITION, EINVAL, "StartContainer %s: the container is %s, not created", c->id,
                P(c)->busy ? "busy" : state_name(c->state));
        done(data, c, &err);
        return;
    }
    struct pod *pod = pods_find(s->pods, c->pod_id);
    if (!pod || pod->state != POD_READY) {
        err_set(&err, ERR_FAILED_PRECONDITION, EINVAL, "StartContainer %s: its pod sandbox %s is not ready", c->id,
                c->pod_id);
        done(data, c, &err);
        return;
    }
    struct start_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        err_sys(&err, ENOMEM, "StartContainer");
        done(data, c, &err);
        return;
    }
    *x = (struct start_ctx){.s = s, .c = c, .done = done, .data = data, .out_fd = -1, .err_fd = -1, .stdin_w = -1};
    P(c)->busy = true;
    s->ops++;
    const Runtime__V1__ContainerConfig *cfg = c->config;
    const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
    const Runtime__V1__NamespaceOption *nso = sc ? sc->namespace_options : NULL;
    bool privileged = sc && sc->privileged;
    int version = cgroup_manager_version(s->cgroups);

    /* cgroup */
    const Runtime__V1__LinuxContainerResources *want =
        P(c)->resources ? P(c)->resources : (cfg->linux ? cfg->linux->resources : NULL);
    struct cri_resources res;
    if (cgroup_container_path(s->cgroups, pod->cgroup_path, c->id, &c->cgroup_path, &err) < 0 ||
        cri_resources_from(want, &res, &err) < 0) {
        start_failed(x, &err);
        return;
    }
    int r = cgroup_create(s->cgroups, c->cgroup_path, &res.r, &err);
    cri_resources_free(&res);
    if (r == 0)
        r = apply_device_rules(s, c, privileged, &err);
    if (r < 0) {
        start_failed(x, &err);
        return;
    }

    /* root filesystem (after a reboot, or a restart between create and
     * start, it has to be mounted again) */
    if (!P(c)->rootfs_mounted && mount_rootfs(s, c, &err) < 0) {
        start_failed(x, &err);
        return;
    }

    /* stdio */
    int devnull = keep_fd(x, open("/dev/null", O_RDWR | O_CLOEXEC));
    int stdio[3] = {devnull, devnull, devnull};
    if (cfg->tty) {
        int m = -1, sl = -1;
        if (open_pty(&m, &sl, &err) < 0) {
            start_failed(x, &err);
            return;
        }
        x->out_fd = m;
        keep_fd(x, sl);
        stdio[0] = stdio[1] = stdio[2] = sl;
        if (cfg->stdin)
            x->stdin_w = dup(m);
    } else {
        char path[4200];
        snprintf(path, sizeof(path), "%s/stdout", P(c)->sdir);
        if ((x->out_fd = logpump_open_fifo(path, &err)) < 0) {
            start_failed(x, &err);
            return;
        }
        stdio[1] = keep_fd(x, open(path, O_RDWR | O_CLOEXEC));
        snprintf(path, sizeof(path), "%s/stderr", P(c)->sdir);
        if ((x->err_fd = logpump_open_fifo(path, &err)) < 0) {
            start_failed(x, &err);
            return;
        }
        stdio[2] = keep_fd(x, open(path, O_RDWR | O_CLOEXEC));
        if (cfg->stdin) {
            snprintf(path, sizeof(path), "%s/stdin", P(c)->sdir);
            if ((x->stdin_w = logpump_open_fifo(path, &err)) < 0) {
                start_failed(x, &err);
                return;
            }
            stdio[0] = keep_fd(x, open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
            if (stdio[0] >= 0)
                fcntl(stdio[0], F_SETFL, fcntl(stdio[0], F_GETFL) & ~O_NONBLOCK);
        }
        if (stdio[1] < 0 || stdio[2] < 0 || (cfg->stdin && stdio[0] < 0)) {
            err_sys(&err, errno, "opening the stdio FIFOs");
            start_failed(x, &err);
            return;
        }
    }

    /* namespaces */
    struct spawn_ns join[4];
    size_t n_join = 0;
    int pidns = -1;
    if (pod->netns) {
        int fd = ns_fd(x, pod->netns, &err);
        if (fd < 0) {
            start_failed(x, &err);
            return;
        }
        join[n_join++] = (struct spawn_ns){fd, CLONE_NEWNET};
    }
    if (pod->utsns) {
        int fd = ns_fd(x, pod->utsns, &err);
        if (fd < 0) {
            start_failed(x, &err);
            return;
        }
        join[n_join++] = (struct spawn_ns){fd, CLONE_NEWUTS};
    }
    if (pod->ipcns) {
        int fd = ns_fd(x, pod->ipcns, &err);
        if (fd < 0) {
            start_failed(x, &err);
            return;
        }
        join[n_join++] = (struct spawn_ns){fd, CLONE_NEWIPC};
    }
    int userns = -1;
    if (pod->userns && (userns = keep_fd(x, pods_open_userns(pod, &err))) < 0) {
        start_failed(x, &err);
        return;
    }
    uint64_t clone_flags = CLONE_NEWNS;
    enum ns_mode pid_mode = nso ? (enum ns_mode)nso->pid : NS_MODE_CONTAINER;
    if (pid_mode == NS_MODE_POD) {
        if ((pidns = keep_fd(x, pods_open_pidns(pod, &err))) < 0) {
            start_failed(x, &err);
            return;
        }
    } else if (pid_mode == NS_MODE_TARGET) {
        struct container *t = nso->target_id ? containers_find(s, nso->target_id) : NULL;
        if (!t || t->state != CONTAINER_RUNNING) {
            start_failf(x, ERR_FAILED_PRECONDITION, "the target container %s is not running",
                        nso->target_id ? nso->target_id : "");
            return;
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)t->pid);
        if ((pidns = ns_fd(x, path, &err)) < 0) {
            start_failed(x, &err);
            return;
        }
    } else if (pid_mode != NS_MODE_NODE) {
        clone_flags |= CLONE_NEWPID;
    }
    int cgfd = version == 2 ? keep_fd(x, cgroup_open_v2(s->cgroups, c->cgroup_path, &err)) : -1;
    if (version == 2 && cgfd < 0) {
        start_failed(x, &err);
        return;
    }
    if (version == 2)
        clone_flags |= CLONE_NEWCGROUP;

    /* filesystem */
    char v1n[16][64], v1o[16][128];
    size_t n_v1 = version == 1 ? v1_hierarchies(v1n, v1o, 16) : 0;
    const char *v1_names[16], *v1_opts[16];
    for (size_t i = 0; i < n_v1; i++) {
        v1_names[i] = v1n[i];
        v1_opts[i] = v1o[i];
    }
    struct mount_inputs mi = {
        .cfg = cfg,
        .privileged = privileged,
        .readonly_rootfs = sc && sc->readonly_rootfs,
        .resolv_conf = pod->resolv_conf,
        .hosts = pod->hosts,
        .hostname = pod->hostname_file,
        .shm = pod->shm,
        .host_ipc = pod->ipc_mode == NS_MODE_NODE,
        .cgroup_version = version,
        .v1_names = v1_names,
        .v1_options = v1_opts,
        .n_v1 = n_v1,
        .userns = pod->userns_map,
        .userns_fd = userns > 0 ? userns : 0,
    };
    struct mount_plan mp;
    if (container_mount_plan(&mi, &mp, &err) < 0) {
        start_failed(x, &err);
        return;
    }

    /* security */
    uint64_t caps;
    if (compute_caps(c, &caps, &err) < 0 || build_seccomp(c, caps, &err) < 0) {
        mount_plan_free(&mp);
        start_failed(x, &err);
        return;
    }
    uint64_t ambient = 0;
    const Runtime__V1__Capability *capreq = sc ? sc->capabilities : NULL;
    for (size_t i = 0; capreq && i < capreq->n_add_ambient_capabilities; i++) {
        int n = caps_from_name(capreq->add_ambient_capabilities[i]);
        if (n < 0) {
            mount_plan_free(&mp);
            start_failf(x, ERR_INVALID_ARGUMENT, "unknown ambient capability \"%s\"",
                        capreq->add_ambient_capabilities[i]);
            return;
        }
        ambient |= 1ULL << n;
    }
    struct sock_fprog prog = {.len = P(c)->seccomp.len, .filter = P(c)->seccomp.filter};
    int64_t oom = want ? want->oom_score_adj : 0;

    struct spawn_plan plan = {
        .clone_flags = clone_flags,
        .cgroup_fd = cgfd,
        .pidns_fd = pidns,
        .join = join,
        .n_join = n_join,
        .new_cgroupns_after_release = version == 1,
        .join_userns = userns >= 0,
        .userns_fd = userns,
        .mntns_in_userns = true,
        .rootfs = P(c)->rootfs,
        .ops = mp.ops,
        .n_ops = mp.n_ops,
        .readonly_rootfs = sc && sc->readonly_rootfs,
        .set_oom_score_adj = true,
        .oom_score_adj = clamp_oom(s, oom),
        .set_identity = true,
        .uid = c->uid,
        .gid = c->gid,
        .groups = c->groups,
        .n_groups = c->n_groups,
        .set_caps = true,
        .cap_bounding = caps,
        .cap_effective = caps,
        .cap_permitted = caps | ambient,
        .cap_inheritable = ambient,
        .cap_ambient = ambient,
        .no_new_privs = sc && sc->no_new_privs && !privileged,
        .seccomp = P(c)->seccomp.filter ? &prog : NULL,
        .cwd = P(c)->spec.cwd,
        .stdio = {stdio[0], stdio[1], stdio[2]},
        .tty = cfg->tty,
        .argv = (const char *const *)P(c)->spec.argv,
        .envp = (const char *const *)P(c)->spec.env,
        .exec_paths = (const char *const *)P(c)->spec.exec_paths,
        .exec_fd = -1,
    };
    r = spawn_start(s->loop, &plan, &x->child, &err);
    mount_plan_free(&mp);
    if (r == 0 && version == 1)
        r = cgroup_attach(s->cgroups, c->cgroup_path, spawn_pid(x->child), &err);
    if (r == 0)
        r = spawn_release(x->child, started, x, &err);
    if (r < 0)
        start_failed(x, &err);
}

/* --- StopContainer -------------------------------------------------------------------- */

static void on_stop_timeout(uv_timer_t *t)
{
    struct container *c = t->data;
    if (c->state == CONTAINER_RUNNING && P(c)->watch) {
        log_info("container %s did not stop in time: SIGKILL", c->id);
        process_signal(process_watch_pidfd(P(c)->watch), SIGKILL);
    }
}

static void add_waiter(struct container *c, containers_done_fn done, void *data)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "waiting for container %s", c->id);
        done(data, c, &e);
        err_clear(&e);
        return;
    }
    w->done = done;
    w->data = data;
    list_add_tail(&P(c)->waiters, &w->link);
}

static void stop_running(struct containers *s, struct container *c, int64_t timeout_s)
{
    struct cpriv *p = P(c);
    if (!p->watch)
        return;
    int pidfd = process_watch_pidfd(p->watch);
    if (timeout_s <= 0 || p->stopping) {
        process_signal(pidfd, SIGKILL);
        return;
    }
    p->stopping = true;
    if (process_signal(pidfd, p->stop_signal) < 0) {
        process_signal(pidfd, SIGKILL);
        return;
    }
    p->kill_timer = malloc(sizeof(*p->kill_timer));
    if (!p->kill_timer) {
        process_signal(pidfd, SIGKILL);
        return;
    }
    uv_timer_init(s->loop, p->kill_timer);
    p->kill_timer->data = c;
    uv_timer_start(p->kill_timer, on_stop_timeout, (uint64_t)timeout_s * 1000, 0);
}

void containers_stop(struct containers *s, const char *id, int64_t timeout_s, containers_done_fn done, void *data)
{
    struct container *c = containers_find(s, id);
    if (!c) {
        err_t e = ERR_INIT;
        err_set(&e, ERR_NOT_FOUND, ENOENT, "StopContainer: container %s not found", id);
        done(data, NULL, &e);
        err_clear(&e);
        return;
    }
    if (c->state != CONTAINER_RUNNING) {
        /* Stopping a stopped container succeeds; a created one is made
         * exited, as containerd does. */
        if (c->state == CONTAINER_CREATED && !P(c)->busy) {
            c->state = CONTAINER_EXITED;
            c->finished_at = time_now_ns();
            set_str(&c->reason, "Error");
            set_str(&c->message, "stopped before it was started");
            if (P(c)->rootfs_mounted) {
                rootfs_unmount(P(c)->rootfs);
                P(c)->rootfs_mounted = false;
            }
            save(c, NULL, NULL);
            emit(s, CONTAINER_EVENT_STOPPED, c);
        }
        if (P(c)->exit_saving)
            add_waiter(c, done, data);
        else
            done(data, c, NULL);
        return;
    }
    add_waiter(c, done, data);
    stop_running(s, c, timeout_s);
}

/* --- RemoveContainer --------------------------------------------------------------------- */

struct remove_ctx {
    struct containers *s;
    struct container *c;
    containers_done_fn done;
    void *data;
    err_t err;
};

static void remove_work(void *data)
{
    struct remove_ctx *x = data;
    struct cpriv *p = P(x->c);
    if (fs_remove_tree(p->sdir, &x->err) == 0)
        fs_remove_tree(p->dir, &x->err);
}

static void remove_done(void *data, int status)
{
    (void)status;
    struct remove_ctx *x = data;
    struct containers *s = x->s;
    struct container *c = x->c;
    s->ops--;
    if (x->err.msg) {
        P(c)->busy = false;
        err_wrap(&x->err, "RemoveContainer %s", c->id);
        x->done(x->data, c, &x->err);
    } else {
        list_del(&c->link);
        log_info("container %s (%s) removed", c->id, c->name);
        emit(s, CONTAINER_EVENT_DELETED, c);
        x->done(x->data, NULL, NULL);
        container_free(c);
    }
    err_clear(&x->err);
    free(x);
}

/* Runs once both record files are idle (checked one after the other). */
static void remove_when_idle(void *data, const err_t *unused)
{
    (void)unused;
    struct remove_ctx *x = data;
    struct cpriv *p = P(x->c);
    if (persist_file_busy(p->file) && persist_file_when_idle(p->file, remove_when_idle, x) == 0)
        return;
    if (p->cfg_file && persist_file_busy(p->cfg_file) && persist_file_when_idle(p->cfg_file, remove_when_idle, x) == 0)
        return;
    /* The directories can be large (the writable layer): in the pool. */
    if (images_queue_work(x->s->images, remove_work, remove_done, x) < 0) {
        remove_work(x);
        x->s->ops++;
        remove_done(x, 0);
    }
}

static void remove_now(struct remove_ctx *x)
{
    struct container *c = x->c;
    if (P(c)->rootfs_mounted) {
        rootfs_unmount(P(c)->rootfs);
        P(c)->rootfs_mounted = false;
    }
    if (P(c)->pump) {
        logpump_finish(P(c)->pump);
        P(c)->pump = NULL;
    }
    /* The record's writes must be over before its directory goes. */
    remove_when_idle(x, NULL);
}

static void remove_after_exit(void *data, struct container *c, const err_t *err)
{
    (void)c;
    struct remove_ctx *x = data;
    if (err) {
        P(x->c)->busy = false;
        x->s->ops--;
        x->done(x->data, x->c, err);
        free(x);
        return;
    }
    remove_now(x);
}

void containers_remove(struct containers *s, const char *id, containers_done_fn done, void *data)
{
    struct container *c = containers_find(s, id);
    if (!c) {
        done(data, NULL, NULL); /* already gone */
        return;
    }
    if (P(c)->busy) {
        err_t e = ERR_INIT;
        err_set(&e, ERR_UNAVAILABLE, EBUSY, "RemoveContainer %s: the container is busy; try again", c->id);
        done(data, c, &e);
        err_clear(&e);
        return;
    }
    struct remove_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "RemoveContainer");
        done(data, c, &e);
        err_clear(&e);
        return;
    }
    *x = (struct remove_ctx){.s = s, .c = c, .done = done, .data = data};
    P(c)->busy = true;
    s->ops++;
    if (c->state == CONTAINER_RUNNING) {
        add_waiter(c, remove_after_exit, x);
        stop_running(s, c, 0);
        return;
    }
    remove_now(x);
}

/* --- updates ---------------------------------------------------------------------------- */

const Runtime__V1__LinuxContainerResources *container_resources(const struct container *c)
{
    const struct cpriv *p = c->priv;
    if (p->resources)
        return p->resources;
    return c->config && c->config->linux ? c->config->linux->resources : NULL;
}

int container_stop_signal(const struct container *c)
{
    const struct cpriv *p = c->priv;
    return p->stop_signal;
}

int containers_update_resources(struct containers *s, struct container *c,
                                const Runtime__V1__LinuxContainerResources *res, err_t *err)
{
    if (!res)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "no resources given");
    if (c->state == CONTAINER_RUNNING) {
        struct cri_resources cr;
        int r = cri_resources_from(res, &cr, err);
        if (r == 0)
            r = cgroup_update(s->cgroups, c->cgroup_path, &cr.r, err);
        cri_resources_free(&cr);
        if (r < 0)
            return r;
    } else if (c->state != CONTAINER_CREATED) {
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "the container is %s", state_name(c->state));
    }
    size_t len = protobuf_c_message_get_packed_size(&res->base);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return err_sys(err, ENOMEM, "updating resources");
    protobuf_c_message_pack(&res->base, buf);
    Runtime__V1__LinuxContainerResources *copy = runtime__v1__linux_container_resources__unpack(NULL, len, buf);
    if (!copy)
        return err_sys(err, ENOMEM, "updating resources");
    if (P(c)->resources)
        protobuf_c_message_free_unpacked(&P(c)->resources->base, NULL);
    P(c)->resources = copy;
    save(c, NULL, NULL);
    return 0;
}

int containers_reopen_log(struct containers *s, struct container *c, err_t *err)
{
    (void)s;
    if (c->state != CONTAINER_RUNNING || !P(c)->pump)
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "container %s is not running", c->id);
    return logpump_reopen(P(c)->pump, err);
}

/* --- ExecSync --------------------------------------------------------------------------- */

struct capture {
    int fd;
    uv_poll_t poll;
    bool open;
    uint8_t *buf;
    size_t len, cap;
};

struct exec_ctx {
    struct containers *s;
    containers_exec_fn done;
    void *data;
    struct spawn_child *child;
    struct process_watch *watch;
    struct capture out, err;
    uv_timer_t timer;
    bool timer_on;
    bool timed_out;
    bool exited;
    struct process_exit exit;
    int closing;
    size_t max;
    struct process_spec spec;
};

static void exec_closed(uv_handle_t *h)
{
    struct exec_ctx *x = h->data;
    if (--x->closing > 0)
        return;
    free(x->out.buf);
    free(x->err.buf);
    process_spec_free(&x->spec);
    free(x);
}

static void exec_end(struct exec_ctx *x, const err_t *err)
{
    struct exec_result r = {.exit_code = x->exit.code,
                            .out = x->out.buf,
                            .out_len = x->out.len,
                            .err = x->err.buf,
                            .err_len = x->err.len,
                            .timed_out = x->timed_out};
    if (x->done)
        x->done(x->data, &r, err);
    x->done = NULL;
    x->closing = 1;
    if (x->timer_on) {
        x->closing++;
        uv_close((uv_handle_t *)&x->timer, exec_closed);
    }
    struct capture *cs[] = {&x->out, &x->err};
    for (int i = 0; i < 2; i++) {
        if (cs[i]->open) {
            x->closing++;
            uv_poll_stop(&cs[i]->poll);
            cs[i]->poll.data = x;
            uv_close((uv_handle_t *)&cs[i]->poll, exec_closed);
            close(cs[i]->fd);
            cs[i]->open = false;
        } else if (cs[i]->fd >= 0) {
            close(cs[i]->fd);
        }
        cs[i]->fd = -1;
    }
    x->s->ops--;
    uv_handle_t dummy = {.data = x};
    exec_closed(&dummy);
}

static void read_capture(struct exec_ctx *x, struct capture *c)
{
    uint8_t tmp[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                uv_poll_stop(&c->poll);
                /* EOF: keep the handle for the common close path */
            }
            return;
        }
        size_t keep = c->len + (size_t)n > x->max ? x->max - c->len : (size_t)n;
        if (keep && c->len + keep > c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8192;
            while (cap < c->len + keep)
                cap *= 2;
            if (cap > x->max)
                cap = x->max;
            uint8_t *nb = realloc(c->buf, cap);
            if (!nb)
                return;
            c->buf = nb;
            c->cap = cap;
        }
        memcpy(c->buf + c->len, tmp, keep);
        c->len += keep;
    }
}

static void on_out(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct exec_ctx *x = h->data;
    read_capture(x, &x->out);
}

static void on_err(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct exec_ctx *x = h->data;
    read_capture(x, &x->err);
}

static void on_exec_exit(void *data, const struct process_exit *e)
{
    struct exec_ctx *x = data;
    x->watch = NULL;
    x->exit = *e;
    /* What the process wrote is in the pipes: take it all, even if a child
     * it left behind keeps them open. */
    read_capture(x, &x->out);
    read_capture(x, &x->err);
    if (x->timed_out) {
        err_t err = ERR_INIT;
        err_set(&err, ERR_DEADLINE_EXCEEDED, ETIMEDOUT, "ExecSync: the command timed out");
        exec_end(x, &err);
        err_clear(&err);
        return;
    }
    exec_end(x, NULL);
}

static void on_exec_timeout(uv_timer_t *t)
{
    struct exec_ctx *x = t->data;
    x->timed_out = true;
    if (x->watch)
        process_signal(process_watch_pidfd(x->watch), SIGKILL);
}

static void exec_started(void *data, struct spawn_child *child, const err_t *err)
{
    struct exec_ctx *x = data;
    if (err) {
        spawn_child_free(child);
        x->child = NULL;
        err_t e = ERR_INIT;
        err_set(&e, err->code, err->errnum, "ExecSync: %s", err->msg ? err->msg : "start failed");
        exec_end(x, &e);
        err_clear(&e);
        return;
    }
    err_t e = ERR_INIT;
    pid_t pid = spawn_pid(child);
    x->watch = process_watch_start(x->s->loop, spawn_take_pidfd(child), pid, true, on_exec_exit, x, &e);
    spawn_child_free(child);
    x->child = NULL;
    if (!x->watch) {
        exec_end(x, &e);
        err_clear(&e);
    }
}

static bool same_ns_as_ours(const char *theirs_path, const char *ours_path)
{
    char theirs[64], mine[64];
    ssize_t a = readlink(theirs_path, theirs, sizeof(theirs) - 1), b = readlink(ours_path, mine, sizeof(mine) - 1);
    return a > 0 && b > 0 && a == b && memcmp(theirs, mine, (size_t)a) == 0;
}

/* Starts a process inside a running container exactly as its own process
 * runs: its namespaces (those it does not share with us), cgroup, identity,
 * capabilities, seccomp profile and oom_score_adj. The child is created but
 * not yet released (spawn_release). */
static int exec_spawn(struct containers *s, struct container *c, const struct process_spec *spec, const int stdio[3],
                      bool tty, struct spawn_child **child, err_t *err)
{
    int fds[12];
    size_t n_fds = 0;
    static const struct {
        const char *name;
        int type;
    } nss[] = {{"ipc", CLONE_NEWIPC},
               {"uts", CLONE_NEWUTS},
               {"net", CLONE_NEWNET},
               {"cgroup", CLONE_NEWCGROUP},
               {"mnt", CLONE_NEWNS}};
    struct spawn_ns join[5];
    size_t n_join = 0;
    int r = 0;
    for (size_t i = 0; i < ARRAY_SIZE(nss) && r == 0; i++) {
        char path[64], self[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)c->pid, nss[i].name);
        snprintf(self, sizeof(self), "/proc/self/ns/%s", nss[i].name);
        if (same_ns_as_ours(path, self))
            continue; /* shared with the host: nothing to join */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            r = err_sys(err, errno, "opening %s", path);
            break;
        }
        fds[n_fds++] = fd;
        join[n_join++] = (struct spawn_ns){fd, nss[i].type};
    }
    /* The user namespace last (see spawn.h): the others need the host's
     * privileges to join. */
    int userns = -1;
    char userns_path[64];
    snprintf(userns_path, sizeof(userns_path), "/proc/%d/ns/user", (int)c->pid);
    if (r == 0 && !same_ns_as_ours(userns_path, "/proc/self/ns/user")) {
        if ((userns = open(userns_path, O_RDONLY | O_CLOEXEC)) < 0)
            r = err_sys(err, errno, "opening %s", userns_path);
        else
            fds[n_fds++] = userns;
    }
    char pidns_path[64];
    snprintf(pidns_path, sizeof(pidns_path), "/proc/%d/ns/pid", (int)c->pid);
    int pidns = r < 0 ? -1 : open(pidns_path, O_RDONLY | O_CLOEXEC);
    if (pidns >= 0)
        fds[n_fds++] = pidns;
    int version = cgroup_manager_version(s->cgroups);
    int cgfd = -1;
    if (r == 0 && version == 2 && (cgfd = r = cgroup_open_v2(s->cgroups, c->cgroup_path, err)) >= 0) {
        fds[n_fds++] = cgfd;
        r = 0;
    }
    uint64_t caps = 0;
    if (r == 0 && (r = compute_caps(c, &caps, err)) == 0)
        r = build_seccomp(c, caps, err);
    if (r < 0) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        return r;
    }
    const Runtime__V1__LinuxContainerSecurityContext *sc = c->config->linux ? c->config->linux->security_context : NULL;
    struct sock_fprog prog = {.len = P(c)->seccomp.len, .filter = P(c)->seccomp.filter};
    const Runtime__V1__LinuxContainerResources *want = container_resources(c);
    struct spawn_plan plan = {
        .cgroup_fd = cgfd,
        .pidns_fd = pidns,
        .join = join,
        .n_join = n_join,
        .join_userns = userns >= 0,
        .userns_fd = userns,
        .set_oom_score_adj = true,
        .oom_score_adj = clamp_oom(s, want ? want->oom_score_adj : 0),
        .set_identity = true,
        .uid = c->uid,
        .gid = c->gid,
        .groups = c->groups,
        .n_groups = c->n_groups,
        .set_caps = true,
        .cap_bounding = caps,
        .cap_effective = caps,
        .cap_permitted = caps,
        .no_new_privs = sc && sc->no_new_privs && !(sc->privileged),
        .seccomp = P(c)->seccomp.filter ? &prog : NULL,
        .cwd = spec->cwd,
        .stdio = {stdio[0], stdio[1], stdio[2]},
        .tty = tty,
        .argv = (const char *const *)spec->argv,
        .envp = (const char *const *)spec->env,
        .exec_paths = (const char *const *)spec->exec_paths,
        .exec_fd = -1,
    };
    r = spawn_start(s->loop, &plan, child, err);
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
    /* v1: joined before it is released, so it never runs outside. */
    if (r == 0 && version == 1 && (r = cgroup_attach(s->cgroups, c->cgroup_path, spawn_pid(*child), err)) < 0) {
        spawn_child_free(*child);
        *child = NULL;
    }
    return r;
}

void containers_exec_sync(struct containers *s, const char *id, char *const *cmd, size_t n_cmd, int64_t timeout_s,
                          size_t max_output, containers_exec_fn done, void *data)
{
    _cleanup_err_ err_t err = ERR_INIT;
    struct container *c = containers_find(s, id);
    if (!c || c->state != CONTAINER_RUNNING) {
        err_set(&err, c ? ERR_FAILED_PRECONDITION : ERR_NOT_FOUND, c ? EINVAL : ENOENT,
                c ? "ExecSync: container %s is not running" : "ExecSync: container %s not found", id);
        done(data, NULL, &err);
        return;
    }
    struct exec_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        err_sys(&err, ENOMEM, "ExecSync");
        done(data, NULL, &err);
        return;
    }
    x->s = s;
    x->done = done;
    x->data = data;
    x->max = max_output;
    x->out.fd = x->err.fd = -1;
    s->ops++;
    if (container_exec_spec(&P(c)->spec, cmd, n_cmd, &x->spec, &err) < 0) {
        exec_end(x, &err);
        return;
    }
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(errp, O_CLOEXEC | O_NONBLOCK) < 0) {
        err_sys(&err, errno, "ExecSync: creating pipes");
        if (out[0] >= 0) {
            close(out[0]);
            close(out[1]);
        }
        exec_end(x, &err);
        return;
    }
    x->out.fd = out[0];
    x->err.fd = errp[0];
    /* the child's ends block as the process expects */
    fcntl(out[1], F_SETFL, 0);
    fcntl(errp[1], F_SETFL, 0);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int stdio[3] = {devnull, out[1], errp[1]};
    int r = devnull < 0 ? err_sys(&err, errno, "ExecSync: opening /dev/null")
                        : exec_spawn(s, c, &x->spec, stdio, false, &x->child, &err);
    if (devnull >= 0)
        close(devnull);
    close(out[1]);
    close(errp[1]);
    if (r == 0) {
        struct capture *cs[] = {&x->out, &x->err};
        uv_poll_cb cbs[] = {on_out, on_err};
        for (int i = 0; i < 2; i++) {
            if (uv_poll_init(s->loop, &cs[i]->poll, cs[i]->fd) == 0) {
                cs[i]->poll.data = x;
                cs[i]->open = true;
                uv_poll_start(&cs[i]->poll, UV_READABLE, cbs[i]);
            }
        }
        if (timeout_s > 0) {
            uv_timer_init(s->loop, &x->timer);
            x->timer.data = x;
            x->timer_on = true;
            uv_timer_start(&x->timer, on_exec_timeout, (uint64_t)timeout_s * 1000, 0);
        }
        r = spawn_release(x->child, exec_started, x, &err);
    }
    if (r < 0) {
        if (x->child) {
            spawn_child_free(x->child);
            x->child = NULL;
        }
        exec_end(x, &err);
    }
}

/* --- interactive exec (for the streaming server) --------------------------------------------- */

struct exec_start_ctx {
    struct containers *s;
    containers_spawned_fn started;
    void *data;
};

static void exec_start_released(void *data, struct spawn_child *child, const err_t *err)
{
    struct exec_start_ctx *x = data;
    x->s->ops--;
    if (err) {
        x->started(x->data, -1, 0, err);
    } else {
        pid_t pid = spawn_pid(child);
        x->started(x->data, spawn_take_pidfd(child), pid, NULL);
    }
    spawn_child_free(child);
    free(x);
}

void containers_exec_start(struct containers *s, const char *id, char *const *cmd, size_t n_cmd, const int stdio[3],
                           bool tty, containers_spawned_fn started, void *data)
{
    _cleanup_err_ err_t err = ERR_INIT;
    struct container *c = containers_find(s, id);
    if (!c || c->state != CONTAINER_RUNNING) {
        err_set(&err, c ? ERR_FAILED_PRECONDITION : ERR_NOT_FOUND, c ? EINVAL : ENOENT,
                c ? "container %s is not running" : "container %s not found", id);
        started(data, -1, 0, &err);
        return;
    }
    struct exec_start_ctx *x = calloc(1, sizeof(*x));
    struct process_spec spec = {0};
    struct spawn_child *child = NULL;
    int r = x ? container_exec_spec(&P(c)->spec, cmd, n_cmd, &spec, &err) : err_sys(&err, ENOMEM, "exec");
    if (r == 0)
        r = exec_spawn(s, c, &spec, stdio, tty, &child, &err);
    process_spec_free(&spec);
    if (r == 0) {
        x->s = s;
        x->started = started;
        x->data = data;
        s->ops++;
        if ((r = spawn_release(child, exec_start_released, x, &err)) < 0) {
            s->ops--;
            spawn_child_free(child);
        }
    }
    if (r < 0) {
        free(x);
        err_wrap(&err, "exec in container %s", c->id);
        started(data, -1, 0, &err);
    }
}

/* --- pods' hooks ------------------------------------------------------------------------------ */

struct pod_op {
    struct containers *s;
    int pending;
    err_t err;
    void (*done)(void *, const err_t *);
    void *data;
};

static void pod_op_step(void *data, struct container *c, const err_t *err)
{
    (void)c;
    struct pod_op *op = data;
    if (err && !op->err.msg)
        err_set(&op->err, err->code, err->errnum, "%s", err->msg);
    if (--op->pending > 0)
        return;
    op->done(op->data, op->err.msg ? &op->err : NULL);
    err_clear(&op->err);
    free(op);
}

static void for_pod(struct containers *s, const char *pod_id, bool remove, int64_t timeout_s,
                    void (*done)(void *, const err_t *), void *data)
{
    struct pod_op *op = calloc(1, sizeof(*op));
    if (!op) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "pod containers");
        done(data, &e);
        err_clear(&e);
        return;
    }
    op->s = s;
    op->done = done;
    op->data = data;
    op->pending = 1;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (strcmp(c->pod_id, pod_id) != 0)
            continue;
        op->pending++;
        if (remove)
            containers_remove(s, c->id, pod_op_step, op);
        else
            containers_stop(s, c->id, timeout_s, pod_op_step, op);
    }
    pod_op_step(op, NULL, NULL);
}

void containers_stop_pod(void *s, const char *pod_id, int64_t timeout_s, void (*done)(void *, const err_t *),
                         void *data)
{
    for_pod(s, pod_id, false, timeout_s, done, data);
}

void containers_remove_pod(void *s, const char *pod_id, void (*done)(void *, const err_t *), void *data)
{
    for_pod(s, pod_id, true, 0, done, data);
}

/* --- lookups ------------------------------------------------------------------------------------ */

struct container *containers_find(struct containers *s, const char *id)
{
    if (!id || !*id)
        return NULL;
    size_t n = strlen(id);
    struct container *found = NULL;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (strcmp(c->id, id) == 0)
            return c;
        if (strncmp(c->id, id, n) == 0) {
            if (found)
                return NULL;
            found = c;
        }
    }
    return found;
}

struct list_node *containers_list(struct containers *s)
{
    return &s->list;
}

bool containers_use_layer(void *sv, const char *chain_id)
{
    struct containers *s = sv;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        char **ids = P(c)->chain_ids;
        for (size_t i = 0; ids && ids[i]; i++)
            if (strcmp(ids[i], chain_id) == 0)
                return true;
    }
    return false;
}

bool containers_busy(const struct containers *s)
{
    if (s->ops > 0)
        return true;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, (struct list_node *)&s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (persist_file_busy(P(c)->file) || (P(c)->cfg_file && persist_file_busy(P(c)->cfg_file)))
            return true;
    }
    return false;
}

/* --- startup: records and adoption -------------------------------------------------------------- */

static char **strv_from(json_t *a)
{
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; v && i < n; i++)
        v[i] = strdup(json_string_value(json_array_get(a, i)) ?: "");
    return v;
}

static struct container *load_one(struct containers *s, const char *id, err_t *err)
{
    _cleanup_free_ char *path = NULL, *text = NULL, *cfgpath = NULL, *cfgbytes = NULL;
    size_t len, cfglen;
    if (asprintf(&path, "%s/containers/%s/container.json", s->root, id) < 0 ||
        asprintf(&cfgpath, "%s/containers/%s/config.pb", s->root, id) < 0)
        return NULL;
    if (fs_read_file(path, RECORD_MAX, &text, &len, err) < 0 ||
        fs_read_file(cfgpath, RECORD_MAX, &cfgbytes, &cfglen, err) < 0)
        return NULL;
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *rid, *pod, *name, *image, *logp, *state, *reason, *message, *cg, *cwd;
    json_int_t attempt, created, started, finished, pid, start_time, uid, gid;
    int exit_code, stop_signal;
    json_t *groups, *argv, *env, *res;
    if (!o ||
        json_unpack(o,
                    "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s, s:s, s:I, s:I, s:s, s:I, "
                    "s:I, s:o, s:o, s:o, s:s, s:i, s:o}",
                    "id", &rid, "podId", &pod, "name", &name, "attempt", &attempt, "imageRef", &image, "logPath", &logp,
                    "state", &state, "createdAt", &created, "startedAt", &started, "finishedAt", &finished, "exitCode",
                    &exit_code, "reason", &reason, "message", &message, "pid", &pid, "startTime", &start_time,
                    "cgroupPath", &cg, "uid", &uid, "gid", &gid, "groups", &groups, "argv", &argv, "env", &env, "cwd",
                    &cwd, "stopSignal", &stop_signal, "resources", &res) < 0 ||
        strcmp(rid, id) != 0) {
        json_decref(o);
        err_set(err, ERR_DATA_LOSS, EINVAL, "%s is damaged", path);
        return NULL;
    }
    struct container *c = container_alloc(s, id);
    if (!c) {
        json_decref(o);
        return NULL;
    }
    struct cpriv *p = P(c);
    snprintf(c->pod_id, sizeof(c->pod_id), "%s", pod);
    c->name = strdup(name);
    c->attempt = (uint32_t)attempt;
    c->image_ref = strdup(image);
    json_t *chains = json_object_get(o, "chainIds");
    if (json_is_array(chains))
        p->chain_ids = strv_from(chains);
    c->log_path = strdup(logp);
    c->state = !strcmp(state, "created")   ? CONTAINER_CREATED
               : !strcmp(state, "running") ? CONTAINER_RUNNING
               : !strcmp(state, "exited")  ? CONTAINER_EXITED
                                           : CONTAINER_UNKNOWN;
    c->created_at = created;
    c->started_at = started;
    c->finished_at = finished;
    c->exit_code = exit_code;
    c->reason = strdup(reason);
    c->message = strdup(message);
    c->pid = (pid_t)pid;
    c->start_time = (uint64_t)start_time;
    c->cgroup_path = strdup(cg);
    c->uid = (uid_t)uid;
    c->gid = (gid_t)gid;
    c->n_groups = json_array_size(groups);
    c->groups = calloc(c->n_groups ? c->n_groups : 1, sizeof(gid_t));
    for (size_t i = 0; c->groups && i < c->n_groups; i++)
        c->groups[i] = (gid_t)json_integer_value(json_array_get(groups, i));
    p->spec.argv = strv_from(argv);
    p->spec.argc = json_array_size(argv);
    p->spec.env = strv_from(env);
    p->spec.n_env = json_array_size(env);
    p->spec.cwd = strdup(cwd);
    p->spec.exec_paths = p->spec.argv && p->spec.argv[0] ? exec_candidates(p->spec.argv[0], p->spec.env) : NULL;
    p->stop_signal = stop_signal > 0 ? stop_signal : SIGTERM;
    if (json_is_string(res)) {
        const char *hex = json_string_value(res);
        size_t hl = strlen(hex);
        _cleanup_free_ uint8_t *bytes = malloc(hl / 2 + 1);
        for (size_t i = 0; bytes && i + 1 < hl; i += 2)
            sscanf(hex + i, "%2hhx", &bytes[i / 2]);
        if (bytes)
            p->resources = runtime__v1__linux_container_resources__unpack(NULL, hl / 2, bytes);
    }
    c->config = runtime__v1__container_config__unpack(NULL, cfglen, (const uint8_t *)cfgbytes);
    json_decref(o);
    if (!c->name || !c->image_ref || !c->log_path || !c->reason || !c->message || !c->cgroup_path || !c->config ||
        !p->spec.argv || !p->spec.env || !p->spec.cwd || !p->spec.exec_paths) {
        container_free(c);
        err_set(err, ERR_DATA_LOSS, EINVAL, "%s is damaged", path);
        return NULL;
    }
    return c;
}

static void adopt(struct containers *s, struct container *c)
{
    int pidfd = -1;
    err_t e = ERR_INIT;
    if (process_adopt(c->pid, c->start_time, &pidfd, &e) < 0) {
        err_clear(&e);
        log_warn("container %s (%s) ended while edgecri was away", c->id, c->name);
        struct process_exit unknown = {0};
        exited(s, c, &unknown);
        return;
    }
    if (watch(s, c, pidfd, false, &e) < 0) {
        log_error("container %s: %s", c->id, e.msg);
        err_clear(&e);
    }
    /* Its output went into the FIFOs meanwhile: read on. */
    char path[4200];
    int out = -1, er = -1;
    if (!c->config->tty) {
        snprintf(path, sizeof(path), "%s/stdout", P(c)->sdir);
        out = logpump_open_fifo(path, NULL);
        snprintf(path, sizeof(path), "%s/stderr", P(c)->sdir);
        er = logpump_open_fifo(path, NULL);
        if (c->config->stdin) {
            snprintf(path, sizeof(path), "%s/stdin", P(c)->sdir);
            P(c)->stdin_fd = logpump_open_fifo(path, NULL);
        }
    }
    if (out >= 0 && logpump_start(s->loop, c->log_path, out, er, &P(c)->pump, &e) < 0) {
        log_warn("container %s: %s", c->id, e.msg);
        err_clear(&e);
    }
    log_info("container %s (%s) adopted again, pid %d", c->id, c->name, (int)c->pid);
}

int containers_open(uv_loop_t *loop, const struct containers_options *opts, struct containers **out, err_t *err)
{
    struct containers *s = calloc(1, sizeof(*s));
    if (!s)
        return err_sys(err, ENOMEM, "opening the container store");
    s->loop = loop;
    s->pods = opts->pods;
    s->images = opts->images;
    s->cgroups = opts->cgroups;
    s->on_event = opts->on_event;
    s->event_data = opts->event_data;
    list_init(&s->list);
    s->root = strdup(opts->root);
    s->state = strdup(opts->state);
    int r = 0;
    _cleanup_free_ char *dir = NULL, *sdir = NULL;
    if (!s->root || !s->state || asprintf(&dir, "%s/containers", s->root) < 0 ||
        asprintf(&sdir, "%s/containers", s->state) < 0 || asprintf(&s->empty_dir, "%s/empty", dir) < 0)
        r = err_sys(err, ENOMEM, "opening the container store");
    if (r == 0)
        r = fs_mkdir_p(s->empty_dir, 0755, err);
    if (r == 0)
        r = fs_mkdir_p(sdir, 0711, err);
    if (r < 0) {
        containers_free(s);
        return r;
    }
    FILE *f = fopen("/proc/self/oom_score_adj", "re");
    if (f) {
        if (fscanf(f, "%d", &s->own_oom_score_adj) != 1)
            s->own_oom_score_adj = 0;
        fclose(f);
    }
    /* CAP_SYS_RESOURCE (24) in our effective set? */
    f = fopen("/proc/self/status", "re");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "CapEff:", 7) == 0)
            s->can_lower_oom = (strtoull(line + 7, NULL, 16) >> 24) & 1;
    if (f)
        fclose(f);

    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strlen(de->d_name) != 64)
            continue;
        err_t e = ERR_INIT;
        struct container *c = load_one(s, de->d_name, &e);
        if (!c) {
            log_warn("container %s: %s; removing what is left of it", de->d_name, e.msg ? e.msg : "unreadable");
            err_clear(&e);
            _cleanup_free_ char *cdir = NULL;
            if (asprintf(&cdir, "%s/%s", dir, de->d_name) >= 0)
                fs_remove_tree(cdir, NULL);
            continue;
        }
        list_add_tail(&s->list, &c->link);
    }
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->list)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (c->state == CONTAINER_RUNNING)
            adopt(s, c);
    }
    *out = s;
    return 0;
}

void containers_free(struct containers *s)
{
    if (!s)
        return;
    while (!list_empty(&s->list)) {
        struct container *c = list_entry(s->list.next, struct container, link);
        list_del(&c->link);
        /* Running containers keep running: only our side goes. */
        container_free(c);
    }
    free(s->root);
    free(s->state);
    free(s->empty_dir);
    free(s);
}

/* --- attach (for the streaming server) ------------------------------------------------------------ */

/* The log pump has a single tap: it points at the container, and this
 * list fans each chunk out to every attached client of that container. */
struct container_attach {
    struct list_node link;
    struct container *c;
    containers_attach_out_fn out;
    containers_attach_end_fn end;
    void *data;
    bool detached;
};

static struct list_node attaches = {&attaches, &attaches};
static int attach_dispatching;

static void attach_reap(void)
{
    if (attach_dispatching)
        return;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &attaches)
    {
        struct container_attach *a = list_entry(pos, struct container_attach, link);
        if (a->detached) {
            list_del(&a->link);
            free(a);
        }
    }
}

static bool attach_has(const struct container *c)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &attaches)
    {
        struct container_attach *a = list_entry(pos, struct container_attach, link);
        if (a->c == c && !a->detached)
            return true;
    }
    return false;
}

static void attach_tap(void *data, int stream, const uint8_t *buf, size_t len)
{
    struct container *c = data;
    attach_dispatching++;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &attaches)
    {
        struct container_attach *a = list_entry(pos, struct container_attach, link);
        if (a->c == c && !a->detached)
            a->out(a->data, stream, buf, len);
    }
    attach_dispatching--;
    attach_reap();
}

/* Called by exited(), after the pump's last output. */
static void attach_container_exited(struct container *c)
{
    attach_dispatching++;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &attaches)
    {
        struct container_attach *a = list_entry(pos, struct container_attach, link);
        if (a->c == c && !a->detached) {
            a->detached = true;
            a->end(a->data);
        }
    }
    attach_dispatching--;
    attach_reap();
}

struct container_attach *containers_attach(struct containers *s, const char *id, containers_attach_out_fn out,
                                           containers_attach_end_fn end, void *data, int *stdin_fd, err_t *err)
{
    struct container *c = containers_find(s, id);
    *stdin_fd = -1;
    if (!c) {
        err_set(err, ERR_NOT_FOUND, ENOENT, "container %s not found", id);
        return NULL;
    }
    if (c->state != CONTAINER_RUNNING || !P(c)->pump) {
        err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "container %s is not running", c->id);
        return NULL;
    }
    struct container_attach *a = calloc(1, sizeof(*a));
    if (!a) {
        err_sys(err, ENOMEM, "attaching to container %s", c->id);
        return NULL;
    }
    if (P(c)->stdin_fd >= 0 && (*stdin_fd = fcntl(P(c)->stdin_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        err_sys(err, errno, "attaching to container %s", c->id);
        free(a);
        return NULL;
    }
    a->c = c;
    a->out = out;
    a->end = end;
    a->data = data;
    list_add_tail(&attaches, &a->link);
    logpump_set_tap(P(c)->pump, attach_tap, c);
    return a;
}

void containers_detach(struct container_attach *a)
{
    if (!a || a->detached)
        return;
    a->detached = true;
    struct container *c = a->c;
    if (!attach_has(c) && P(c)->pump)
        logpump_set_tap(P(c)->pump, NULL, NULL);
    attach_reap();
}
