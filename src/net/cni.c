#include "net/cni.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/list.h"
#include "util/log.h"

extern char **environ;

#define CNI_DEFAULT_TIMEOUT_MS 60000
#define CNI_MAX_OUTPUT         (1u << 20) /* per stream of a plugin run */
#define CNI_MAX_CONF_FILE      (1u << 20)
#define CNI_MAX_CACHE_FILE     (4u << 20) /* a configuration and a result */
#define CNI_MAX_CONF_FILES     4096
#define CNI_MAX_CONF_TOTAL     (16u << 20) /* read per reload before giving up */
#define CNI_MAX_PLUGINS        32
#define CNI_MAX_LIST_ITEMS     256 /* interfaces or ips in a result */
#define CNI_MAX_NAME           256
#define CNI_MSG_MAX            1024 /* plugin text quoted in an error */
#define CNI_KILL_GRACE_MS      2000 /* after SIGKILL, before giving up on a child */
#define CNI_DEFAULT_NETWORK    "edgecri"
#define CNI_DEFAULT_BRIDGE     "edgecri0"

/* ---- small helpers ------------------------------------------------------ */

/* The spec's rule for container ids and network names. */
static bool valid_cni_name(const char *s)
{
    if (!s || !isalnum((unsigned char)s[0]))
        return false;
    size_t n = strlen(s);
    if (n > CNI_MAX_NAME)
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

/* Linux interface names as the spec restricts them. */
static bool valid_ifname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '/' || s[i] == ':')
            return false;
    return true;
}

/* A plugin "type" is looked up as a file name in bin_dirs: a plain name. */
static bool valid_plugin_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX || s[0] == '.' || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '/')
            return false;
    return true;
}

/* CNI_ARGS values: "K=V;K=V", so neither separator may appear. */
static bool valid_arg_value(const char *s)
{
    if (strlen(s) > 512)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ';' || *p == '=')
            return false;
    return true;
}

/* Supported versions, as a comparable number; -1 for any other. */
static int parse_version(const char *v)
{
    static const struct {
        const char *s;
        int n;
    } known[] = {{"0.3.0", 300}, {"0.3.1", 301}, {"0.4.0", 400}, {"1.0.0", 1000}};
    for (size_t i = 0; v && i < ARRAY_SIZE(known); i++)
        if (strcmp(v, known[i].s) == 0)
            return known[i].n;
    return -1;
}
#define SUPPORTED_VERSIONS "0.3.0, 0.3.1, 0.4.0, 1.0.0"

/* "a.b.c.d[/len]" or "x::y[/len]"; family out. `need_prefix` requires it. */
static bool parse_ip_prefix(const char *text, bool need_prefix, int *family, char *addr_out, size_t addr_len)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(addr) || (need_prefix && !slash))
        return false;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    unsigned char bytes[16];
    int fam;
    unsigned maxlen;
    if (inet_pton(AF_INET, addr, bytes) == 1) {
        fam = AF_INET;
        maxlen = 32;
    } else if (inet_pton(AF_INET6, addr, bytes) == 1) {
        fam = AF_INET6;
        maxlen = 128;
    } else {
        return false;
    }
    if (slash) {
        const char *d = slash + 1;
        size_t nd = strspn(d, "0123456789");
        if (nd == 0 || nd > 3 || d[nd] != '\0' || (d[0] == '0' && nd > 1) || strtoul(d, NULL, 10) > maxlen)
            return false;
    }
    if (family)
        *family = fam;
    if (addr_out) {
        if (alen >= addr_len)
            return false;
        memcpy(addr_out, addr, alen + 1);
    }
    return true;
}

/* Text a plugin printed, made fit for one line of an error message: control
 * characters become spaces, runs of space collapse, at most CNI_MSG_MAX bytes
 * (the end, where the reason usually is, when `tail`). */
static void clean_text(char *dst, size_t cap, const char *src, size_t len, bool tail)
{
    size_t max = cap - 1 < CNI_MSG_MAX ? cap - 1 : CNI_MSG_MAX;
    bool cut = false;
    if (len > max) {
        if (tail)
            src += len - max;
        len = max;
        cut = true;
    }
    size_t o = 0;
    if (cut && tail && cap > 4) {
        memcpy(dst, "...", 3);
        o = 3;
    }
    bool space = true;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch == 0x7f)
            ch = ' ';
        if (ch == ' ' && space)
            continue;
        space = ch == ' ';
        dst[o++] = (char)ch;
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    if (cut && !tail && o + 4 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

/* Appends to an error message already set (err_wrap prepends). */
static void err_append(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(err_t *e, const char *fmt, ...)
{
    char *tail = NULL, *joined = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&tail, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    if (asprintf(&joined, "%s%s", e->msg ? e->msg : "", tail) >= 0) {
        free(e->msg);
        e->msg = joined;
    }
    free(tail);
}

/* ---- configuration ------------------------------------------------------ */

/* What decides whether the configuration directory must be read again. */
struct stat_key {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

static struct stat_key stat_key_of(const char *path)
{
    struct stat st;
    struct stat_key k = {0};
    if (path && stat(path, &st) == 0)
        k = (struct stat_key){true, st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    return k;
}

static bool stat_key_eq(const struct stat_key *a, const struct stat_key *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                          a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
                          a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec);
}

struct cni {
    uv_loop_t *loop;
    char *conf_dir, *cache_dir, *results_dir, *default_path, *ipam_dir;
    char **bin_dirs;
    size_t n_bin_dirs;
    char *cni_path; /* bin_dirs joined with ':' */
    uint64_t timeout_ms;

    json_t *conf;       /* the list from conf_dir, NULL when none */
    char *conf_file;    /* where it came from */
    char *watch_file;   /* the file whose change means a reload: conf_file or the first one skipped */
    char *conf_problem; /* why conf_dir gave nothing (NULL: empty or missing) */
    bool loaded;
    struct stat_key dir_key, file_key;

    json_t *default_conf; /* the built-in network, NULL without a pod CIDR */

    struct list_node ops;
};

/* Reads a configuration file without ever blocking on a FIFO or a device:
 * O_NONBLOCK for the open, then it must be a regular file. */
static int read_conf_file(const char *path, size_t max, char **out, size_t *out_len, err_t *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return err_sys(err, errno, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "inspecting %s", path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is not a regular file", path);
    if ((uint64_t)st.st_size > max)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, EFBIG, "%s is larger than %zu bytes", path, max);
    _cleanup_free_ char *buf = malloc(max + 1);
    if (!buf)
        return err_sys(err, ENOMEM, "reading %s", path);
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_sys(err, errno, "reading %s", path);
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max)
            return err_set(err, ERR_RESOURCE_EXHAUSTED, EFBIG, "%s is larger than %zu bytes", path, max);
    }
    buf[got] = '\0';
    *out = steal_pointer(&buf);
    *out_len = got;
    return 0;
}

static int check_plugin_conf(json_t *p, size_t idx, err_t *err)
{
    if (!json_is_object(p))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %zu is not an object", idx);
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %zu has no \"type\"", idx);
    if (!valid_plugin_name(type))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %zu: type \"%.64s\" is not a plain file name", idx,
                       type);
    json_t *ipam = json_object_get(p, "ipam");
    if (ipam) {
        if (!json_is_object(ipam))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %s: \"ipam\" is not an object", type);
        json_t *it = json_object_get(ipam, "type");
        if (it && (!json_is_string(it) || !valid_plugin_name(json_string_value(it))))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %s: ipam \"type\" is not a plain file name",
                           type);
    }
    json_t *caps = json_object_get(p, "capabilities");
    if (caps && !json_is_object(caps))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "plugin %s: \"capabilities\" is not an object", type);
    return 0;
}

/* Validates a network configuration and returns it as a list (a new
 * reference): a list is checked as it is, a single plugin (`single_ok`) is
 * wrapped into one with its name and cniVersion. */
