/* cgroup v1 and v2 management, written from the kernel's documentation
 * (Documentation/admin-guide/cgroup-v1/, cgroup-v2.rst) and the CRI /
 * kubelet conventions for cgroup parents and resources. */
#include "runtime/cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define CG_PATH_MAX           4096
#define CG_ID_MAX             128
#define CG_UNIT_NAME_MAX      255 /* systemd's limit on a unit name */
#define CG_VALUE_MAX          4096
#define CG_SMALL_FILE_MAX     4096
#define CG_DESTROY_TIMEOUT_NS (5LL * 1000000000LL)
#define CG_MAX_DEPTH          256

/* One v1 hierarchy: where it is mounted and what it holds, as ",cpu,cpuacct,"
 * so a lookup is one strstr. */
struct hierarchy {
    char *mount;
    char *controllers;
};

struct cgroup_manager {
    enum cgroup_version version;
    enum cgroup_driver_kind driver;
    /* V2: the hierarchy. V1: the hybrid layout's cgroup2 mount, or NULL;
     * its cgroups track the processes (and offer cgroup.kill). */
    char *unified;
    /* V1 hybrid: the controllers bound to the cgroup2 mount rather than to
     * a v1 hierarchy (often none, sometimes hugetlb), space-separated. */
    char *unified_controllers;
    struct hierarchy *v1;
    size_t n_v1;
};

/* The v2 controllers edgecri enables for its subtrees: the ones it sets
 * limits with, plus io for the stats readers. */
static const char *const v2_controllers[] = {"cpuset", "cpu", "io", "memory", "hugetlb", "pids"};

/* ---- small file helpers ---------------------------------------------- */

/* base + path + "/" + file, without doubling the '/' of the root path. */
static char *join(const char *base, const char *path, const char *file)
{
    char *s = NULL;
    const char *p = strcmp(path, "/") == 0 ? "" : path;
    if (asprintf(&s, "%s%s%s%s", base, p, file ? "/" : "", file ? file : "") < 0)
        return NULL;
    return s;
}

/* Reads a small cgroup file (cgroupfs reports size 0, so read to EOF).
 * Returns the length or -errno; -EFBIG when it does not fit. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        if (got + 1 >= size)
            return -EFBIG;
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* One write(2) of the whole value: cgroupfs parses each write on its own.
 * O_TRUNC makes a plain file (test trees) hold exactly the last value;
 * cgroupfs ignores it. */
static int write_value(const char *path, const char *value)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n;
    do
        n = write(fd, value, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t)n != len)
        return -EIO;
    return 0;
}

static bool is_file(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* `tok` is one of the whitespace-separated words of `list`. */
static bool has_word(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && !isspace((unsigned char)*e))
            e++;
        if ((size_t)(e - p) == n && memcmp(p, tok, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* Finds "key <u64>" among the lines of a flat-keyed file (cgroup.events,
 * memory.events, memory.oom_control). */
static bool keyed_value(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, kl) != 0 || line[kl] != ' ')
            continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(line + kl + 1, &end, 10);
        if (errno || end == line + kl + 1)
            return false;
        *out = v;
        return true;
    }
    return false;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- names and paths ---------------------------------------------------- */

/* A cgroup path: absolute, no empty, "." or ".." component, printable. */
static int check_path(const char *what, const char *p, bool allow_root, err_t *err)
{
    if (!p || !*p)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is empty", what);
    if (p[0] != '/')
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" is not an absolute cgroup path", what, p);
    if (strlen(p) >= CG_PATH_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, ENAMETOOLONG, "%s is longer than %d bytes", what, CG_PATH_MAX - 1);
    if (strcmp(p, "/") == 0) {
        if (allow_root)
            return 0;
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is the root cgroup, which edgecri never manages", what);
    }
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" contains a control character", what, p);
    for (const char *c = p + 1;;) {
        const char *e = strchrnul(c, '/');
        size_t n = (size_t)(e - c);
        if (n == 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" has an empty path component", what, p);
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" has a \"%.*s\" component", what, p, (int)n, c);
        if (!*e)
            break;
        c = e + 1;
    }
    return 0;
}

/* A pod or container id used as (part of) one path component. A '-' would
 * make a slice name mean a deeper slice, so slices refuse it. */
static int check_id(const char *what, const char *id, bool allow_dash, err_t *err)
{
    if (!id || !*id)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is empty", what);
    if (strlen(id) > CG_ID_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is longer than %d characters", what, CG_ID_MAX);
    if (id[0] == '.')
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" starts with '.'", what, id);
    for (const char *c = id; *c; c++) {
        if (isalnum((unsigned char)*c) || *c == '_' || *c == '.' || (*c == '-' && allow_dash))
            continue;
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s \"%s\" contains '%c', not allowed in a cgroup name%s",
                       what, id, isprint((unsigned char)*c) ? *c : '?',
                       *c == '-' ? " (a '-' in a slice name nests it)" : "");
    }
    return 0;
}

/* Expands a slice name as systemd nests slices: "a-b-c.slice" lives at
 * /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root slice "/". */
static int expand_slice(const char *name, char **out, err_t *err)
{
    static const char suffix[] = ".slice";
    size_t len = strlen(name), sl = sizeof(suffix) - 1;
    if (len <= sl || strcmp(name + len - sl, suffix) != 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "cgroup_parent \"%s\" is not a systemd slice name ending in .slice (is kubelet using the "
                       "cgroupfs driver?)",
                       name);
    if (len > CG_UNIT_NAME_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "cgroup_parent \"%s\" is longer than systemd's %d characters",
                       name, CG_UNIT_NAME_MAX);
    size_t plen = len - sl;
    if (plen == 1 && name[0] == '-') {
        *out = strdup("/");
        return *out ? 0 : err_sys(err, ENOMEM, "expanding slice %s", name);
    }
    for (size_t i = 0; i < plen; i++) {
        char c = name[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '\\'))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "cgroup_parent \"%s\" contains '%c', not allowed in a systemd unit name", name,
                           isprint((unsigned char)c) ? c : '?');
        if (c == '-' && (i == 0 || i == plen - 1 || name[i + 1] == '-'))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "cgroup_parent \"%s\" is not a valid slice name (a '-' at the start, at the end, or "
                           "doubled)",
                           name);
    }
    size_t dashes = 0;
    for (size_t i = 0; i < plen; i++)
        dashes += name[i] == '-';
    /* Each level is "/" + a prefix + ".slice", the last one the whole name. */
    size_t cap = (dashes + 1) * (len + 1) + 1;
    _cleanup_free_ char *buf = malloc(cap);
    if (!buf)
        return err_sys(err, ENOMEM, "expanding slice %s", name);
    size_t at = 0;
    for (size_t i = 0; i < plen; i++) {
        if (name[i] != '-')
            continue;
        at += (size_t)snprintf(buf + at, cap - at, "/%.*s%s", (int)i, name, suffix);
    }
    snprintf(buf + at, cap - at, "/%s", name);
    *out = steal_pointer(&buf);
    return 0;
}

