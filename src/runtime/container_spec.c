#include "runtime/container_spec.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util/cleanup.h"

const char *const default_masked_paths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    NULL,
};

const char *const default_readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

/* --- string vectors -------------------------------------------------------- */

struct strv {
    char **v;
    size_t n, cap;
    bool oom;
};

static void strv_push(struct strv *s, const char *x)
{
    if (s->oom)
        return;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **nv = realloc(s->v, cap * sizeof(char *));
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(x))) {
        s->oom = true;
        return;
    }
    s->n++;
    s->v[s->n] = NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void process_spec_free(struct process_spec *p)
{
    strv_free(p->argv);
    strv_free(p->env);
    strv_free(p->exec_paths);
    free(p->cwd);
    memset(p, 0, sizeof(*p));
}

/* --- environment -------------------------------------------------------------- */

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Sets KEY=VALUE, replacing an earlier KEY. */
static void env_set(struct strv *env, const char *kv)
{
    size_t k = key_len(kv);
    for (size_t i = 0; i < env->n; i++) {
        if (key_len(env->v[i]) == k && strncmp(env->v[i], kv, k) == 0) {
            char *dup = strdup(kv);
            if (!dup) {
                env->oom = true;
                return;
            }
            free(env->v[i]);
            env->v[i] = dup;
            return;
        }
    }
    strv_push(env, kv);
}

static bool env_has(const struct strv *env, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i < env->n; i++)
        if (key_len(env->v[i]) == k && strncmp(env->v[i], key, k) == 0)
            return true;
    return false;
}

static const char *env_get(char *const *env, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (key_len(env[i]) == k && strncmp(env[i], key, k) == 0 && env[i][k] == '=')
            return env[i] + k + 1;
    return NULL;
}

char **exec_candidates(const char *argv0, char *const *env)
{
    struct strv out = {0};
    if (strchr(argv0, '/')) {
        strv_push(&out, argv0);
        return out.oom ? (strv_free(out.v), NULL) : out.v;
    }
    const char *path = env_get(env, "PATH");
    if (!path)
        path = DEFAULT_PATH_ENV + 5;
    _cleanup_free_ char *copy = strdup(path);
    for (char *rest = copy, *dir; copy && (dir = strsep(&rest, ":")) != NULL;) {
        /* An empty PATH entry means the working directory. */
        char *full = NULL;
        if (asprintf(&full, "%s/%s", *dir ? dir : ".", argv0) < 0) {
            out.oom = true;
            break;
        }
        strv_push(&out, full);
        free(full);
    }
    if (out.oom || !copy) {
        strv_free(out.v);
        return NULL;
    }
    return out.v;
}