static int netconf_from_json(json_t *root, bool single_ok, json_t **out, err_t *err)
{
    if (!json_is_object(root))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "not a JSON object");
    const char *version = json_string_value(json_object_get(root, "cniVersion"));
    const char *name = json_string_value(json_object_get(root, "name"));
    if (!version)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "no \"cniVersion\"");
    if (parse_version(version) < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "cniVersion \"%.32s\" is not supported (" SUPPORTED_VERSIONS ")", version);
    if (!name || !valid_cni_name(name))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "\"name\" is missing or not a valid network name");

    json_t *plugins = json_object_get(root, "plugins");
    if (plugins) {
        if (!json_is_array(plugins) || json_array_size(plugins) == 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "\"plugins\" is not a non-empty list");
        if (json_array_size(plugins) > CNI_MAX_PLUGINS)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "more than %d plugins", CNI_MAX_PLUGINS);
        for (size_t i = 0; i < json_array_size(plugins); i++) {
            int r = check_plugin_conf(json_array_get(plugins, i), i, err);
            if (r < 0)
                return r;
        }
        json_t *dc = json_object_get(root, "disableCheck");
        if (dc && !json_is_boolean(dc) &&
            !(json_is_string(dc) &&
              (strcmp(json_string_value(dc), "true") == 0 || strcmp(json_string_value(dc), "false") == 0)))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "\"disableCheck\" is not true or false");
        *out = json_incref(root);
        return 0;
    }
    if (!single_ok || !json_object_get(root, "type"))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "no \"plugins\" list");
    int r = check_plugin_conf(root, 0, err);
    if (r < 0)
        return r;
    json_t *list = json_pack("{s:s, s:s, s:[O]}", "cniVersion", version, "name", name, "plugins", root);
    if (!list)
        return err_sys(err, ENOMEM, "wrapping a plugin configuration");
    *out = list;
    return 0;
}

static const char *netconf_name(json_t *list)
{
    const char *n = list ? json_string_value(json_object_get(list, "name")) : NULL;
    return n ? n : "";
}

static int netconf_version(json_t *list)
{
    return parse_version(json_string_value(json_object_get(list, "cniVersion")));
}

static bool netconf_disable_check(json_t *list)
{
    json_t *dc = json_object_get(list, "disableCheck");
    return json_is_true(dc) || (json_is_string(dc) && strcmp(json_string_value(dc), "true") == 0);
}

static int load_conf_file(const char *path, bool is_list, size_t *total_read, json_t **out, err_t *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_conf_file(path, CNI_MAX_CONF_FILE, &text, &len, err);
    if (r < 0)
        return r;
    *total_read += len;
    json_error_t jerr;
    json_auto_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "line %d: %s", jerr.line, jerr.text);
    return netconf_from_json(root, !is_list, out, err);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Candidate file names of conf_dir, sorted. Returns -ENOENT for a missing
 * directory. */
static int list_conf_dir(const char *dir, char ***out, size_t *n_out, err_t *err)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? -ENOENT : err_sys(err, errno, "reading CNI configuration directory %s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int r = 0;
    errno = 0;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (name[0] == '.')
            continue;
        const char *dot = strrchr(name, '.');
        if (!dot || (strcmp(dot, ".conflist") != 0 && strcmp(dot, ".conf") != 0 && strcmp(dot, ".json") != 0) ||
            dot == name || len > NAME_MAX)
            continue;
        if (n == CNI_MAX_CONF_FILES) {
            r = err_set(err, ERR_RESOURCE_EXHAUSTED, E2BIG, "CNI configuration directory %s has more than %d files",
                        dir, CNI_MAX_CONF_FILES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn) {
                r = err_sys(err, ENOMEM, "reading %s", dir);
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(name))) {
            r = err_sys(err, ENOMEM, "reading %s", dir);
            break;
        }
        n++;
    }
    if (r == 0 && errno != 0)
        r = err_sys(err, errno, "reading CNI configuration directory %s", dir);
    if (r < 0) {
        free_names(names, n);
        return r;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    *n_out = n;
    return 0;
}

static void set_conf(struct cni *c, json_t *conf, char *file, char *problem)
{
    json_decref(c->conf);
    free(c->conf_file);
    free(c->conf_problem);
    c->conf = conf;
    c->conf_file = file;
    c->conf_problem = problem;
}

int cni_reload(struct cni *c, err_t *err)
{
    c->loaded = true;
    c->dir_key = stat_key_of(c->conf_dir);
    c->file_key = (struct stat_key){0};
    char **names = NULL;
    size_t n = 0;
    err_t lerr = ERR_INIT;
    int r = list_conf_dir(c->conf_dir, &names, &n, &lerr);
    free(c->watch_file);
    c->watch_file = NULL;
    if (r == -ENOENT) {
        set_conf(c, NULL, NULL, NULL);
        return 0;
    }
    if (r < 0) {
        set_conf(c, NULL, NULL, strdup(lerr.msg ? lerr.msg : "cannot read the CNI configuration directory"));
        err_move(err, &lerr);
        return r;
    }

    /* Notes on the files skipped, for the not-ready reason (the first few). */
    char skipped[1024] = "";
    size_t n_skipped = 0;
    json_t *found = NULL;
    char *found_path = NULL;
    size_t total_read = 0;
    for (size_t i = 0; i < n && !found; i++) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", c->conf_dir, names[i]) < 0)
            continue;
        /* The reads happen on the loop thread: a directory full of big bad
         * files must not stall it. */
        if (total_read > CNI_MAX_CONF_TOTAL) {
            log_warn("CNI: stopped looking for a configuration in %s after %zu bytes of unusable files", c->conf_dir,
                     total_read);
            n_skipped += 3;
            break;
        }
        bool is_list = strcmp(strrchr(names[i], '.'), ".conflist") == 0;
        if (load_conf_file(path, is_list, &total_read, &found, &lerr) == 0) {
            found_path = steal_pointer(&path);
            break;
        }
        if (!c->watch_file)
            c->watch_file = strdup(path); /* fixing it in place must be noticed */
        log_warn("CNI: skipping %s: %s", path, lerr.msg ? lerr.msg : "invalid");
        if (n_skipped++ < 3) {
            size_t used = strlen(skipped);
            snprintf(skipped + used, sizeof(skipped) - used, "%s%s: %s", used ? "; " : "", names[i],
                     lerr.msg ? lerr.msg : "invalid");
        }
        err_clear(&lerr);
    }
    free_names(names, n);

    char *problem = NULL;
    if (!found && n_skipped &&
        asprintf(&problem, "no usable CNI configuration in %s (skipped %s%s)", c->conf_dir, skipped,
                 n_skipped > 3 ? "; ..." : "") < 0)
        problem = NULL;
    if (found) {
        free(c->watch_file);
        c->watch_file = strdup(found_path);
        log_info("CNI: using network %s from %s", netconf_name(found), found_path);
    }
    c->file_key = stat_key_of(c->watch_file);
    set_conf(c, found, found_path, problem);
    return 0;
}

/* Re-reads conf_dir when it or the chosen file changed since the last read. */
static void reload_if_changed(struct cni *c)
{
    struct stat_key dk = stat_key_of(c->conf_dir);
    struct stat_key fk = stat_key_of(c->watch_file);
    if (c->loaded && stat_key_eq(&dk, &c->dir_key) && stat_key_eq(&fk, &c->file_key))
        return;
    err_t err = ERR_INIT;
    if (cni_reload(c, &err) < 0)
        log_warn("CNI: %s", err.msg);
    err_clear(&err);
}

/* The network in use. The built-in one only stands in for an empty
 * directory: when files are there but none is usable, the administrator
 * meant one of them, and silently putting pods on another network would
 * hide the mistake. */
static json_t *current_network(struct cni *c, const char **file)
{
    if (c->conf) {
        if (file)
            *file = c->conf_file;
        return c->conf;
    }
    if (c->conf_problem)
        return NULL;
    if (file)
        *file = c->default_path;
    return c->default_conf;
}

const char *cni_network_name(struct cni *c)
{
    reload_if_changed(c);
    return netconf_name(current_network(c, NULL));
}

const char *cni_network_file(struct cni *c)
{
    const char *file = NULL;
    reload_if_changed(c);
    return current_network(c, &file) ? file : "";
}

/* ---- plugins on disk ---------------------------------------------------- */

static int find_plugin(struct cni *c, const char *type, char **path, err_t *err)
{
    if (!valid_plugin_name(type))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI plugin type \"%.64s\" is not a plain file name", type);
    for (size_t i = 0; i < c->n_bin_dirs; i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", c->bin_dirs[i], type) < 0)
            return err_sys(err, ENOMEM, "looking for CNI plugin %s", type);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
            if (path)
                *path = p;
            else
                free(p);
            return 0;
        }
        free(p);
    }
    return err_set(err, ERR_FAILED_PRECONDITION, ENOENT, "plugin %s not found in %s", type, c->cni_path);
}