int cgroup_pod_path(const struct cgroup_manager *m, const char *cgroup_parent, const char *pod_id, char **out,
                    err_t *err)
{
    bool systemd = m->driver == CGROUP_DRIVER_KIND_SYSTEMD;
    char *s = NULL;
    if (!cgroup_parent || !*cgroup_parent) {
        int r = check_id("pod id", pod_id, !systemd, err);
        if (r < 0)
            return r;
        int n = systemd ? asprintf(&s, "/edgecri.slice/edgecri-%s.slice", pod_id) : asprintf(&s, "/edgecri/%s", pod_id);
        if (n < 0)
            return err_sys(err, ENOMEM, "building the cgroup path of pod %s", pod_id);
        *out = s;
        return 0;
    }
    if (!systemd) {
        if (cgroup_parent[0] != '/')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "cgroup_parent \"%s\" is not an absolute cgroup path, which the cgroupfs driver expects "
                           "(is kubelet using the systemd driver?)",
                           cgroup_parent);
        int r = check_path("cgroup_parent", cgroup_parent, false, err);
        if (r < 0)
            return r;
        if (!(s = strdup(cgroup_parent)))
            return err_sys(err, ENOMEM, "copying cgroup_parent");
        *out = s;
        return 0;
    }
    if (strchr(cgroup_parent, '/'))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "cgroup_parent \"%s\" is a path, but the systemd driver expects a slice name such as "
                       "kubepods-burstable-pod<uid>.slice (is kubelet using the cgroupfs driver?)",
                       cgroup_parent);
    int r = expand_slice(cgroup_parent, &s, err);
    if (r < 0)
        return r;
    if (strcmp(s, "/") == 0) {
        free(s);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "cgroup_parent \"%s\" is the root slice; a pod needs a slice of its own", cgroup_parent);
    }
    *out = s;
    return 0;
}

int cgroup_container_path(const struct cgroup_manager *m, const char *pod_path, const char *container_id, char **out,
                          err_t *err)
{
    int r = check_path("pod cgroup path", pod_path, false, err);
    if (r < 0)
        return r;
    if ((r = check_id("container id", container_id, true, err)) < 0)
        return r;
    int n = m->driver == CGROUP_DRIVER_KIND_SYSTEMD ? asprintf(out, "%s/edgecri-%s.scope", pod_path, container_id)
                                                    : asprintf(out, "%s/%s", pod_path, container_id);
    if (n < 0)
        return err_sys(err, ENOMEM, "building the cgroup path of container %s", container_id);
    if (strlen(*out) >= CG_PATH_MAX) {
        free(*out);
        *out = NULL;
        return err_set(err, ERR_INVALID_ARGUMENT, ENAMETOOLONG, "cgroup path of container %s is too long",
                       container_id);
    }
    return 0;
}

/* ---- construction -------------------------------------------------------- */

void cgroup_manager_free(struct cgroup_manager *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_v1; i++) {
        free(m->v1[i].mount);
        free(m->v1[i].controllers);
    }
    free(m->v1);
    free(m->unified);
    free(m->unified_controllers);
    free(m);
}

static inline void cgroup_manager_freep(struct cgroup_manager **m)
{
    cgroup_manager_free(*m);
}
#define _cleanup_manager_ __attribute__((cleanup(cgroup_manager_freep)))

enum cgroup_version cgroup_manager_version(const struct cgroup_manager *m)
{
    return m->version;
}

static struct cgroup_manager *manager_alloc(enum cgroup_driver_kind driver)
{
    struct cgroup_manager *m = calloc(1, sizeof(*m));
    if (m)
        m->driver = driver;
    return m;
}

/* Takes ownership of mount; `controllers` is a ','-separated list. */
static int add_hierarchy(struct cgroup_manager *m, char *mount, const char *controllers)
{
    struct hierarchy *v = realloc(m->v1, (m->n_v1 + 1) * sizeof(*v));
    if (!v) {
        free(mount);
        return -ENOMEM;
    }
    m->v1 = v;
    char *c = NULL;
    if (asprintf(&c, ",%s,", controllers) < 0) {
        free(mount);
        return -ENOMEM;
    }
    v[m->n_v1++] = (struct hierarchy){.mount = mount, .controllers = c};
    return 0;
}

static const struct hierarchy *find_hierarchy(const struct cgroup_manager *m, const char *controller)
{
    if (!controller || !*controller || strchr(controller, ','))
        return NULL;
    char key[64];
    if ((size_t)snprintf(key, sizeof(key), ",%s,", controller) >= sizeof(key))
        return NULL;
    for (size_t i = 0; i < m->n_v1; i++)
        if (strstr(m->v1[i].controllers, key))
            return &m->v1[i];
    return NULL;
}

/* A controller that, on a hybrid node, lives in the cgroup2 tree. */
static bool hybrid_v2_has(const struct cgroup_manager *m, const char *controller)
{
    return m->version == CGROUP_V1 && m->unified_controllers && controller && !find_hierarchy(m, controller) &&
           has_word(m->unified_controllers, controller);
}

/* The controllers listed at the root of cgroup2 mount `mnt` (malloc'd,
 * "" when none or unreadable), NULL on ENOMEM. */
static char *root_controllers(const char *mnt)
{
    _cleanup_free_ char *p = join(mnt, "/", "cgroup.controllers");
    char buf[CG_SMALL_FILE_MAX];
    if (!p)
        return NULL;
    return strdup(read_small(p, buf, sizeof(buf)) > 0 ? trim(buf) : "");
}

static int check_driver(enum cgroup_driver_kind driver, err_t *err)
{
    if (driver != CGROUP_DRIVER_KIND_CGROUPFS && driver != CGROUP_DRIVER_KIND_SYSTEMD)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "unknown cgroup driver %d", (int)driver);
    return 0;
}