int container_process_spec(const struct image_config *img, const Runtime__V1__ContainerConfig *cfg,
                           const char *hostname, const char *home, struct process_spec *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *name = cfg->metadata && cfg->metadata->name ? cfg->metadata->name : "";
    struct strv argv = {0}, env = {0};
    if (cfg->n_command) {
        for (size_t i = 0; i < cfg->n_command; i++)
            strv_push(&argv, cfg->command[i]);
        for (size_t i = 0; i < cfg->n_args; i++)
            strv_push(&argv, cfg->args[i]);
    } else {
        /* An Entrypoint of exactly [""] means "none" (an image's way to
         * reset its base's), as containerd and moby read it. */
        bool no_entrypoint = img && img->n_entrypoint == 1 && !img->entrypoint[0][0];
        for (size_t i = 0; img && !no_entrypoint && i < img->n_entrypoint; i++)
            strv_push(&argv, img->entrypoint[i]);
        if (cfg->n_args)
            for (size_t i = 0; i < cfg->n_args; i++)
                strv_push(&argv, cfg->args[i]);
        else
            for (size_t i = 0; img && i < img->n_cmd; i++)
                strv_push(&argv, img->cmd[i]);
    }
    if (!argv.oom && (argv.n == 0 || !argv.v[0][0])) {
        strv_free(argv.v);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "container %s: no command: neither the request nor the image gives one", name);
    }
    /* An image entry without "=" unsets a variable (containerd's reading);
     * with nothing before the image's own, there is nothing to unset. */
    for (size_t i = 0; img && i < img->n_env; i++)
        if (strchr(img->env[i], '='))
            env_set(&env, img->env[i]);
    for (size_t i = 0; i < cfg->n_envs; i++) {
        const Runtime__V1__KeyValue *kv = cfg->envs[i];
        if (!kv->key || !*kv->key || strchr(kv->key, '=')) {
            strv_free(argv.v);
            strv_free(env.v);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "container %s: invalid environment variable name \"%s\"",
                           name, kv->key ? kv->key : "");
        }
        /* CRI's KeyValue.value is bytes: a NUL inside cannot go into an
         * environment string. */
        if (kv->value.len && memchr(kv->value.data, '\0', kv->value.len)) {
            strv_free(argv.v);
            strv_free(env.v);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "container %s: environment variable %s contains NUL",
                           name, kv->key);
        }
        char *line = NULL;
        if (asprintf(&line, "%s=%.*s", kv->key, (int)kv->value.len, (const char *)kv->value.data) < 0) {
            env.oom = true;
            break;
        }
        env_set(&env, line);
        free(line);
    }
    if (!env_has(&env, "PATH"))
        env_set(&env, DEFAULT_PATH_ENV);
    if (hostname && *hostname && !env_has(&env, "HOSTNAME")) {
        char *line = NULL;
        if (asprintf(&line, "HOSTNAME=%s", hostname) >= 0) {
            env_set(&env, line);
            free(line);
        }
    }
    if (cfg->tty && !env_has(&env, "TERM"))
        env_set(&env, "TERM=xterm");
    if (!env_has(&env, "HOME")) {
        char *line = NULL;
        if (asprintf(&line, "HOME=%s", home && *home ? home : "/") >= 0) {
            env_set(&env, line);
            free(line);
        }
    }
    const char *cwd = cfg->working_dir && *cfg->working_dir ? cfg->working_dir
                      : img && img->working_dir             ? img->working_dir
                                                            : "/";
    if (cwd[0] != '/') {
        strv_free(argv.v);
        strv_free(env.v);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "container %s: working directory \"%s\" is not absolute",
                       name, cwd);
    }
    out->argv = argv.v;
    out->argc = argv.n;
    out->env = env.v;
    out->n_env = env.n;
    out->cwd = strdup(cwd);
    out->exec_paths = out->argv ? exec_candidates(out->argv[0], out->env) : NULL;
    if (argv.oom || env.oom || !out->cwd || !out->exec_paths) {
        process_spec_free(out);
        return err_sys(err, ENOMEM, "container %s", name);
    }
    return 0;
}

int container_exec_spec(const struct process_spec *container, char *const *cmd, size_t n_cmd, struct process_spec *out,
                        err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (n_cmd == 0 || !cmd[0] || !*cmd[0])
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "no command to execute");
    struct strv argv = {0}, env = {0};
    for (size_t i = 0; i < n_cmd; i++)
        strv_push(&argv, cmd[i]);
    for (size_t i = 0; i < container->n_env; i++)
        strv_push(&env, container->env[i]);
    out->argv = argv.v;
    out->argc = argv.n;
    out->env = env.v;
    out->n_env = env.n;
    out->cwd = strdup(container->cwd ? container->cwd : "/");
    out->exec_paths = out->argv ? exec_candidates(out->argv[0], out->env) : NULL;
    if (argv.oom || env.oom || !out->cwd || !out->exec_paths) {
        process_spec_free(out);
        return err_sys(err, ENOMEM, "preparing the command");
    }
    return 0;
}

/* --- mounts --------------------------------------------------------------------- */

struct plan_builder {
    struct mount_plan *p;
    size_t cap, owned_cap;
    bool oom;
};

static const char *own(struct plan_builder *b, const char *s)
{
    if (!s || b->oom)
        return s;
    if (b->p->n_owned == b->owned_cap) {
        size_t cap = b->owned_cap ? b->owned_cap * 2 : 64;
        char **nv = realloc(b->p->owned, cap * sizeof(char *));
        if (!nv) {
            b->oom = true;
            return s;
        }
        b->p->owned = nv;
        b->owned_cap = cap;
    }
    char *dup = strdup(s);
    if (!dup) {
        b->oom = true;
        return s;
    }
    b->p->owned[b->p->n_owned++] = dup;
    return dup;
}

static void add(struct plan_builder *b, struct spawn_op op)
{
    if (b->oom)
        return;
    if (b->p->n_ops == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        struct spawn_op *nv = realloc(b->p->ops, cap * sizeof(*nv));
        if (!nv) {
            b->oom = true;
            return;
        }
        b->p->ops = nv;
        b->cap = cap;
    }
    op.source = own(b, op.source);
    op.target = own(b, op.target);
    op.fstype = own(b, op.fstype);
    op.data = own(b, op.data);
    b->p->ops[b->p->n_ops++] = op;
}