/* Every plugin a network names, IPAM plugins included, is installed. */
static int check_plugins(struct cni *c, json_t *list, err_t *err)
{
    json_t *plugins = json_object_get(list, "plugins");
    for (size_t i = 0; i < json_array_size(plugins); i++) {
        json_t *p = json_array_get(plugins, i);
        const char *types[2] = {json_string_value(json_object_get(p, "type")),
                                json_string_value(json_object_get(json_object_get(p, "ipam"), "type"))};
        for (size_t t = 0; t < 2; t++) {
            if (!types[t])
                continue;
            int r = find_plugin(c, types[t], NULL, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

bool cni_ready(struct cni *c, char **reason)
{
    if (reason)
        *reason = NULL;
    reload_if_changed(c);
    const char *file = NULL;
    json_t *list = current_network(c, &file);
    char *why = NULL;
    if (!list) {
        if (c->conf_problem) {
            why = strdup(c->conf_problem);
        } else if (asprintf(&why, "no CNI configuration in %s and no pod CIDR for the built-in network", c->conf_dir) <
                   0) {
            why = NULL;
        }
    } else {
        err_t err = ERR_INIT;
        if (check_plugins(c, list, &err) < 0 &&
            asprintf(&why, "%s (network %s from %s)", err.msg, netconf_name(list), file) < 0)
            why = NULL;
        err_clear(&err);
        if (!why)
            return true;
    }
    if (reason)
        *reason = why ? why : strdup("CNI is not ready");
    else
        free(why);
    return false;
}

/* ---- the built-in network ----------------------------------------------- */

/* Writes a file atomically (temp + rename) without fsync: it is derived data,
 * regenerated from the durable pod CIDR at every start, and a sync would
 * stall the loop. */
static int write_file_nosync(const char *path, const char *data, size_t len, err_t *err)
{
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
        return err_sys(err, ENOMEM, "writing %s", path);
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "creating a temporary file for %s", path);
    int r = fchmod(fd, 0644) < 0 ? -errno : 0;
    for (size_t off = 0; r == 0 && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        else
            off += (size_t)n;
    }
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return err_sys(err, -r, "writing %s", path);
    }
    return 0;
}

int cni_set_default_network(struct cni *c, const char *pod_cidr, err_t *err)
{
    const char *v4 = NULL, *v6 = NULL;
    _cleanup_free_ char *copy = strdup(pod_cidr ? pod_cidr : "");
    if (!copy)
        return err_sys(err, ENOMEM, "setting the default CNI network");
    if (strlen(copy) > 256)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR list is too long");
    char *rest = copy;
    if (strspn(copy, " ") == strlen(copy))
        rest = NULL;
    for (char *item; (item = strsep(&rest, ",")) != NULL;) {
        while (*item == ' ')
            item++;
        char *e = item + strlen(item);
        while (e > item && e[-1] == ' ')
            *--e = '\0';
        int fam = 0;
        if (!parse_ip_prefix(item, true, &fam, NULL, 0))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR \"%.64s\" is not an address/prefix", item);
        const char **slot = fam == AF_INET ? &v4 : &v6;
        if (*slot)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR list \"%.256s\" has two %s networks", pod_cidr,
                           fam == AF_INET ? "IPv4" : "IPv6");
        *slot = item;
    }

    if (!v4 && !v6) {
        json_decref(c->default_conf);
        c->default_conf = NULL;
        if (unlink(c->default_path) < 0 && errno != ENOENT)
            log_warn("CNI: removing %s: %s", c->default_path, strerror(errno));
        return 0;
    }

    json_auto_t *ranges = json_array();
    json_auto_t *routes = json_array();
    if (v4) {
        json_array_append_new(ranges, json_pack("[{s:s}]", "subnet", v4));
        json_array_append_new(routes, json_pack("{s:s}", "dst", "0.0.0.0/0"));
    }
    if (v6) {
        json_array_append_new(ranges, json_pack("[{s:s}]", "subnet", v6));
        json_array_append_new(routes, json_pack("{s:s}", "dst", "::/0"));
    }
    json_auto_t *list = json_pack("{s:s, s:s, s:[{s:s, s:s, s:b, s:b, s:b, s:{s:s, s:O, s:O, s:s}}, "
                                  "{s:s, s:{s:b}}, {s:s}]}",
                                  "cniVersion", "1.0.0", "name", CNI_DEFAULT_NETWORK, "plugins", "type", "bridge",
                                  "bridge", CNI_DEFAULT_BRIDGE, "isGateway", 1, "ipMasq", 1, "hairpinMode", 1, "ipam",
                                  "type", "host-local", "ranges", ranges, "routes", routes, "dataDir", c->ipam_dir,
                                  "type", "portmap", "capabilities", "portMappings", 1, "type", "loopback");
    if (!list || json_array_size(ranges) != (v4 && v6 ? 2u : 1u))
        return err_sys(err, ENOMEM, "building the default CNI network");
    _cleanup_free_ char *text = json_dumps(list, JSON_INDENT(2));
    if (!text)
        return err_sys(err, ENOMEM, "building the default CNI network");
    size_t len = strlen(text);
    int r = fs_mkdir_p(c->cache_dir, 0700, err);
    if (r == 0)
        r = write_file_nosync(c->default_path, text, len, err);
    if (r < 0)
        return err_wrap(err, "writing the default CNI network");
    json_decref(c->default_conf);
    c->default_conf = json_incref(list);
    /* Prepared either way; it is the one in use only while conf_dir has
     * no usable configuration. */
    log_info("CNI: built-in network %s on %s%s%s (used when %s has no configuration)", CNI_DEFAULT_NETWORK,
             v4 ? v4 : "", v4 && v6 ? "," : "", v6 ? v6 : "", c->conf_dir);
    return 0;
}

/* ---- results ------------------------------------------------------------ */

void cni_result_free(struct cni_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ips; i++)
        free(r->ips[i]);
    free(r->ips);
    free(r->interface_mac);
    free(r->raw_json);
    free(r);
}

struct cni_result *cni_result_dup(const struct cni_result *r)
{
    if (!r)
        return NULL;
    struct cni_result *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->ips = calloc(r->n_ips ? r->n_ips : 1, sizeof(char *));
    if (!d->ips)
        goto fail;
    for (; d->n_ips < r->n_ips; d->n_ips++)
        if (!(d->ips[d->n_ips] = strdup(r->ips[d->n_ips])))
            goto fail;
    if ((r->interface_mac && !(d->interface_mac = strdup(r->interface_mac))) ||
        (r->raw_json && !(d->raw_json = strdup(r->raw_json))))
        goto fail;
    return d;
fail:
    cni_result_free(d);
    return NULL;
}

static bool valid_mac(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 && strspn(s, "0123456789abcdefABCDEF:.-") == n;
}

/* Validates a plugin's success result (0.3.x, 0.4.0 or 1.0.0 format) and,
 * when `out` is given, extracts the sandbox addresses and MAC. */