int cgroup_manager_new_at(enum cgroup_version v, const char *root, enum cgroup_driver_kind driver,
                          struct cgroup_manager **out, err_t *err)
{
    int r = check_driver(driver, err);
    if (r < 0)
        return r;
    if (v != CGROUP_V1 && v != CGROUP_V2)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "unknown cgroup version %d", (int)v);
    if (!is_dir(root))
        return err_set(err, ERR_NOT_FOUND, ENOENT, "cgroup root %s is not a directory", root);
    _cleanup_manager_ struct cgroup_manager *m = manager_alloc(driver);
    if (!m)
        return err_sys(err, ENOMEM, "creating a cgroup manager");
    m->version = v;
    if (v == CGROUP_V2) {
        if (!(m->unified = strdup(root)))
            return err_sys(err, ENOMEM, "creating a cgroup manager");
        *out = steal_pointer(&m);
        return 0;
    }
    _cleanup_closedir_ DIR *d = opendir(root);
    if (!d)
        return err_sys(err, errno, "listing cgroup hierarchies in %s", root);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *p = join(root, "", de->d_name);
        if (!p)
            return err_sys(err, ENOMEM, "listing %s", root);
        if (!is_dir(p))
            continue;
        if (strcmp(de->d_name, "unified") == 0) {
            free(m->unified);
            m->unified = steal_pointer(&p);
            continue;
        }
        if (add_hierarchy(m, steal_pointer(&p), de->d_name) < 0)
            return err_sys(err, ENOMEM, "listing %s", root);
    }
    if (m->n_v1 == 0)
        return err_set(err, ERR_FAILED_PRECONDITION, ENOENT, "no cgroup v1 hierarchy under %s", root);
    if (m->unified && !(m->unified_controllers = root_controllers(m->unified)))
        return err_sys(err, ENOMEM, "creating a cgroup manager");
    *out = steal_pointer(&m);
    return 0;
}

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* Splits a mountinfo line (proc(5)): "id parent maj:min root mountpoint
 * options [optional...] - fstype source superoptions". */
static bool parse_mountinfo(char *line, char **dev, char **mnt, char **fstype, char **super)
{
    char *f[6], *save = NULL, *t;
    int n = 0;
    for (t = strtok_r(line, " \n", &save); t && n < 6; t = strtok_r(NULL, " \n", &save))
        f[n++] = t;
    if (n < 6)
        return false;
    while (t && strcmp(t, "-") != 0)
        t = strtok_r(NULL, " \n", &save);
    if (!t)
        return false;
    *fstype = strtok_r(NULL, " \n", &save);
    char *source = strtok_r(NULL, " \n", &save);
    *super = strtok_r(NULL, " \n", &save);
    if (!*fstype || !source || !*super)
        return false;
    *dev = f[2];
    *mnt = f[4];
    unescape_octal(*mnt);
    return true;
}

int cgroup_manager_new(enum cgroup_driver_kind driver, struct cgroup_manager **out, err_t *err)
{
    static const char mountinfo[] = "/proc/self/mountinfo";
    int r = check_driver(driver, err);
    if (r < 0)
        return r;
    _cleanup_manager_ struct cgroup_manager *m = manager_alloc(driver);
    if (!m)
        return err_sys(err, ENOMEM, "creating a cgroup manager");
    _cleanup_fclose_ FILE *f = fopen(mountinfo, "re");
    if (!f)
        return err_sys(err, errno, "opening %s", mountinfo);
    _cleanup_free_ char *line = NULL, *v2 = NULL, *seen_devs = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *dev, *mnt, *fstype, *super;
        if (!parse_mountinfo(line, &dev, &mnt, &fstype, &super))
            continue;
        if (strcmp(fstype, "cgroup2") == 0) {
            if (!v2 && !(v2 = strdup(mnt)))
                return err_sys(err, ENOMEM, "reading %s", mountinfo);
            continue;
        }
        if (strcmp(fstype, "cgroup") != 0)
            continue;
        /* A hierarchy mounted twice (bind mounts) shares its device: keep
         * the first. */
        char key[64];
        snprintf(key, sizeof(key), " %s ", dev);
        if (seen_devs && strstr(seen_devs, key))
            continue;
        char *joined = NULL;
        if (asprintf(&joined, "%s%s ", seen_devs ? seen_devs : " ", dev) < 0)
            return err_sys(err, ENOMEM, "reading %s", mountinfo);
        free(seen_devs);
        seen_devs = joined;
        char *mcopy = strdup(mnt);
        if (!mcopy || add_hierarchy(m, mcopy, super) < 0)
            return err_sys(err, ENOMEM, "reading %s", mountinfo);
    }
    if (ferror(f))
        return err_sys(err, EIO, "reading %s", mountinfo);

    _cleanup_free_ char *v2_controllers_list = v2 ? root_controllers(v2) : NULL;
    if (v2 && !v2_controllers_list)
        return err_sys(err, ENOMEM, "reading %s", mountinfo);
    /* Where memory is decides: hybrid systems bind every controller to v1
     * except, at times, a few left to cgroup2 (hugetlb here and there);
     * pure v2 systems may still mount a stray v1 hierarchy (net_cls). */
    static const char *const v1_known[] = {"cpu",     "cpuacct", "cpuset",   "memory", "devices",
                                           "freezer", "net_cls", "net_prio", "blkio",  "perf_event",
                                           "hugetlb", "pids",    "rdma",     "misc"};
    bool v1_controllers = false; /* name=systemd alone holds none */
    for (size_t i = 0; i < ARRAY_SIZE(v1_known); i++)
        v1_controllers |= find_hierarchy(m, v1_known[i]) != NULL;
    bool v1_memory = find_hierarchy(m, "memory") != NULL;
    if (v1_memory || (v1_controllers && !(v2 && *v2_controllers_list))) {
        m->version = CGROUP_V1;
        /* Hybrid: the cgroup2 tree still tracks processes and offers
         * cgroup.kill; use it when it can be written. */
        if (v2 && access(v2, W_OK) == 0) {
            m->unified = steal_pointer(&v2);
            m->unified_controllers = steal_pointer(&v2_controllers_list);
        }
    } else if (v2) {
        /* v1 mounts beside a v2 tree that holds the controllers are
         * leftovers edgecri does not use. */
        for (size_t i = 0; i < m->n_v1; i++) {
            free(m->v1[i].mount);
            free(m->v1[i].controllers);
        }
        free(m->v1);
        m->v1 = NULL;
        m->n_v1 = 0;
        m->version = CGROUP_V2;
        m->unified = steal_pointer(&v2);
    } else {
        return err_set(err, ERR_FAILED_PRECONDITION, ENOENT, "no cgroup file system is mounted (according to %s)",
                       mountinfo);
    }
    *out = steal_pointer(&m);
    return 0;
}

/* ---- cgroup_file ---------------------------------------------------------- */

static bool valid_file_name(const char *file)
{
    return file && *file && !strchr(file, '/') && strcmp(file, ".") != 0 && strcmp(file, "..") != 0;
}

char *cgroup_file(struct cgroup_manager *m, const char *path, const char *controller, const char *file)
{
    err_t e = ERR_INIT;
    int r = check_path("cgroup path", path, true, &e);
    err_clear(&e);
    if (r < 0 || !valid_file_name(file))
        return NULL;
    if (m->version == CGROUP_V2)
        return join(m->unified, path, file);
    if (hybrid_v2_has(m, controller))
        return join(m->unified, path, file);
    const struct hierarchy *h = find_hierarchy(m, controller);
    return h ? join(h->mount, path, file) : NULL;
}