void mount_plan_free(struct mount_plan *p)
{
    for (size_t i = 0; i < p->n_owned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->ops);
    memset(p, 0, sizeof(*p));
}

static bool has_mount_at(const Runtime__V1__ContainerConfig *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n_mounts; i++)
        if (cfg->mounts[i]->container_path && strcmp(cfg->mounts[i]->container_path, path) == 0)
            return true;
    return false;
}

static bool clean_container_path(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
        return false;
    for (const char *c = p; *c; c++)
        if (c[0] == '/' && c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))
            return false;
    return true;
}

static void standard_devices(struct plan_builder *b)
{
    static const struct {
        const char *name;
        unsigned major, minor;
    } devs[] = {{"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
        add(b, (struct spawn_op){.kind = SPAWN_OP_MKNOD,
                                 .target = devs[i].name,
                                 .mode = S_IFCHR | 0666,
                                 .dev = makedev(devs[i].major, devs[i].minor)});
    static const struct {
        const char *link, *to;
    } links[] = {{"/dev/fd", "/proc/self/fd"},       {"/dev/stdin", "/proc/self/fd/0"},
                 {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"},
                 {"/dev/ptmx", "pts/ptmx"},          {"/dev/core", "/proc/kcore"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++)
        add(b, (struct spawn_op){.kind = SPAWN_OP_SYMLINK, .source = links[i].to, .target = links[i].link});
}

static size_t path_depth(const char *p)
{
    size_t n = 0;
    for (; p && *p; p++)
        n += *p == '/';
    return n;
}

/* The order binds are made in: shallower container paths first, request
 * order among equals (containerd's stable sort), so /data never hides
 * /data/cache whatever order kubelet lists them in. */
static size_t *mount_order(const Runtime__V1__ContainerConfig *cfg)
{
    size_t *order = calloc(cfg->n_mounts ? cfg->n_mounts : 1, sizeof(*order));
    if (!order)
        return NULL;
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        size_t d = path_depth(cfg->mounts[i]->container_path), j = i;
        for (; j > 0 && path_depth(cfg->mounts[order[j - 1]]->container_path) > d; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    return order;
}

/* kubelet gives every mount of a pod with its own user namespace the
 * pod's mappings (containerd idmaps them so): files owned by the host's
 * root show as the container's root. Only the pod's mapping is offered,
 * through the pod's user namespace. */
static int idmapped_mount_check(const struct mount_inputs *in, const Runtime__V1__Mount *m, err_t *err)
{
    const char *path = m->container_path;
    if (!in->userns)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "mount %s: uid/gid mappings (an idmapped mount) need the pod's user namespace, and the pod has "
                       "none",
                       path);
    struct userns_range uids[USERNS_MAX_MAPPINGS], gids[USERNS_MAX_MAPPINGS];
    size_t nu = 0, ng = 0;
    if (userns_ranges_from_cri(m->uidmappings, m->n_uidmappings, uids, &nu, "uid", err) < 0 ||
        userns_ranges_from_cri(m->gidmappings, m->n_gidmappings, gids, &ng, "gid", err) < 0) {
        err_wrap(err, "mount %s", path);
        return -EINVAL;
    }
    if (!userns_ranges_equal(uids, nu, in->userns->uids, in->userns->n_uids) ||
        !userns_ranges_equal(gids, ng, in->userns->gids, in->userns->n_gids))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "mount %s: its uid/gid mappings differ from the pod's user namespace (an idmapped mount "
                       "takes the pod's)",
                       path);
    return 0;
}

static int cri_mounts(struct plan_builder *b, const struct mount_inputs *in, err_t *err)
{
    const Runtime__V1__ContainerConfig *cfg = in->cfg;
    _cleanup_free_ size_t *order = mount_order(cfg);
    if (!order)
        return err_sys(err, ENOMEM, "planning mounts");
    for (size_t k = 0; k < cfg->n_mounts; k++) {
        size_t i = order[k];
        const Runtime__V1__Mount *m = cfg->mounts[i];
        if (!clean_container_path(m->container_path))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "mount %zu: container path \"%s\" is not a clean absolute path", i,
                           m->container_path ? m->container_path : "");
        if (m->image && m->image->image && *m->image->image)
            return err_set(err, ERR_UNIMPLEMENTED, ENOTSUP, "mount %s: image volumes are not supported by edgecri yet",
                           m->container_path);
        bool idmap = m->n_uidmappings || m->n_gidmappings;
        if (idmap && idmapped_mount_check(in, m, err) < 0)
            return -EINVAL;
        if (!m->host_path || m->host_path[0] != '/')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "mount %s: host path \"%s\" is not absolute",
                           m->container_path, m->host_path ? m->host_path : "");
        /* Host symlinks are followed on the host, as containerd does; a
         * missing host path is an error rather than a surprise directory. */
        char real[PATH_MAX];
        if (!realpath(m->host_path, real))
            return err_sys(err, errno, "mount %s: host path %s", m->container_path, m->host_path);
        struct stat st;
        if (stat(real, &st) < 0)
            return err_sys(err, errno, "mount %s: host path %s", m->container_path, real);
        unsigned long prop = 0;
        switch (m->propagation) {
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE:
            prop = MS_PRIVATE | MS_REC;
            break;
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER:
            prop = MS_SLAVE | MS_REC;
            break;
        case RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL:
            prop = MS_SHARED | MS_REC;
            break;
        default:
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "mount %s: unknown propagation %d", m->container_path,
                           (int)m->propagation);
        }
        if (m->recursive_read_only && !m->readonly)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "mount %s: recursive_read_only needs readonly",
                           m->container_path);
        /* Mounts propagating in later could not be made read-only. */
        if (m->recursive_read_only && m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "mount %s: recursive_read_only needs private propagation",
                           m->container_path);
        add(b, (struct spawn_op){
                   .kind = SPAWN_OP_BIND,
                   .source = real,
                   .target = m->container_path,
                   .flags = m->readonly ? MS_RDONLY : 0,
                   .propagation = prop,
                   .recursive = true,
                   .create_file = !S_ISDIR(st.st_mode),
                   .idmap_userns_fd = idmap ? in->userns_fd : 0,
               });
        if (!b->oom && m->recursive_read_only)
            b->p->ops[b->p->n_ops - 1].recursive_readonly = true;
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const Runtime__V1__Device *d = cfg->devices[i];
        if (!clean_container_path(d->container_path) || !d->host_path || d->host_path[0] != '/')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device %zu: invalid paths", i);
        char real[PATH_MAX];
        struct stat st;
        if (!realpath(d->host_path, real) || stat(real, &st) < 0)
            return err_sys(err, errno, "device %s: host path %s", d->container_path, d->host_path);
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device %s: %s is not a device node", d->container_path,
                           real);
        const char *perm = d->permissions && *d->permissions ? d->permissions : "rwm";
        if (strspn(perm, "rwm") != strlen(perm))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device %s: invalid permissions \"%s\"",
                           d->container_path, perm);
        add(b, (struct spawn_op){.kind = SPAWN_OP_BIND,
                                 .source = real,
                                 .target = d->container_path,
                                 .flags = strchr(perm, 'w') ? 0 : MS_RDONLY,
                                 .create_file = true});
    }
    return 0;
}