static int parse_result(json_t *res, const char *ifname, struct cni_result **out, err_t *err)
{
    if (!json_is_object(res))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result is not a JSON object");
    const char *vs = json_string_value(json_object_get(res, "cniVersion"));
    int ver = parse_version(vs);
    if (ver < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "the result's cniVersion \"%.32s\" is not supported (" SUPPORTED_VERSIONS ")", vs ? vs : "");

    json_t *ifs = json_object_get(res, "interfaces");
    if (ifs && !json_is_array(ifs))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result's \"interfaces\" is not a list");
    size_t n_ifs = json_array_size(ifs);
    if (n_ifs > CNI_MAX_LIST_ITEMS)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result lists more than %d interfaces",
                       CNI_MAX_LIST_ITEMS);
    for (size_t i = 0; i < n_ifs; i++) {
        json_t *it = json_array_get(ifs, i);
        json_t *mac = json_object_get(it, "mac"), *sb = json_object_get(it, "sandbox");
        if (!json_is_object(it) || !json_is_string(json_object_get(it, "name")) || (mac && !json_is_string(mac)) ||
            (sb && !json_is_string(sb)))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result's interface %zu is malformed", i);
    }

    json_t *ips = json_object_get(res, "ips");
    if (ips && !json_is_array(ips))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result's \"ips\" is not a list");
    size_t n_ips = json_array_size(ips);
    if (n_ips > CNI_MAX_LIST_ITEMS)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result lists more than %d addresses",
                       CNI_MAX_LIST_ITEMS);

    struct cni_result *r = NULL;
    if (out && !(r = calloc(1, sizeof(*r))))
        return err_sys(err, ENOMEM, "parsing a CNI result");
    if (r && !(r->ips = calloc(n_ips ? n_ips : 1, sizeof(char *)))) {
        free(r);
        return err_sys(err, ENOMEM, "parsing a CNI result");
    }
    int rc = 0;
    const json_t *first_if = NULL;
    /* Two passes so IPv4 comes first whatever the plugin's order. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < n_ips; i++) {
            json_t *ip = json_array_get(ips, i);
            const char *addr = json_string_value(json_object_get(ip, "address"));
            char text[INET6_ADDRSTRLEN + 1];
            int fam = 0;
            if (!json_is_object(ip) || !addr || !parse_ip_prefix(addr, true, &fam, text, sizeof(text))) {
                rc = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the result's address %zu is not address/prefix", i);
                break;
            }
            json_t *v = json_object_get(ip, "version");
            if (v && ver < 1000) {
                const char *vv = json_string_value(v);
                if (!vv || strcmp(vv, fam == AF_INET ? "4" : "6") != 0) {
                    rc = err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                                 "the result's address %zu does not match its \"version\"", i);
                    break;
                }
            }
            json_t *idx = json_object_get(ip, "interface");
            const json_t *iface = NULL;
            if (idx) {
                if (!json_is_integer(idx) || json_integer_value(idx) < 0 || (size_t)json_integer_value(idx) >= n_ifs) {
                    rc = err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                                 "the result's address %zu names an interface that is not listed", i);
                    break;
                }
                iface = json_array_get(ifs, (size_t)json_integer_value(idx));
                const char *sb = json_string_value(json_object_get(iface, "sandbox"));
                if (!sb || !*sb)
                    continue; /* an address on the host side (a gateway interface) */
            }
            if (!r || (pass == 0) != (fam == AF_INET))
                continue;
            if (!(r->ips[r->n_ips] = strdup(text))) {
                rc = err_sys(err, ENOMEM, "parsing a CNI result");
                break;
            }
            r->n_ips++;
            if (!first_if && iface)
                first_if = iface;
        }
    }
    if (rc == 0 && r) {
        /* The MAC of the sandbox interface CNI_IFNAME, else of the one holding the first address. */
        const char *mac = NULL;
        for (size_t i = 0; i < n_ifs && !mac; i++) {
            json_t *it = json_array_get(ifs, i);
            const char *sb = json_string_value(json_object_get(it, "sandbox"));
            if (sb && *sb && strcmp(json_string_value(json_object_get(it, "name")), ifname) == 0)
                mac = json_string_value(json_object_get(it, "mac"));
        }
        if (!mac && first_if)
            mac = json_string_value(json_object_get(first_if, "mac"));
        if (mac && valid_mac(mac) && !(r->interface_mac = strdup(mac)))
            rc = err_sys(err, ENOMEM, "parsing a CNI result");
        if (rc == 0 && !(r->raw_json = json_dumps(res, JSON_COMPACT)))
            rc = err_sys(err, ENOMEM, "parsing a CNI result");
    }
    if (rc < 0) {
        cni_result_free(r);
        return rc;
    }
    if (out)
        *out = r;
    return 0;
}

/* ---- plugin runs: one child process ------------------------------------- */

struct obuf {
    char *data;
    size_t len, cap;
    bool overflow;
};

static void obuf_append(struct obuf *b, const char *p, size_t n)
{
    if (b->len + n > CNI_MAX_OUTPUT) {
        b->overflow = true;
        n = CNI_MAX_OUTPUT - b->len;
    }
    if (n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > CNI_MAX_OUTPUT + 1)
            cap = CNI_MAX_OUTPUT + 1;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->overflow = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

struct cni_op;

struct plugin_run {
    struct cni_op *op; /* NULL once the operation let go of it */
    char *name;        /* the plugin type, for messages */
    const char *command;
    uv_process_t proc;
    uv_pipe_t in, out, errp;
    uv_timer_t timer;
    uv_write_t wreq;
    char *input;
    struct obuf outb, errb;
    int pending_close;
    pid_t pid;
    bool exited, out_eof, err_eof, timed_out, killed, finished;
    int64_t exit_status;
    int term_signal;
    char rbuf[65536];
};

static void op_plugin_done(struct cni_op *op, struct plugin_run *r);

static void run_closed(uv_handle_t *h)
{
    struct plugin_run *r = h->data;
    if (--r->pending_close > 0)
        return;
    free(r->name);
    free(r->input);
    free(r->outb.data);
    free(r->errb.data);
    free(r);
}

static void run_close(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, run_closed);
}

/* The plugin runs in its own session (UV_PROCESS_DETACHED), so its process
 * group holds whatever it started too. */
static void run_kill(struct plugin_run *r, bool group_even_if_exited)
{
    if (r->pid <= 0)
        return;
    if (!r->exited) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
    } else if (group_even_if_exited) {
        kill(-r->pid, SIGKILL);
    }
    r->killed = true;
}

static void run_finish(struct plugin_run *r)
{
    if (r->finished)
        return;
    r->finished = true;
    uv_timer_stop(&r->timer);
    run_close((uv_handle_t *)&r->in);
    run_close((uv_handle_t *)&r->out);
    run_close((uv_handle_t *)&r->errp);
    run_close((uv_handle_t *)&r->timer);
    /* A child that never exited (stuck after SIGKILL) is left to init once
     * we are gone; the handle cannot wait forever. */
    run_close((uv_handle_t *)&r->proc);
    struct cni_op *op = r->op;
    r->op = NULL;
    if (op)
        op_plugin_done(op, r); /* buffers stay valid until the close callbacks */
}

static void run_try_finish(struct plugin_run *r)
{
    if (r->exited && r->out_eof && r->err_eof)
        run_finish(r);
}

static void run_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct plugin_run *r = h->data;
    *buf = uv_buf_init(r->rbuf, sizeof(r->rbuf));
}

static void run_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct plugin_run *r = s->data;
    bool is_out = s == (uv_stream_t *)&r->out;
    if (n > 0) {
        struct obuf *b = is_out ? &r->outb : &r->errb;
        obuf_append(b, buf->base, (size_t)n);
        /* Endless stdout is a broken plugin; endless stderr is only cut. */
        if (b->overflow && is_out && !r->killed)
            run_kill(r, false);
        return;
    }
    if (n == 0)
        return;
    uv_read_stop(s);
    if (is_out)
        r->out_eof = true;
    else
        r->err_eof = true;
    run_try_finish(r);
}

static void run_exited(uv_process_t *p, int64_t status, int sig)
{
    struct plugin_run *r = p->data;
    r->exited = true;
    r->exit_status = status;
    r->term_signal = sig;
    run_try_finish(r);
}

static void run_timeout(uv_timer_t *t)
{
    struct plugin_run *r = t->data;
    if (!r->exited && !r->killed) {
        r->timed_out = true;
        run_kill(r, false);
        uv_timer_start(&r->timer, run_timeout, CNI_KILL_GRACE_MS, 0);
        return;
    }
    /* Exited, but something it started still holds its output open; or it
     * does not die even after SIGKILL. */
    if (r->exited && !r->timed_out && !(r->outb.overflow))
        r->timed_out = true;
    run_kill(r, true);
    run_finish(r);
}

static void run_written(uv_write_t *req, int status)
{
    struct plugin_run *r = req->data;
    if (status < 0 && status != UV_ECANCELED)
        log_debug("CNI: writing the configuration to plugin %s: %s", r->name, uv_strerror(status));
    run_close((uv_handle_t *)&r->in);
}

/* Starts `path` with `env`, `input` on stdin. Returns the run, or NULL with
 * `err` set (the run then cleans itself up). */
static struct plugin_run *run_start(uv_loop_t *loop, struct cni_op *op, const char *name, const char *command,
                                    const char *path, char **env, char *input, uint64_t timeout_ms, err_t *err)
{
    struct plugin_run *r = calloc(1, sizeof(*r));
    if (!r || !(r->name = strdup(name))) {
        free(r);
        free(input);
        err_sys(err, ENOMEM, "running CNI plugin %s", name);
        return NULL;
    }
    r->op = op;
    r->command = command;
    r->input = input;
    r->proc.data = r->in.data = r->out.data = r->errp.data = r->timer.data = r->wreq.data = r;
    uv_pipe_init(loop, &r->in, 0);
    uv_pipe_init(loop, &r->out, 0);
    uv_pipe_init(loop, &r->errp, 0);
    uv_timer_init(loop, &r->timer);
    r->pending_close = 5;

    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&r->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->errp},
    };
    char *args[] = {(char *)path, NULL};
    uv_process_options_t o = {
        .exit_cb = run_exited,
        .file = path,
        .args = args,
        .env = env,
        .cwd = "/",
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(loop, &r->proc, &o);
    if (rc < 0) {
        err_set(err, ERR_FAILED_PRECONDITION, -rc, "starting CNI plugin %s: %s", path, uv_strerror(rc));
        r->op = NULL;
        r->finished = true;
        uv_close((uv_handle_t *)&r->proc, run_closed);
        uv_close((uv_handle_t *)&r->in, run_closed);
        uv_close((uv_handle_t *)&r->out, run_closed);
        uv_close((uv_handle_t *)&r->errp, run_closed);
        uv_close((uv_handle_t *)&r->timer, run_closed);
        return NULL;
    }
    r->pid = r->proc.pid;
    if (uv_read_start((uv_stream_t *)&r->out, run_alloc, run_read) < 0)
        r->out_eof = true;
    if (uv_read_start((uv_stream_t *)&r->errp, run_alloc, run_read) < 0)
        r->err_eof = true;
    uv_buf_t b = uv_buf_init(r->input, (unsigned)strlen(r->input));
    if (uv_write(&r->wreq, (uv_stream_t *)&r->in, &b, 1, run_written) < 0)
        run_close((uv_handle_t *)&r->in);
    uv_timer_start(&r->timer, run_timeout, timeout_ms, 0);
    return r;
}