/* ---- resources ------------------------------------------------------------ */

/* "2MB", "1GB", "64KB": the spelling both CRI and the kernel's hugetlb file
 * names use. */
static bool valid_page_size(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap || n < 3)
        return false;
    size_t i = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    if (i == 0 || s[0] == '0' || n - i != 2)
        return false;
    return (s[i] == 'K' || s[i] == 'M' || s[i] == 'G') && s[i + 1] == 'B';
}

static bool valid_cpu_list(const char *s)
{
    if (strlen(s) > 1024)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && *s != ',' && *s != '-')
            return false;
    return true;
}

static int validate_resources(const struct cgroup_manager *m, const char *path, const struct cgroup_resources *r,
                              err_t *err)
{
#define BAD(...) err_set(err, ERR_INVALID_ARGUMENT, EINVAL, __VA_ARGS__)
    if (r->cpu_period < 0)
        return BAD("cgroup %s: cpu period %" PRId64 " is negative", path, r->cpu_period);
    if (r->cpu_quota < -1)
        return BAD("cgroup %s: cpu quota %" PRId64 " is negative", path, r->cpu_quota);
    if (r->cpu_shares < 0)
        return BAD("cgroup %s: cpu shares %" PRId64 " is negative", path, r->cpu_shares);
    if (r->memory_limit < -1)
        return BAD("cgroup %s: memory limit %" PRId64 " is negative", path, r->memory_limit);
    if (r->memory_swap_limit < -1)
        return BAD("cgroup %s: memory+swap limit %" PRId64 " is negative", path, r->memory_swap_limit);
    if (r->memory_swap_limit > 0 && r->memory_limit <= 0)
        return BAD("cgroup %s: a memory+swap limit (%" PRId64 ") needs a memory limit", path, r->memory_swap_limit);
    if (r->memory_swap_limit > 0 && r->memory_swap_limit < r->memory_limit)
        return BAD("cgroup %s: memory+swap limit %" PRId64 " is below the memory limit %" PRId64, path,
                   r->memory_swap_limit, r->memory_limit);
    if (r->pids_limit < -1)
        return BAD("cgroup %s: pids limit %" PRId64 " is negative", path, r->pids_limit);
    if (r->cpuset_cpus && !valid_cpu_list(r->cpuset_cpus))
        return BAD("cgroup %s: cpuset cpus \"%s\" is not a CPU list like 0-3,6", path, r->cpuset_cpus);
    if (r->cpuset_mems && !valid_cpu_list(r->cpuset_mems))
        return BAD("cgroup %s: cpuset mems \"%s\" is not a node list like 0-1", path, r->cpuset_mems);
    if (r->n_hugepages && !r->hugepages)
        return BAD("cgroup %s: %zu hugepage limits without an array", path, r->n_hugepages);
    for (size_t i = 0; i < r->n_hugepages; i++)
        if (!valid_page_size(r->hugepages[i].page_size, sizeof(r->hugepages[i].page_size)))
            return BAD("cgroup %s: hugepage size \"%.*s\" is not like 2MB or 1GB", path,
                       (int)sizeof(r->hugepages[i].page_size), r->hugepages[i].page_size);
    if (r->n_unified == 0)
        return 0;
    if (m->version != CGROUP_V2)
        return BAD("cgroup %s: unified (cgroup v2) resources were given, but this node uses cgroup v1", path);
    if (!r->unified_keys || !r->unified_values)
        return BAD("cgroup %s: %zu unified resources without keys or values", path, r->n_unified);
    for (size_t i = 0; i < r->n_unified; i++) {
        const char *k = r->unified_keys[i], *v = r->unified_values[i];
        if (!valid_file_name(k) || strlen(k) > 255)
            return BAD("cgroup %s: unified resource name \"%s\" is not a file name", path, k ? k : "(null)");
        if (strncmp(k, "cgroup.", 7) == 0)
            return BAD("cgroup %s: unified resource %s is a core cgroup file, which edgecri manages itself", path, k);
        if (!v || strlen(v) > CG_VALUE_MAX)
            return BAD("cgroup %s: unified resource %s has no value or one longer than %d bytes", path, k,
                       CG_VALUE_MAX);
    }
    return 0;
#undef BAD
}

/* A planned write. Everything is planned, then every file checked, then
 * written, so a missing controller leaves the cgroup untouched. */
struct op {
    char *file;
    char *value;
    const char *what; /* "memory limit" */
    char *missing;    /* why the file could be absent, for the error */
    enum err_code missing_code;
    bool pair; /* kernel ordering rule with the next op: on EINVAL, write the next one first */
};

struct plan {
    struct op *ops;
    size_t n;
};

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->ops[i].file);
        free(p->ops[i].value);
        free(p->ops[i].missing);
    }
    free(p->ops);
    p->ops = NULL;
    p->n = 0;
}
#define _cleanup_plan_ __attribute__((cleanup(plan_free)))

/* Adds a write of `value` to `file` in `dir` (NULL dir: the controller's
 * hierarchy is not mounted, reported as such). */
static int plan_add(struct plan *p, const char *cg, const char *dir, const char *file, const char *what,
                    const char *controller, bool pair, err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));
static int plan_add(struct plan *p, const char *cg, const char *dir, const char *file, const char *what,
                    const char *controller, bool pair, err_t *err, const char *fmt, ...)
{
    if (!dir)
        return err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                       "cgroup %s: a %s was requested, but no %s cgroup hierarchy is mounted", cg, what,
                       strcmp(controller, "swap") == 0 ? "memory" : controller);
    struct op *ops = realloc(p->ops, (p->n + 1) * sizeof(*ops));
    if (!ops)
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    p->ops = ops;
    struct op *o = &ops[p->n];
    *o = (struct op){.what = what, .pair = pair, .missing_code = ERR_FAILED_PRECONDITION};
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&o->value, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->value = NULL;
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    }
    p->n++; /* owned from here, freed with the plan */
    if (!(o->file = join(dir, "", file)))
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    if (strcmp(controller, "swap") == 0)
        n = asprintf(&o->missing, "swap accounting is not enabled in the kernel");
    else if (strcmp(controller, "unified") == 0) {
        n = asprintf(&o->missing, "%s is not an interface file of this cgroup", file);
        o->missing_code = ERR_INVALID_ARGUMENT;
    } else if (strcmp(controller, "hugetlb") == 0)
        n = asprintf(&o->missing, "the hugetlb controller or this page size is not available");
    else
        n = asprintf(&o->missing, "the %s controller is not available", controller);
    if (n < 0) {
        o->missing = NULL;
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    }
    return 0;
}