int container_mount_plan(const struct mount_inputs *in, struct mount_plan *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    struct plan_builder b = {.p = out};
    const Runtime__V1__ContainerConfig *cfg = in->cfg;
    const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    /* These are mounted from the host's side: with a user namespace their
     * owner ids are given as the host's ids of the container's root and tty
     * group, so they look as they would without one. */
    char dev_options[96] = "mode=755,size=65536k", devpts_options[96] = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    uint32_t root_uid, root_gid, tty_gid;
    if (in->userns && userns_to_host(in->userns->uids, in->userns->n_uids, 0, &root_uid) &&
        userns_to_host(in->userns->gids, in->userns->n_gids, 0, &root_gid)) {
        snprintf(dev_options, sizeof(dev_options), "mode=755,size=65536k,uid=%u,gid=%u", root_uid, root_gid);
        if (userns_to_host(in->userns->gids, in->userns->n_gids, 5, &tty_gid))
            snprintf(devpts_options, sizeof(devpts_options), "newinstance,ptmxmode=0666,mode=0620,gid=%u", tty_gid);
        else
            snprintf(devpts_options, sizeof(devpts_options), "newinstance,ptmxmode=0666,mode=0620");
    }

    add(&b,
        (struct spawn_op){.kind = SPAWN_OP_MOUNT, .source = "proc", .target = "/proc", .fstype = "proc", .flags = nse});
    if (in->privileged) {
        /* Every host device, as a privileged container expects. */
        add(&b, (struct spawn_op){.kind = SPAWN_OP_BIND, .source = "/dev", .target = "/dev", .recursive = true});
    } else {
        add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                                  .source = "tmpfs",
                                  .target = "/dev",
                                  .fstype = "tmpfs",
                                  .data = dev_options,
                                  .flags = MS_NOSUID | MS_STRICTATIME});
        standard_devices(&b);
    }
    add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                              .source = "devpts",
                              .target = "/dev/pts",
                              .fstype = "devpts",
                              .data = devpts_options,
                              .flags = MS_NOSUID | MS_NOEXEC});
    add(&b, (struct spawn_op){.kind = SPAWN_OP_BIND, .source = in->shm, .target = "/dev/shm", .recursive = true});
    add(&b, (struct spawn_op){
                .kind = SPAWN_OP_MOUNT, .source = "mqueue", .target = "/dev/mqueue", .fstype = "mqueue", .flags = nse});
    add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                              .source = "sysfs",
                              .target = "/sys",
                              .fstype = "sysfs",
                              .flags = nse | (in->privileged ? 0 : MS_RDONLY)});
    unsigned long cg_ro = in->privileged ? 0 : MS_RDONLY;
    if (in->cgroup_version == 2) {
        add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                                  .source = "cgroup",
                                  .target = "/sys/fs/cgroup",
                                  .fstype = "cgroup2",
                                  .flags = nse | cg_ro});
    } else {
        add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                                  .source = "tmpfs",
                                  .target = "/sys/fs/cgroup",
                                  .fstype = "tmpfs",
                                  .data = "mode=755",
                                  .flags = nse});
        for (size_t i = 0; i < in->n_v1; i++) {
            char target[PATH_MAX];
            snprintf(target, sizeof(target), "/sys/fs/cgroup/%s", in->v1_names[i]);
            add(&b, (struct spawn_op){.kind = SPAWN_OP_MOUNT,
                                      .source = "cgroup",
                                      .target = target,
                                      .fstype = "cgroup",
                                      .data = in->v1_options[i],
                                      .flags = nse | cg_ro});
        }
        if (!in->privileged)
            add(&b, (struct spawn_op){.kind = SPAWN_OP_READONLY, .target = "/sys/fs/cgroup"});
    }

    /* The pod's files, unless kubelet mounts its own at the same place. */
    if (in->hostname && !has_mount_at(cfg, "/etc/hostname"))
        add(&b, (struct spawn_op){.kind = SPAWN_OP_BIND,
                                  .source = in->hostname,
                                  .target = "/etc/hostname",
                                  .create_file = true,
                                  .flags = in->readonly_rootfs ? MS_RDONLY : 0});
    if (in->hosts && !has_mount_at(cfg, "/etc/hosts"))
        add(&b, (struct spawn_op){.kind = SPAWN_OP_BIND,
                                  .source = in->hosts,
                                  .target = "/etc/hosts",
                                  .create_file = true,
                                  .flags = in->readonly_rootfs ? MS_RDONLY : 0});
    if (in->resolv_conf && !has_mount_at(cfg, "/etc/resolv.conf"))
        add(&b, (struct spawn_op){.kind = SPAWN_OP_BIND,
                                  .source = in->resolv_conf,
                                  .target = "/etc/resolv.conf",
                                  .create_file = true,
                                  .flags = in->readonly_rootfs ? MS_RDONLY : 0});

    int r = cri_mounts(&b, in, err);
    if (r < 0) {
        mount_plan_free(out);
        return r;
    }

    if (!in->privileged) {
        const Runtime__V1__LinuxContainerSecurityContext *sc = cfg->linux ? cfg->linux->security_context : NULL;
        if (sc && sc->n_masked_paths) {
            for (size_t i = 0; i < sc->n_masked_paths; i++)
                if (clean_container_path(sc->masked_paths[i]))
                    add(&b, (struct spawn_op){.kind = SPAWN_OP_MASK, .target = sc->masked_paths[i], .optional = true});
        } else {
            for (const char *const *p = default_masked_paths; *p; p++)
                add(&b, (struct spawn_op){.kind = SPAWN_OP_MASK, .target = *p, .optional = true});
        }
        if (sc && sc->n_readonly_paths) {
            for (size_t i = 0; i < sc->n_readonly_paths; i++)
                if (clean_container_path(sc->readonly_paths[i]))
                    add(&b, (struct spawn_op){
                                .kind = SPAWN_OP_READONLY, .target = sc->readonly_paths[i], .optional = true});
        } else {
            for (const char *const *p = default_readonly_paths; *p; p++)
                add(&b, (struct spawn_op){.kind = SPAWN_OP_READONLY, .target = *p, .optional = true});
        }
    }
    if (b.oom) {
        mount_plan_free(out);
        return err_sys(err, ENOMEM, "planning the container's mounts");
    }
    return 0;
}