/* ---- operations --------------------------------------------------------- */

enum op_kind { OP_ADD, OP_DEL, OP_CHECK };
enum op_phase { PH_PREPARE, PH_PLUGINS, PH_ROLLBACK, PH_STORE, PH_REMOVE };

static const char *const op_command[] = {"ADD", "DEL", "CHECK"};

struct cni_op {
    struct cni *c; /* NULL once cni_free let go of the operation */
    struct list_node link;
    enum op_kind kind;
    enum op_phase phase;
    bool waiting; /* queued behind another operation on the same attachment */
    bool in_job;  /* a thread-pool job holds it */

    char *key; /* container_id@ifname: the attachment, and the cache file name */
    char *container_id, *ifname, *netns, *cni_args;
    json_t *rt; /* runtime configuration the request offers, by capability */

    json_t *conf; /* the network list in use */
    int ver;
    json_t *prev; /* prevResult: the chain so far (ADD) or the cached result */
    long idx;     /* the plugin running */

    struct plugin_run *run;
    err_t err;        /* the error reported */
    char *cleanup_pb; /* what went wrong while undoing a failed ADD */

    /* Thread-pool job: inputs and outputs, touched by the pool thread only
     * while in_job. */
    uv_work_t work;
    char *cache_path;
    char *results_dir;
    char *job_data;
    size_t job_len;
    bool job_found;
    err_t job_err;

    cni_done_fn done;
    void *data;
};

static void op_free(struct cni_op *op)
{
    free(op->key);
    free(op->container_id);
    free(op->ifname);
    free(op->netns);
    free(op->cni_args);
    json_decref(op->rt);
    json_decref(op->conf);
    json_decref(op->prev);
    err_clear(&op->err);
    free(op->cleanup_pb);
    free(op->cache_path);
    free(op->results_dir);
    free(op->job_data);
    err_clear(&op->job_err);
    free(op);
}

static int op_start(struct cni_op *op, err_t *err);
static void op_next(struct cni_op *op);

/* Keeps the first error: it is the cause, later ones are consequences. */
static void op_fail(struct cni_op *op, err_t *e)
{
    if (!op->err.msg)
        err_move(&op->err, e);
    err_clear(e);
}

/* Reports the outcome and frees the operation. The next operation waiting on
 * the same attachment is started before the callback runs, and nothing of
 * `c` is touched after it, so the callback may even call cni_free. */
static void op_finish(struct cni_op *op)
{
    struct cni *c = op->c;
    if (c) {
        list_del(&op->link);
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, &c->ops)
        {
            struct cni_op *o = list_entry(pos, struct cni_op, link);
            if (o->waiting && strcmp(o->key, op->key) == 0) {
                err_t e = ERR_INIT;
                o->waiting = false;
                if (op_start(o, &e) < 0) {
                    op_fail(o, &e);
                    op_finish(o);
                }
                break;
            }
        }
    }
    struct cni_result *res = NULL;
    if (!op->err.msg && op->kind == OP_ADD && parse_result(op->prev, op->ifname, &res, &op->err) < 0)
        err_wrap(&op->err, "CNI ADD of network %s", netconf_name(op->conf));
    if (op->err.msg && op->cleanup_pb)
        err_append(&op->err, " (undoing it also failed: %s)", op->cleanup_pb);
    if (op->err.msg)
        log_warn("CNI: %s %s/%s: %s", op_command[op->kind], op->container_id, op->ifname, op->err.msg);
    else
        log_debug("CNI: %s %s/%s done", op_command[op->kind], op->container_id, op->ifname);
    if (c && op->done)
        op->done(op->data, op->err.msg ? NULL : res, op->err.msg ? &op->err : NULL);
    cni_result_free(res);
    op_free(op);
}

/* ---- pool jobs ---- */

static void job_prepare(uv_work_t *w)
{
    struct cni_op *op = w->data;
    if (op->kind == OP_ADD) {
        fs_mkdir_p(op->results_dir, 0700, &op->job_err);
        return;
    }
    size_t len = 0;
    int r = fs_read_file(op->cache_path, CNI_MAX_CACHE_FILE, &op->job_data, &len, &op->job_err);
    op->job_found = r == 0;
    op->job_len = len;
    if (r == -ENOENT)
        err_clear(&op->job_err);
}

static void job_store(uv_work_t *w)
{
    struct cni_op *op = w->data;
    if (fs_mkdir_p(op->results_dir, 0700, &op->job_err) == 0)
        fs_write_atomic(op->cache_path, op->job_data, op->job_len, 0600, &op->job_err);
}

static void job_remove(uv_work_t *w)
{
    struct cni_op *op = w->data;
    if (unlink(op->cache_path) < 0 && errno != ENOENT)
        err_sys(&op->job_err, errno, "removing %s", op->cache_path);
}

static void job_done(uv_work_t *w, int status);

static int op_try_queue_job(struct cni_op *op, uv_work_cb fn, err_t *err)
{
    op->work.data = op;
    err_clear(&op->job_err);
    int r = uv_queue_work(op->c->loop, &op->work, fn, job_done);
    if (r < 0)
        return err_set(err, ERR_INTERNAL, -r, "queueing CNI cache work: %s", uv_strerror(r));
    op->in_job = true;
    return 0;
}

/* From a loop callback: a failure is reported through `done` right away. */
static void op_queue_job(struct cni_op *op, uv_work_cb fn)
{
    err_t e = ERR_INIT;
    if (op_try_queue_job(op, fn, &e) < 0) {
        op_fail(op, &e);
        op_finish(op);
    }
}

/* Reads the cache document of DEL/CHECK: the configuration and result of the
 * ADD. A damaged one is reported and treated as absent. */