/* The directory of cgroup `cg` in the hierarchy with `controller`, or NULL
 * (with *oom set on allocation failure). */
static char *dir_of(const struct cgroup_manager *m, const char *cg, const char *controller, bool *oom)
{
    const char *base = m->unified;
    if (m->version == CGROUP_V1) {
        const struct hierarchy *h = find_hierarchy(m, controller);
        if (!h)
            return NULL;
        base = h->mount;
    }
    char *d = join(base, cg, NULL);
    if (!d)
        *oom = true;
    return d;
}

static uint64_t shares_to_weight(int64_t shares)
{
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((uint64_t)(shares - 2) * 9999) / 262142;
}

static int plan_v1(const struct cgroup_manager *m, const char *cg, const struct cgroup_resources *r, struct plan *p,
                   err_t *err)
{
    bool oom = false;
    _cleanup_free_ char *cpu = dir_of(m, cg, "cpu", &oom), *cpuset = dir_of(m, cg, "cpuset", &oom),
                        *mem = dir_of(m, cg, "memory", &oom), *pids = dir_of(m, cg, "pids", &oom),
                        *huge = dir_of(m, cg, "hugetlb", &oom);
    if (oom)
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    int rc = 0;
#define ADD(dir, file, what, ctl, pair, ...)                                                                           \
    do {                                                                                                               \
        if ((rc = plan_add(p, cg, dir, file, what, ctl, pair, err, __VA_ARGS__)) < 0)                                  \
            return rc;                                                                                                 \
    } while (0)
    if (r->cpu_shares)
        ADD(cpu, "cpu.shares", "cpu shares value", "cpu", false, "%" PRId64, r->cpu_shares);
    /* The kernel checks quota/period against the parent's ratio after each
     * write, so one order can fail where the other passes. */
    if (r->cpu_period)
        ADD(cpu, "cpu.cfs_period_us", "cpu period", "cpu", r->cpu_quota != 0, "%" PRId64, r->cpu_period);
    if (r->cpu_quota)
        ADD(cpu, "cpu.cfs_quota_us", "cpu quota", "cpu", false, "%" PRId64, r->cpu_quota);
    if (r->cpuset_cpus && *r->cpuset_cpus)
        ADD(cpuset, "cpuset.cpus", "cpuset", "cpuset", false, "%s", r->cpuset_cpus);
    if (r->cpuset_mems && *r->cpuset_mems)
        ADD(cpuset, "cpuset.mems", "cpuset", "cpuset", false, "%s", r->cpuset_mems);
    /* memsw may never be below the memory limit: when the new memory limit
     * is above the current memsw, memsw has to go first. */
    if (r->memory_limit)
        ADD(mem, "memory.limit_in_bytes", "memory limit", "memory", r->memory_swap_limit != 0, "%" PRId64,
            r->memory_limit);
    if (r->memory_swap_limit)
        ADD(mem, "memory.memsw.limit_in_bytes", "memory+swap limit", "swap", false, "%" PRId64, r->memory_swap_limit);
    if (r->pids_limit == -1)
        ADD(pids, "pids.max", "pids limit", "pids", false, "max");
    else if (r->pids_limit)
        ADD(pids, "pids.max", "pids limit", "pids", false, "%" PRId64, r->pids_limit);
    /* hugetlb may be bound to the hybrid cgroup2 tree, with v2's names;
     * the processes are there too. */
    bool huge_v2 = r->n_hugepages && hybrid_v2_has(m, "hugetlb");
    _cleanup_free_ char *huge2 = huge_v2 ? join(m->unified, cg, NULL) : NULL;
    if (huge_v2 && !huge2)
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    for (size_t i = 0; i < r->n_hugepages; i++) {
        char file[64];
        snprintf(file, sizeof(file), huge_v2 ? "hugetlb.%s.max" : "hugetlb.%s.limit_in_bytes",
                 r->hugepages[i].page_size);
        ADD(huge_v2 ? huge2 : huge, file, "hugepage limit", "hugetlb", false, "%" PRIu64, r->hugepages[i].limit);
    }
    return 0;
}

static int plan_v2(const struct cgroup_manager *m, const char *cg, const struct cgroup_resources *r, struct plan *p,
                   err_t *err)
{
    _cleanup_free_ char *d = join(m->unified, cg, NULL);
    if (!d)
        return err_sys(err, ENOMEM, "planning cgroup %s", cg);
    int rc = 0;
    if (r->cpu_shares)
        ADD(d, "cpu.weight", "cpu weight", "cpu", false, "%" PRIu64, shares_to_weight(r->cpu_shares));
    if (r->cpu_quota || r->cpu_period) {
        char quota[32] = "max";
        if (r->cpu_quota > 0)
            snprintf(quota, sizeof(quota), "%" PRId64, r->cpu_quota);
        if (!r->cpu_quota) {
            /* Only the period changes: keep the quota cpu.max holds. */
            _cleanup_free_ char *f = join(d, "", "cpu.max");
            char buf[128];
            if (!f)
                return err_sys(err, ENOMEM, "planning cgroup %s", cg);
            ssize_t n = read_small(f, buf, sizeof(buf));
            if (n == -ENOENT)
                return err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                               "cgroup %s: a cpu period was requested, but the cpu controller is not available (%s "
                               "does not exist)",
                               cg, f);
            if (n < 0)
                return err_sys(err, (int)-n, "reading %s", f);
            char *t = trim(buf);
            t[strcspn(t, " ")] = '\0';
            snprintf(quota, sizeof(quota), "%s", t);
        }
        if (r->cpu_period)
            ADD(d, "cpu.max", "cpu quota", "cpu", false, "%s %" PRId64, quota, r->cpu_period);
        else
            ADD(d, "cpu.max", "cpu quota", "cpu", false, "%s", quota);
    }
    if (r->cpuset_cpus && *r->cpuset_cpus)
        ADD(d, "cpuset.cpus", "cpuset", "cpuset", false, "%s", r->cpuset_cpus);
    if (r->cpuset_mems && *r->cpuset_mems)
        ADD(d, "cpuset.mems", "cpuset", "cpuset", false, "%s", r->cpuset_mems);
    if (r->memory_limit == -1)
        ADD(d, "memory.max", "memory limit", "memory", false, "max");
    else if (r->memory_limit)
        ADD(d, "memory.max", "memory limit", "memory", false, "%" PRId64, r->memory_limit);
    /* v2 limits swap alone; CRI's value is memory + swap. */
    if (r->memory_swap_limit == -1)
        ADD(d, "memory.swap.max", "swap limit", "swap", false, "max");
    else if (r->memory_swap_limit)
        ADD(d, "memory.swap.max", "swap limit", "swap", false, "%" PRId64, r->memory_swap_limit - r->memory_limit);
    if (r->pids_limit == -1)
        ADD(d, "pids.max", "pids limit", "pids", false, "max");
    else if (r->pids_limit)
        ADD(d, "pids.max", "pids limit", "pids", false, "%" PRId64, r->pids_limit);
    for (size_t i = 0; i < r->n_hugepages; i++) {
        char file[64];
        snprintf(file, sizeof(file), "hugetlb.%s.max", r->hugepages[i].page_size);
        ADD(d, file, "hugepage limit", "hugetlb", false, "%" PRIu64, r->hugepages[i].limit);
    }
    for (size_t i = 0; i < r->n_unified; i++)
        ADD(d, r->unified_keys[i], "unified resource", "unified", false, "%s", r->unified_values[i]);
    return 0;