static int load_cache(struct cni_op *op, err_t *err)
{
    json_error_t jerr;
    json_auto_t *doc = json_loadb(op->job_data, op->job_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return err_set(err, ERR_DATA_LOSS, EINVAL, "line %d: %s", jerr.line, jerr.text);
    const char *cid = json_string_value(json_object_get(doc, "containerId"));
    const char *ifn = json_string_value(json_object_get(doc, "ifName"));
    if (json_integer_value(json_object_get(doc, "version")) != 1 || !cid || strcmp(cid, op->container_id) != 0 ||
        !ifn || strcmp(ifn, op->ifname) != 0)
        return err_set(err, ERR_DATA_LOSS, EINVAL, "not a cache entry of this attachment");
    json_t *conf = NULL;
    if (netconf_from_json(json_object_get(doc, "config"), false, &conf, err) < 0)
        return err_wrap(err, "cached configuration");
    json_t *res = json_object_get(doc, "result");
    if (parse_result(res, op->ifname, NULL, err) < 0) {
        json_decref(conf);
        return err_wrap(err, "cached result");
    }
    json_decref(op->conf);
    op->conf = conf;
    json_decref(op->prev);
    op->prev = json_incref(res);
    /* DEL and CHECK get what ADD got. */
    json_t *rt = json_object_get(doc, "runtimeConfig");
    if (json_is_object(rt)) {
        json_decref(op->rt);
        op->rt = json_incref(rt);
    }
    return 0;
}

static bool netns_alive(const char *path)
{
    struct statfs sfs;
    return path && *path && statfs(path, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

static void after_prepare(struct cni_op *op)
{
    struct cni *c = op->c;
    err_t e = ERR_INIT;
    if (op->kind == OP_ADD) {
        if (op->job_err.msg) {
            err_move(&e, &op->job_err);
            err_wrap(&e, "CNI ADD: preparing the result cache");
            op_fail(op, &e);
            op_finish(op);
            return;
        }
        op->phase = PH_PLUGINS;
        op->idx = 0;
        op_next(op);
        return;
    }

    bool cached = false;
    if (op->job_found) {
        if (load_cache(op, &e) == 0)
            cached = true;
        else
            log_warn("CNI: ignoring the cached result %s: %s", op->cache_path, e.msg);
        err_clear(&e);
    } else if (op->job_err.msg) {
        log_warn("CNI: %s", op->job_err.msg);
    }
    free(op->job_data);
    op->job_data = NULL;

    if (op->kind == OP_CHECK) {
        if (!cached) {
            err_set(&e, ERR_NOT_FOUND, ENOENT, "CNI CHECK: no result of an ADD of %s/%s is cached", op->container_id,
                    op->ifname);
            op_fail(op, &e);
            op_finish(op);
            return;
        }
        op->ver = netconf_version(op->conf);
        if (op->ver < 400 || netconf_disable_check(op->conf)) {
            op_finish(op);
            return;
        }
        op->phase = PH_PLUGINS;
        op->idx = 0;
        op_next(op);
        return;
    }

    /* DEL: without a cache, the current network and no prevResult (the
     * plugins then clean up what they can find by container id). */
    if (!cached) {
        json_decref(op->prev);
        op->prev = NULL;
        json_t *cur = current_network(c, NULL);
        if (!cur) {
            if (op->job_found) {
                op->phase = PH_REMOVE;
                op_queue_job(op, job_remove);
            } else {
                op_finish(op);
            }
            return;
        }
        json_decref(op->conf);
        op->conf = json_incref(cur);
    }
    op->ver = netconf_version(op->conf);
    if (op->ver < 400) { /* prevResult on DEL came with 0.4.0 */
        json_decref(op->prev);
        op->prev = NULL;
    }
    if (!netns_alive(op->netns)) {
        free(op->netns);
        op->netns = strdup("");
    }
    op->phase = PH_PLUGINS;
    op->idx = (long)json_array_size(json_object_get(op->conf, "plugins")) - 1;
    op_next(op);
}

static void after_store(struct cni_op *op)
{
    if (!op->job_err.msg) {
        op_finish(op);
        return;
    }
    err_t e = ERR_INIT;
    err_move(&e, &op->job_err);
    err_wrap(&e, "CNI ADD of network %s: caching the result", netconf_name(op->conf));
    op_fail(op, &e);
    op->phase = PH_ROLLBACK;
    op->idx = (long)json_array_size(json_object_get(op->conf, "plugins")) - 1;
    op_next(op);
}

static void job_done(uv_work_t *w, int status)
{
    struct cni_op *op = w->data;
    op->in_job = false;
    if (!op->c) {
        op_free(op);
        return;
    }
    if (status < 0 && !op->job_err.msg)
        err_set(&op->job_err, ERR_CANCELLED, -status, "CNI cache work: %s", uv_strerror(status));
    switch (op->phase) {
    case PH_PREPARE:
        after_prepare(op);
        break;
    case PH_STORE:
        after_store(op);
        break;
    case PH_REMOVE:
        if (op->job_err.msg) {
            err_t e = ERR_INIT;
            err_move(&e, &op->job_err);
            op_fail(op, &e);
        }
        op_finish(op);
        break;
    default:
        op_finish(op);
        break;
    }
}

/* ---- running the plugins ---- */

static json_t *exec_config(struct cni_op *op, json_t *plugin, bool with_prev)
{
    json_t *cfg = json_deep_copy(plugin);
    if (!cfg)
        return NULL;
    json_object_set_new(cfg, "name", json_string(netconf_name(op->conf)));
    json_object_set(cfg, "cniVersion", json_object_get(op->conf, "cniVersion"));
    json_t *rc = NULL;
    json_t *caps = json_object_get(cfg, "capabilities");
    const char *key;
    json_t *val;
    json_object_foreach(caps, key, val)
    {
        json_t *offer = json_object_get(op->rt, key);
        if (!json_is_true(val) || !offer)
            continue;
        if (!rc)
            rc = json_object();
        json_object_set(rc, key, offer);
    }
    json_object_del(cfg, "capabilities");
    json_object_del(cfg, "runtimeConfig");
    json_object_del(cfg, "prevResult");
    if (rc)
        json_object_set_new(cfg, "runtimeConfig", rc);
    if (with_prev && op->prev)
        json_object_set(cfg, "prevResult", op->prev);
    return cfg;
}

static void free_env(char **env)
{
    if (!env)
        return;
    for (char **p = env; *p; p++)
        free(*p);
    free(env);
}

/* The agent's environment (PATH for the plugins' own tools) minus any CNI_*
 * variable, plus the CNI parameters. */
static char **build_env(struct cni_op *op, const char *command)
{
    size_t n = 0;
    for (char **p = environ; p && *p; p++)
        n++;
    char **env = calloc(n + 8, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **p = environ; p && *p; p++) {
        if (strncmp(*p, "CNI_", 4) == 0)
            continue;
        if (!(env[k++] = strdup(*p)))
            goto fail;
    }
    if (asprintf(&env[k++], "CNI_COMMAND=%s", command) < 0 ||
        asprintf(&env[k++], "CNI_CONTAINERID=%s", op->container_id) < 0 ||
        asprintf(&env[k++], "CNI_NETNS=%s", op->netns) < 0 || asprintf(&env[k++], "CNI_IFNAME=%s", op->ifname) < 0 ||
        asprintf(&env[k++], "CNI_ARGS=%s", op->cni_args) < 0 ||
        asprintf(&env[k++], "CNI_PATH=%s", op->c->cni_path) < 0) {
        env[k - 1] = NULL;
        goto fail;
    }
    env[k] = NULL;
    return env;
fail:
    free_env(env);
    return NULL;
}

static void plugin_failed(struct cni_op *op, err_t *e, bool not_found);

/* Runs plugin op->idx with the command of the phase. */
static void plugin_run(struct cni_op *op)
{
    struct cni *c = op->c;
    const char *command = op->phase == PH_ROLLBACK ? "DEL" : op_command[op->kind];
    json_t *plugin = json_array_get(json_object_get(op->conf, "plugins"), (size_t)op->idx);
    const char *type = json_string_value(json_object_get(plugin, "type"));
    err_t e = ERR_INIT;
    _cleanup_free_ char *path = NULL;
    if (find_plugin(c, type, &path, &e) < 0) {
        err_wrap(&e, "CNI %s of network %s", command, netconf_name(op->conf));
        plugin_failed(op, &e, false);
        return;
    }
    /* ADD: prevResult from the second plugin on; DEL/CHECK: the cached one. */
    bool with_prev = op->phase == PH_PLUGINS && op->kind == OP_ADD ? op->idx > 0 : op->ver >= 400;
    json_auto_t *cfg = exec_config(op, plugin, with_prev);
    char *input = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
    char **env = build_env(op, command);
    if (!input || !env) {
        free(input);
        free_env(env);
        err_sys(&e, ENOMEM, "CNI %s: preparing plugin %s", command, type);
        plugin_failed(op, &e, false);
        return;
    }
    log_debug("CNI: %s %s/%s: running plugin %s (network %s)", command, op->container_id, op->ifname, type,
              netconf_name(op->conf));
    op->run = run_start(c->loop, op, type, command, path, env, input, c->timeout_ms, &e);
    free_env(env);
    if (!op->run) {
        err_wrap(&e, "CNI %s of network %s", command, netconf_name(op->conf));
        plugin_failed(op, &e, false);
    }
}

/* Moves on to the next plugin of the phase, or to what follows the list. */
static void op_next(struct cni_op *op)
{
    long n = (long)json_array_size(json_object_get(op->conf, "plugins"));
    bool forward = op->kind != OP_DEL && op->phase == PH_PLUGINS;
    if (forward ? op->idx < n : op->idx >= 0) {
        plugin_run(op);
        return;
    }
    if (op->phase == PH_PLUGINS && op->kind == OP_ADD) {
        /* The chain is complete: cache the result (and the configuration
         * that made it, for DEL) before reporting success. */
        json_auto_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:O, s:O, s:O}", "version", 1, "containerId",
                                     op->container_id, "ifName", op->ifname, "network", netconf_name(op->conf),
                                     "config", op->conf, "result", op->prev, "runtimeConfig", op->rt);
        free(op->job_data);
        op->job_data = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (!op->job_data) {
            err_t e = ERR_INIT;
            err_sys(&e, ENOMEM, "CNI ADD: caching the result");
            op_fail(op, &e);
            op->phase = PH_ROLLBACK;
            op->idx = n - 1;
            op_next(op);
            return;
        }
        op->job_len = strlen(op->job_data);
        op->phase = PH_STORE;
        op_queue_job(op, job_store);
        return;
    }
    if (op->phase == PH_PLUGINS && op->kind == OP_DEL) {
        op->phase = PH_REMOVE;
        op_queue_job(op, job_remove);
        return;
    }
    op_finish(op); /* CHECK passed, or a rollback is over */
}

static void plugin_failed(struct cni_op *op, err_t *e, bool not_found)
{
    const char *command = op->phase == PH_ROLLBACK ? "DEL" : op_command[op->kind];
    if ((op->kind == OP_DEL || op->phase == PH_ROLLBACK) && not_found) {
        log_info("CNI: %s %s/%s: treating as done: %s", command, op->container_id, op->ifname, e->msg);
        err_clear(e);
        op->idx--;
        op_next(op);
        return;
    }
    if (op->phase == PH_ROLLBACK) {
        /* Undo as much as possible: keep going, remember the first problem. */
        log_warn("CNI: undoing a failed ADD of %s/%s: %s", op->container_id, op->ifname, e->msg);
        if (!op->cleanup_pb)
            op->cleanup_pb = strdup(e->msg);
        err_clear(e);
        op->idx--;
        op_next(op);
        return;
    }
    op_fail(op, e);
    if (op->kind == OP_ADD) {
        /* The failed plugin may have done half its work: it is undone too. */
        op->phase = PH_ROLLBACK;
        if (!netns_alive(op->netns)) {
            free(op->netns);
            op->netns = strdup("");
        }
        op_next(op);
        return;
    }
    op_finish(op); /* DEL and CHECK stop at the first error, as the spec says */
}

/* Turns what the plugin did into a result (ADD) or an error. */
static void op_plugin_done(struct cni_op *op, struct plugin_run *r)
{
    op->run = NULL;
    const char *command = r->command;
    const char *net = netconf_name(op->conf);
    err_t e = ERR_INIT;
    char text[2 * CNI_MSG_MAX + 16] = "", errtxt[CNI_MSG_MAX + 8] = "";
    if (r->errb.len)
        clean_text(errtxt, sizeof(errtxt), r->errb.data, r->errb.len, true);

    if (r->timed_out) {
        err_set(&e, ERR_DEADLINE_EXCEEDED, ETIMEDOUT,
                "CNI plugin %s (%s, network %s) did not finish within %llu ms%s%s", r->name, command, net,
                (unsigned long long)op->c->timeout_ms, *errtxt ? "; stderr: " : "", errtxt);
        plugin_failed(op, &e, false);
        return;
    }
    if (r->outb.overflow) {
        err_set(&e, ERR_RESOURCE_EXHAUSTED, EFBIG, "CNI plugin %s (%s, network %s) printed more than %u bytes", r->name,
                command, net, CNI_MAX_OUTPUT);
        plugin_failed(op, &e, false);
        return;
    }
    if (r->term_signal || r->exit_status != 0) {
        /* The CNI error object on stdout, else whatever stderr says. */
        json_error_t jerr;
        json_auto_t *ej = r->outb.len ? json_loadb(r->outb.data, r->outb.len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        const char *msg = json_string_value(json_object_get(ej, "msg"));
        const char *details = json_string_value(json_object_get(ej, "details"));
        json_int_t code = json_integer_value(json_object_get(ej, "code"));
        enum err_code ec = code == 11 ? ERR_UNAVAILABLE : ERR_UNKNOWN;
        if (msg) {
            char m[CNI_MSG_MAX + 8], d[CNI_MSG_MAX + 8] = "";
            clean_text(m, sizeof(m), msg, strlen(msg), false);
            if (details)
                clean_text(d, sizeof(d), details, strlen(details), false);
            snprintf(text, sizeof(text), "%s%s%s", m, *d ? ": " : "", d);
        } else if (*errtxt) {
            snprintf(text, sizeof(text), "%s", errtxt);
        } else if (r->outb.len) {
            clean_text(text, sizeof(text), r->outb.data, r->outb.len, true);
        }
        char how[64];
        if (r->term_signal)
            snprintf(how, sizeof(how), "was killed by signal %d", r->term_signal);
        else
            snprintf(how, sizeof(how), "failed (exit status %lld)", (long long)r->exit_status);
        err_set(&e, ec, EIO, "CNI plugin %s (%s, network %s) %s%s%s", r->name, command, net, how, *text ? ": " : "",
                text);
        if (msg && code)
            err_append(&e, " (CNI error code %lld)", (long long)code);
        bool not_found = code == 3 || contains_ci(text, "not found") || contains_ci(text, "no such file") ||
                         contains_ci(text, "does not exist") || contains_ci(errtxt, "not found");
        plugin_failed(op, &e, not_found);
        return;
    }
    if (*errtxt)
        log_debug("CNI: plugin %s (%s) stderr: %s", r->name, command, errtxt);

    if (op->kind == OP_ADD && op->phase == PH_PLUGINS) {
        json_error_t jerr;
        json_t *res = json_loadb(r->outb.data ? r->outb.data : "", r->outb.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!res) {
            err_set(&e, ERR_UNKNOWN, EINVAL, "CNI plugin %s (ADD, network %s) printed no valid result: %s", r->name,
                    net, r->outb.len ? jerr.text : "nothing");
        } else if (parse_result(res, op->ifname, NULL, &e) < 0) {
            err_wrap(&e, "CNI plugin %s (ADD, network %s)", r->name, net);
        }
        if (e.msg) {
            json_decref(res);
            plugin_failed(op, &e, false);
            return;
        }
        json_decref(op->prev);
        op->prev = res;
        op->idx++;
        op_next(op);
        return;
    }
    op->idx += op->kind == OP_CHECK && op->phase == PH_PLUGINS ? 1 : -1;
    op_next(op);
}

static int op_start(struct cni_op *op, err_t *err)
{
    op->phase = PH_PREPARE;
    return op_try_queue_job(op, job_prepare, err);
}

/* ---- requests ----------------------------------------------------------- */

static int build_runtime_config(const struct cni_request *req, json_t **out, err_t *err)
{
    json_auto_t *rt = json_object();
    if (!rt)
        return err_sys(err, ENOMEM, "building runtimeConfig");
    json_t *pm = json_array();
    json_object_set_new(rt, "portMappings", pm);
    for (size_t i = 0; i < req->n_port_mappings; i++) {
        const struct cni_port_mapping *m = &req->port_mappings[i];
        if (m->host_port <= 0)
            continue; /* declared, not published on the host */
        if (m->host_port > 65535 || m->container_port <= 0 || m->container_port > 65535)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "port mapping %d->%d is out of range", m->host_port,
                           m->container_port);
        const char *proto = m->protocol && *m->protocol ? m->protocol : "tcp";
        const char *canon = strcasecmp(proto, "tcp") == 0    ? "tcp"
                            : strcasecmp(proto, "udp") == 0  ? "udp"
                            : strcasecmp(proto, "sctp") == 0 ? "sctp"
                                                             : NULL;
        if (!canon)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "port mapping protocol \"%.16s\" is not tcp, udp or sctp",
                           proto);
        json_t *o = json_pack("{s:i, s:i, s:s}", "hostPort", m->host_port, "containerPort", m->container_port,
                              "protocol", canon);
        if (!o)
            return err_sys(err, ENOMEM, "building runtimeConfig");
        if (m->host_ip && *m->host_ip) {
            if (!parse_ip_prefix(m->host_ip, false, NULL, NULL, 0) || strchr(m->host_ip, '/')) {
                json_decref(o);
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "port mapping host IP \"%.64s\" is not an address",
                               m->host_ip);
            }
            json_object_set_new(o, "hostIP", json_string(m->host_ip));
        }
        json_array_append_new(pm, o);
    }
    if (json_array_size(pm) == 0)
        json_object_del(rt, "portMappings");

    if (req->bandwidth) {
        const struct cni_bandwidth *b = req->bandwidth;
        const struct {
            const char *key;
            uint64_t v;
        } f[] = {{"ingressRate", b->ingress_rate},
                 {"ingressBurst", b->ingress_burst},
                 {"egressRate", b->egress_rate},
                 {"egressBurst", b->egress_burst}};
        json_t *bw = json_object();
        json_object_set_new(rt, "bandwidth", bw);
        for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
            if (!f[i].v)
                continue;
            if (f[i].v > (uint64_t)INT64_MAX)
                return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "bandwidth %s is out of range", f[i].key);
            json_object_set_new(bw, f[i].key, json_integer((json_int_t)f[i].v));
        }
        if (json_object_size(bw) == 0)
            json_object_del(rt, "bandwidth");
    }

    if (req->n_ips) {
        if (req->n_ips > 16)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "more than 16 requested IPs");
        json_t *ips = json_array();
        json_object_set_new(rt, "ips", ips);
        for (size_t i = 0; i < req->n_ips; i++) {
            if (!req->ips[i] || !parse_ip_prefix(req->ips[i], false, NULL, NULL, 0))
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "requested IP \"%.64s\" is not an address",
                               req->ips[i] ? req->ips[i] : "");
            json_array_append_new(ips, json_string(req->ips[i]));
        }
    }
    *out = json_incref(rt);
    return 0;
}