#undef ADD
}

static int plan_run(const char *cg, const struct plan *p, err_t *err)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct op *o = &p->ops[i];
        if (!is_file(o->file))
            return err_set(err, o->missing_code, o->missing_code == ERR_INVALID_ARGUMENT ? EINVAL : ENOTSUP,
                           "cgroup %s: cannot set the %s: %s (%s does not exist)", cg, o->what, o->missing, o->file);
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct op *o = &p->ops[i];
        int r = write_value(o->file, o->value);
        if (r == -EINVAL && o->pair && i + 1 < p->n) {
            const struct op *next = &p->ops[i + 1];
            if ((r = write_value(next->file, next->value)) < 0)
                return err_sys(err, -r, "cgroup %s: setting the %s: writing \"%s\" to %s", cg, next->what, next->value,
                               next->file);
            r = write_value(o->file, o->value);
            if (r == 0)
                i++;
        }
        if (r < 0)
            return err_sys(err, -r, "cgroup %s: setting the %s: writing \"%s\" to %s", cg, o->what, o->value, o->file);
    }
    return 0;
}

static int apply(struct cgroup_manager *m, const char *cg, const struct cgroup_resources *r, err_t *err)
{
    if (!r)
        return 0;
    _cleanup_plan_ struct plan p = {0};
    int rc = m->version == CGROUP_V2 ? plan_v2(m, cg, r, &p, err) : plan_v1(m, cg, r, &p, err);
    if (rc < 0)
        return rc;
    return plan_run(cg, &p, err);
}

/* ---- create / update ---------------------------------------------------- */

/* Reads a small file into buf, trimmed; -errno with the error set. */
static int read_trimmed(const char *path, char *buf, size_t size, char **out, err_t *err)
{
    ssize_t n = read_small(path, buf, size);
    if (n < 0)
        return err_sys(err, (int)-n, "reading %s", path);
    *out = trim(buf);
    return 0;
}

/* v2: a controller works in a cgroup only when every ancestor lists it in
 * cgroup.subtree_control; enable, top-down, the ones the parent offers. */
static int enable_v2_controllers(struct cgroup_manager *m, const char *cg, err_t *err)
{
    char prefix[CG_PATH_MAX];
    const char *last = strrchr(cg, '/');
    for (const char *c = cg;;) {
        /* prefix = cg up to (not including) the slash at c; "" is the root. */
        size_t len = (size_t)(c - cg);
        memcpy(prefix, cg, len);
        prefix[len] = '\0';
        _cleanup_free_ char *ctl = join(m->unified, prefix, "cgroup.controllers");
        _cleanup_free_ char *sub = join(m->unified, prefix, "cgroup.subtree_control");
        if (!ctl || !sub)
            return err_sys(err, ENOMEM, "creating cgroup %s", cg);
        char abuf[CG_SMALL_FILE_MAX], ebuf[CG_SMALL_FILE_MAX], *avail = NULL, *enabled = NULL;
        int r = read_trimmed(ctl, abuf, sizeof(abuf), &avail, err);
        if (r == 0)
            r = read_trimmed(sub, ebuf, sizeof(ebuf), &enabled, err);
        if (r < 0)
            return err_wrap(err, "creating cgroup %s", cg);
        char want[256] = "";
        size_t at = 0;
        for (size_t i = 0; i < ARRAY_SIZE(v2_controllers); i++) {
            const char *name = v2_controllers[i];
            if (has_word(avail, name) && !has_word(enabled, name))
                at += (size_t)snprintf(want + at, sizeof(want) - at, "%s+%s", at ? " " : "", name);
        }
        if (at && (r = write_value(sub, want)) < 0)
            return err_sys(err, -r, "creating cgroup %s: enabling controllers \"%s\" in %s", cg, want, sub);
        if (c == last)
            break;
        c = strchr(c + 1, '/');
    }
    return 0;
}

/* v1 cpuset: a new cgroup starts with empty cpus/mems (unless the parent has
 * clone_children) and refuses tasks until they are set; inherit them, from
 * the top down. */
static int fill_v1_cpuset(const struct hierarchy *h, const char *cg, err_t *err)
{
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    char prefix[CG_PATH_MAX];
    for (const char *c = strchr(cg + 1, '/');; c = strchr(c + 1, '/')) {
        size_t len = c ? (size_t)(c - cg) : strlen(cg);
        memcpy(prefix, cg, len);
        prefix[len] = '\0';
        const char *slash = strrchr(prefix, '/');
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
            _cleanup_free_ char *own = join(h->mount, prefix, files[i]);
            _cleanup_free_ char *parent = NULL;
            if (!own)
                return err_sys(err, ENOMEM, "creating cgroup %s", cg);
            char buf[CG_SMALL_FILE_MAX], *v = NULL;
            int r = read_trimmed(own, buf, sizeof(buf), &v, err);
            if (r < 0)
                return err_wrap(err, "creating cgroup %s", cg);
            if (*v)
                continue;
            char pbuf[CG_PATH_MAX];
            size_t plen = (size_t)(slash - prefix);
            memcpy(pbuf, prefix, plen);
            pbuf[plen] = '\0';
            if (!(parent = join(h->mount, plen ? pbuf : "/", files[i])))
                return err_sys(err, ENOMEM, "creating cgroup %s", cg);
            if ((r = read_trimmed(parent, buf, sizeof(buf), &v, err)) < 0)
                return err_wrap(err, "creating cgroup %s", cg);
            if (*v && (r = write_value(own, v)) < 0)
                return err_sys(err, -r, "creating cgroup %s: copying \"%s\" from %s to %s", cg, v, parent, own);
        }
        if (!c)
            break;
    }
    return 0;
}

static int make_dir(const char *base, const char *cg, err_t *err)
{
    _cleanup_free_ char *d = join(base, cg, NULL);
    if (!d)
        return err_sys(err, ENOMEM, "creating cgroup %s", cg);
    int r = fs_mkdir_p(d, 0755, err);
    return r < 0 ? err_wrap(err, "creating cgroup %s", cg) : 0;
}

int cgroup_create(struct cgroup_manager *m, const char *path, const struct cgroup_resources *r, err_t *err)
{
    int rc = check_path("cgroup path", path, false, err);
    if (rc < 0 || (r && (rc = validate_resources(m, path, r, err)) < 0))
        return rc;
    if (m->version == CGROUP_V2) {
        if ((rc = make_dir(m->unified, path, err)) < 0 || (rc = enable_v2_controllers(m, path, err)) < 0)
            return rc;
    } else {
        for (size_t i = 0; i < m->n_v1; i++) {
            if ((rc = make_dir(m->v1[i].mount, path, err)) < 0)
                return rc;
            if (strstr(m->v1[i].controllers, ",cpuset,") && (rc = fill_v1_cpuset(&m->v1[i], path, err)) < 0)
                return rc;
        }
        if (m->unified && (rc = make_dir(m->unified, path, err)) < 0)
            return rc;
        if (m->unified && *m->unified_controllers && (rc = enable_v2_controllers(m, path, err)) < 0)
            return rc;
    }
    return apply(m, path, r, err);
}

int cgroup_update(struct cgroup_manager *m, const char *path, const struct cgroup_resources *r, err_t *err)
{
    int rc = check_path("cgroup path", path, false, err);
    if (rc < 0 || (r && (rc = validate_resources(m, path, r, err)) < 0))
        return rc;
    size_t n = m->version == CGROUP_V2 ? 1 : m->n_v1;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *d = join(m->version == CGROUP_V2 ? m->unified : m->v1[i].mount, path, NULL);
        if (!d)
            return err_sys(err, ENOMEM, "updating cgroup %s", path);
        if (!is_dir(d))
            return err_set(err, ERR_NOT_FOUND, ENOENT, "updating cgroup %s: %s does not exist", path, d);
    }
    return apply(m, path, r, err);
}

/* ---- processes ------------------------------------------------------------ */

/* Every directory of the cgroup, one per hierarchy, the v2 one (if any)
 * first. Returns the count; -ENOMEM. */
static int cgroup_dirs(const struct cgroup_manager *m, const char *cg, char **dirs, bool *is_v2, size_t cap)
{
    size_t n = 0;
    if (m->unified && n < cap) {
        is_v2[n] = true;
        if (!(dirs[n++] = join(m->unified, cg, NULL)))
            return -ENOMEM;
    }
    if (m->version == CGROUP_V1)
        for (size_t i = 0; i < m->n_v1 && n < cap; i++) {
            is_v2[n] = false;
            if (!(dirs[n++] = join(m->v1[i].mount, cg, NULL)))
                return -ENOMEM;
        }
    return (int)n;
}

#define MAX_DIRS 32

struct dir_list {
    char *d[MAX_DIRS];
    bool v2[MAX_DIRS];
    int n;
};

static void dir_list_free(struct dir_list *l)
{
    for (int i = 0; i < MAX_DIRS; i++)
        free(l->d[i]);
}
#define _cleanup_dirs_ __attribute__((cleanup(dir_list_free)))

int cgroup_attach(struct cgroup_manager *m, const char *path, pid_t pid, err_t *err)
{
    int rc = check_path("cgroup path", path, false, err);
    if (rc < 0)
        return rc;
    if (pid <= 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "moving process %d into cgroup %s: not a process id",
                       (int)pid, path);
    _cleanup_dirs_ struct dir_list l = {0};
    if ((l.n = cgroup_dirs(m, path, l.d, l.v2, MAX_DIRS)) < 0)
        return err_sys(err, ENOMEM, "moving process %d into cgroup %s", (int)pid, path);
    char v[24];
    snprintf(v, sizeof(v), "%d", (int)pid);
    for (int i = 0; i < l.n; i++) {
        _cleanup_free_ char *f = join(l.d[i], "", "cgroup.procs");
        if (!f)
            return err_sys(err, ENOMEM, "moving process %d into cgroup %s", (int)pid, path);
        if ((rc = write_value(f, v)) < 0)
            return err_sys(err, -rc, "moving process %d into cgroup %s: writing %s", (int)pid, path, f);
    }
    return 0;
}

int cgroup_open_v2(struct cgroup_manager *m, const char *path, err_t *err)
{
    if (m->version != CGROUP_V2) {
        int rc = check_path("cgroup path", path, false, err);
        return rc < 0 ? rc
                      : err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                                "cgroup %s: this node uses cgroup v1, which has no single cgroup to start a process in",
                                path);
    }
    return cgroup_open_unified(m, path, err);
}

int cgroup_open_unified(struct cgroup_manager *m, const char *path, err_t *err)
{
    int rc = check_path("cgroup path", path, false, err);
    if (rc < 0)
        return rc;
    if (!m->unified)
        return err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                       "cgroup %s: this node has no writable cgroup2 hierarchy beside its v1 ones", path);
    _cleanup_free_ char *d = join(m->unified, path, NULL);
    if (!d)
        return err_sys(err, ENOMEM, "opening cgroup %s", path);
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening cgroup directory %s", d);
    return fd;
}

/* Calls fn on every child cgroup directory of `dir`. Stops at the first
 * negative return. A missing dir is -ENOENT. */
static int for_each_child(const char *dir, int (*fn)(const char *child, void *ctx), void *ctx)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        _cleanup_free_ char *child = join(dir, "", de->d_name);
        if (!child)
            return -ENOMEM;
        if (de->d_type == DT_UNKNOWN && !is_dir(child))
            continue;
        int r = fn(child, ctx);
        if (r < 0)
            return r;
    }
    return 0;
}

struct walk {
    int depth;
    bool found; /* populated: a process was seen */
};

/* SIGKILLs the processes listed in dir/cgroup.procs. */
static int kill_procs(const char *dir)
{
    _cleanup_free_ char *f = join(dir, "", "cgroup.procs");
    if (!f)
        return -ENOMEM;
    _cleanup_fclose_ FILE *fp = fopen(f, "re");
    if (!fp)
        return -errno;
    long pid;
    while (fscanf(fp, "%ld", &pid) == 1)
        if (pid > 0)
            kill((pid_t)pid, SIGKILL); /* ESRCH: it died meanwhile */
    return 0;
}