static int new_op(struct cni *c, enum op_kind kind, const struct cni_request *req, cni_done_fn done, void *data,
                  err_t *err)
{
    const char *cmd = op_command[kind];
    if (!req || !req->container_id || !valid_cni_name(req->container_id))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI %s: the container id is not valid", cmd);
    const char *ifname = req->ifname ? req->ifname : "eth0";
    if (!valid_ifname(ifname))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI %s: \"%.32s\" is not a valid interface name", cmd,
                       ifname);
    const char *netns = req->netns ? req->netns : "";
    if (kind != OP_DEL) {
        if (netns[0] != '/')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI %s: the network namespace path is not absolute",
                           cmd);
        if (!netns_alive(netns))
            return err_set(err, ERR_FAILED_PRECONDITION, ENOENT,
                           "CNI %s: %s is not a network namespace (gone or not mounted)", cmd, netns);
    }
    /* CNI_ARGS as kubelet's runtimes spell it; IgnoreUnknown=1 because
     * plugins refuse keys they do not know otherwise. */
    bool pod = req->pod_namespace || req->pod_name;
    const char *pod_fields[4][2] = {{"K8S_POD_NAMESPACE", req->pod_namespace},
                                    {"K8S_POD_NAME", req->pod_name},
                                    {"K8S_POD_INFRA_CONTAINER_ID", pod ? req->container_id : NULL},
                                    {"K8S_POD_UID", req->pod_uid}};
    char args[2560];
    int alen = snprintf(args, sizeof(args), "IgnoreUnknown=1");
    for (size_t i = 0; i < ARRAY_SIZE(pod_fields); i++) {
        const char *v = pod_fields[i][1];
        if (!v)
            continue;
        if (!valid_arg_value(v))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI %s: %s has characters CNI_ARGS cannot carry", cmd,
                           pod_fields[i][0]);
        alen += snprintf(args + alen, sizeof(args) - (size_t)alen, ";%s=%s", pod_fields[i][0], v);
    }

    reload_if_changed(c);
    json_t *conf = current_network(c, NULL);
    if (kind == OP_ADD) {
        if (!conf) {
            _cleanup_free_ char *why = NULL;
            cni_ready(c, &why);
            return err_set(err, ERR_FAILED_PRECONDITION, ENOENT, "CNI ADD: %s", why ? why : "no network");
        }
        int r = check_plugins(c, conf, err);
        if (r < 0)
            return err_wrap(err, "CNI ADD of network %s", netconf_name(conf));
    }

    struct cni_op *op = calloc(1, sizeof(*op));
    if (!op)
        return err_sys(err, ENOMEM, "CNI %s", cmd);
    op->c = c;
    op->kind = kind;
    op->done = done;
    op->data = data;
    op->conf = json_incref(conf);
    op->ver = conf ? netconf_version(conf) : 0;
    int r = build_runtime_config(req, &op->rt, err);
    if (r == 0 &&
        (!(op->container_id = strdup(req->container_id)) || !(op->ifname = strdup(ifname)) ||
         !(op->netns = strdup(netns)) || !(op->cni_args = strdup(args)) ||
         asprintf(&op->key, "%s@%s", req->container_id, ifname) < 0 || !(op->results_dir = strdup(c->results_dir)) ||
         asprintf(&op->cache_path, "%s/%s.json", c->results_dir, op->key) < 0))
        r = err_sys(err, ENOMEM, "CNI %s", cmd);
    if (r < 0) {
        op_free(op);
        return r;
    }

    /* One operation at a time per attachment; the others wait their turn. */
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &c->ops)
    {
        if (strcmp(list_entry(pos, struct cni_op, link)->key, op->key) == 0)
            op->waiting = true;
    }
    list_add_tail(&c->ops, &op->link);
    if (!op->waiting && (r = op_start(op, err)) < 0) {
        list_del(&op->link);
        op_free(op);
        return r;
    }
    return 0;
}