static int kill_tree_v1(const char *dir, void *ctx)
{
    struct walk *w = ctx;
    if (w->depth > CG_MAX_DEPTH)
        return -ELOOP;
    /* A frozen v1 cgroup holds its tasks until thawed, SIGKILL or not. */
    _cleanup_free_ char *fz = join(dir, "", "freezer.state");
    char buf[64];
    if (!fz)
        return -ENOMEM;
    if (read_small(fz, buf, sizeof(buf)) > 0 && strcmp(trim(buf), "THAWED") != 0)
        write_value(fz, "THAWED");
    int r = kill_procs(dir);
    if (r < 0) /* a child cgroup removed meanwhile is no failure */
        return r == -ENOENT && w->depth > 0 ? 0 : r;
    w->depth++;
    r = for_each_child(dir, kill_tree_v1, w);
    w->depth--;
    return r;
}

/* Kills everything in the cgroup at `dir` and below. */
static int kill_tree(const char *dir, bool v2)
{
    if (v2) {
        /* cgroup.kill (5.14+) kills the whole subtree at once, forks racing
         * the kill included. */
        _cleanup_free_ char *k = join(dir, "", "cgroup.kill");
        if (!k)
            return -ENOMEM;
        if (is_file(k)) {
            int r = write_value(k, "1");
            if (r == 0 || r == -ENOENT)
                return r;
        }
    }
    struct walk w = {0};
    return kill_tree_v1(dir, &w);
}

static int remove_tree(const char *dir, void *ctx)
{
    struct walk *w = ctx;
    if (w->depth > CG_MAX_DEPTH)
        return -ELOOP;
    w->depth++;
    int r = for_each_child(dir, remove_tree, w);
    w->depth--;
    if (r < 0 && r != -ENOENT)
        return r;
    if (rmdir(dir) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int cgroup_destroy(struct cgroup_manager *m, const char *path, err_t *err)
{
    int rc = check_path("cgroup path", path, false, err);
    if (rc < 0)
        return rc;
    _cleanup_dirs_ struct dir_list l = {0};
    if ((l.n = cgroup_dirs(m, path, l.d, l.v2, MAX_DIRS)) < 0)
        return err_sys(err, ENOMEM, "removing cgroup %s", path);
    int64_t deadline = now_ns() + CG_DESTROY_TIMEOUT_NS;
    for (;;) {
        for (int i = 0; i < l.n; i++) {
            int r = kill_tree(l.d[i], l.v2[i]);
            if (r < 0 && r != -ENOENT)
                return err_sys(err, -r, "removing cgroup %s: killing its processes in %s", path, l.d[i]);
        }
        /* Killed processes leave the cgroup when they finish exiting (a
         * zombie no longer counts); until then rmdir says EBUSY. */
        const char *busy = NULL;
        for (int i = 0; i < l.n; i++) {
            struct walk w = {0};
            int r = remove_tree(l.d[i], &w);
            if (r == -EBUSY)
                busy = l.d[i];
            else if (r < 0 && r != -ENOENT)
                return err_sys(err, -r, "removing cgroup %s: removing %s", path, l.d[i]);
        }
        if (!busy)
            return 0;
        if (now_ns() > deadline)
            return err_set(err, ERR_DEADLINE_EXCEEDED, EBUSY,
                           "removing cgroup %s: %s still holds processes %d s after they were killed", path, busy,
                           (int)(CG_DESTROY_TIMEOUT_NS / 1000000000LL));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- state ---------------------------------------------------------------- */

static int procs_in_tree(const char *dir, void *ctx)
{
    struct walk *w = ctx;
    if (w->found)
        return 0;
    if (w->depth > CG_MAX_DEPTH)
        return -ELOOP;
    _cleanup_free_ char *f = join(dir, "", "cgroup.procs");
    if (!f)
        return -ENOMEM;
    char c[2];
    /* Only whether it is empty: the first bytes say. */
    _cleanup_close_ int fd = open(f, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT && w->depth > 0 ? 0 : -errno;
    ssize_t n = read(fd, c, 1);
    if (n < 0)
        return -errno;
    if (n > 0) {
        w->found = true;
        return 0;
    }
    w->depth++;
    int r = for_each_child(dir, procs_in_tree, w);
    w->depth--;
    return r;
}

int cgroup_populated(struct cgroup_manager *m, const char *path, bool *populated, err_t *err)
{
    int rc = check_path("cgroup path", path, true, err);
    if (rc < 0)
        return rc;
    if (m->version == CGROUP_V2) {
        _cleanup_free_ char *f = join(m->unified, path, "cgroup.events");
        char buf[CG_SMALL_FILE_MAX];
        uint64_t v;
        if (!f)
            return err_sys(err, ENOMEM, "reading cgroup %s", path);
        ssize_t n = read_small(f, buf, sizeof(buf));
        if (n < 0)
            return err_sys(err, (int)-n, "reading %s", f);
        if (!keyed_value(buf, "populated", &v))
            return err_set(err, ERR_INTERNAL, EINVAL, "%s has no \"populated\" line", f);
        *populated = v != 0;
        return 0;
    }
    const struct hierarchy *h = find_hierarchy(m, "memory");
    if (!h)
        h = find_hierarchy(m, "pids");
    if (!h)
        h = &m->v1[0];
    _cleanup_free_ char *d = join(h->mount, path, NULL);
    if (!d)
        return err_sys(err, ENOMEM, "reading cgroup %s", path);
    struct walk w = {0};
    if ((rc = procs_in_tree(d, &w)) < 0)
        return err_sys(err, -rc, "listing the processes of cgroup %s in %s", path, d);
    *populated = w.found;
    return 0;
}

int cgroup_oom_kills(struct cgroup_manager *m, const char *path, uint64_t *count, err_t *err)
{
    int rc = check_path("cgroup path", path, true, err);
    if (rc < 0)
        return rc;
    const char *file = m->version == CGROUP_V2 ? "memory.events" : "memory.oom_control";
    _cleanup_free_ char *f = cgroup_file(m, path, "memory", file);
    if (!f)
        return err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                       "reading the OOM kills of cgroup %s: no memory cgroup hierarchy is mounted", path);
    char buf[CG_SMALL_FILE_MAX];
    ssize_t n = read_small(f, buf, sizeof(buf));
    if (n == -ENOENT && m->version == CGROUP_V2) {
        _cleanup_free_ char *d = join(m->unified, path, NULL);
        if (d && is_dir(d))
            return err_set(err, ERR_FAILED_PRECONDITION, ENOTSUP,
                           "reading the OOM kills of cgroup %s: the memory controller is not enabled (%s does not "
                           "exist)",
                           path, f);
    }
    if (n < 0)
        return err_sys(err, (int)-n, "reading the OOM kills of cgroup %s from %s", path, f);
    if (!keyed_value(buf, "oom_kill", count))
        return err_set(err, ERR_UNIMPLEMENTED, ENOTSUP,
                       "reading the OOM kills of cgroup %s: %s has no oom_kill counter (kernel too old)", path, f);
    return 0;
}