int cni_add(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err)
{
    return new_op(c, OP_ADD, req, done, data, err);
}

int cni_del(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err)
{
    return new_op(c, OP_DEL, req, done, data, err);
}

int cni_check(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err)
{
    return new_op(c, OP_CHECK, req, done, data, err);
}

/* ---- lifetime ----------------------------------------------------------- */

int cni_new(uv_loop_t *loop, const struct cni_options *opts, struct cni **out, err_t *err)
{
    if (!opts || !opts->conf_dir || opts->conf_dir[0] != '/' || !opts->cache_dir || opts->cache_dir[0] != '/')
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI: conf_dir and cache_dir must be absolute paths");
    if (opts->n_bin_dirs == 0 || opts->n_bin_dirs > 64)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "CNI: between 1 and 64 plugin directories are needed");
    struct cni *c = calloc(1, sizeof(*c));
    if (!c)
        return err_sys(err, ENOMEM, "CNI");
    c->loop = loop;
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : CNI_DEFAULT_TIMEOUT_MS;
    list_init(&c->ops);
    bool ok = (c->conf_dir = strdup(opts->conf_dir)) && (c->cache_dir = strdup(opts->cache_dir)) &&
              asprintf(&c->results_dir, "%s/results", opts->cache_dir) >= 0 &&
              asprintf(&c->default_path, "%s/default.conflist", opts->cache_dir) >= 0 &&
              asprintf(&c->ipam_dir, "%s/ipam", opts->cache_dir) >= 0 &&
              (c->bin_dirs = calloc(opts->n_bin_dirs, sizeof(char *)));
    size_t plen = 1;
    for (size_t i = 0; ok && i < opts->n_bin_dirs; i++) {
        const char *d = opts->bin_dirs[i];
        if (!d || d[0] != '/' || strchr(d, ':')) {
            cni_free(c);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "CNI: plugin directory \"%s\" is not an absolute path "
                           "without ':'",
                           d ? d : "");
        }
        ok = (c->bin_dirs[i] = strdup(d)) != NULL;
        c->n_bin_dirs = i + 1;
        plen += strlen(d) + 1;
    }
    if (ok && (c->cni_path = malloc(plen))) {
        c->cni_path[0] = '\0';
        for (size_t i = 0; i < c->n_bin_dirs; i++) {
            if (i)
                strcat(c->cni_path, ":");
            strcat(c->cni_path, c->bin_dirs[i]);
        }
    } else {
        ok = false;
    }
    if (!ok) {
        cni_free(c);
        return err_sys(err, ENOMEM, "CNI");
    }
    err_t rerr = ERR_INIT;
    if (cni_reload(c, &rerr) < 0)
        log_warn("CNI: %s", rerr.msg); /* not fatal: the directory may be fixed later */
    err_clear(&rerr);
    *out = c;
    return 0;
}

void cni_free(struct cni *c)
{
    if (!c)
        return;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &c->ops)
    {
        struct cni_op *op = list_entry(pos, struct cni_op, link);
        list_del(&op->link);
        op->c = NULL;
        if (op->run) {
            /* The run closes its handles once the killed child is reaped. */
            struct plugin_run *r = op->run;
            r->op = NULL;
            op->run = NULL;
            run_kill(r, false);
            uv_timer_start(&r->timer, run_timeout, CNI_KILL_GRACE_MS, 0);
        }
        if (!op->in_job)
            op_free(op); /* else job_done frees it */
    }
    set_conf(c, NULL, NULL, NULL);
    free(c->watch_file);
    json_decref(c->default_conf);
    for (size_t i = 0; i < c->n_bin_dirs; i++)
        free(c->bin_dirs[i]);
    free(c->bin_dirs);
    free(c->cni_path);
    free(c->conf_dir);
    free(c->cache_dir);
    free(c->results_dir);
    free(c->default_path);
    free(c->ipam_dir);
    free(c);
}
