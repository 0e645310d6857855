#include "config/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <yaml.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/parse.h"
#include "net/pod_cidr.h"

/* Largest configuration file we read: a config is a few hundred bytes; a huge
 * file is a mistake (or an attack on the parser), not a config. */
#define CONFIG_FILE_MAX (1024 * 1024)

enum key_type {
    KEY_ABS_PATH,
    KEY_PATH_OR_EMPTY, /* "" means a default derived at run time */
    KEY_PATH_LIST,     /* absolute paths separated by ':' */
    KEY_CIDR,          /* "" or a pod CIDR list (validated by the network module) */
    KEY_IP,            /* an IPv4 or IPv6 address literal */
    KEY_LOG_LEVEL,
    KEY_CGROUP_DRIVER,
    KEY_SIZE,
    KEY_DURATION,
    KEY_UINT,
    KEY_BOOL,
};

struct config_key {
    const char *name; /* dotted: "grpc.max_send_message_size" */
    enum key_type type;
    size_t offset;
    uint64_t min, max; /* for sizes and durations */
    bool reloadable;
    const char *help;
};

#define FIELD(f) offsetof(struct config, f)

static const struct config_key keys[] = {
    {"socket", KEY_ABS_PATH, FIELD(socket_path), 0, 0, false, "unix socket the CRI gRPC API is served on (mode 0660)"},
    {"root", KEY_ABS_PATH, FIELD(root_dir), 0, 0, false,
     "persistent state: images, content store, pod and container records"},
    {"state", KEY_ABS_PATH, FIELD(state_dir), 0, 0, false,
     "runtime state that dies with the boot: namespaces, sockets, locks"},
    {"log_level", KEY_LOG_LEVEL, FIELD(log_level), 0, 0, true, "error, warn, info or debug"},
    {"cgroup_driver", KEY_CGROUP_DRIVER, FIELD(cgroup_driver), 0, 0, false,
     "cgroupfs or systemd; must match kubelet's --cgroup-driver"},
    {"grpc.max_recv_message_size", KEY_SIZE, FIELD(grpc_max_recv_message_size), 1024, 1ULL << 30, true,
     "largest request message accepted; larger ones get RESOURCE_EXHAUSTED"},
    {"grpc.max_send_message_size", KEY_SIZE, FIELD(grpc_max_send_message_size), 1024, 1ULL << 31, true,
     "largest response message sent; larger ones fail with RESOURCE_EXHAUSTED"},
    {"shutdown_timeout", KEY_DURATION, FIELD(shutdown_timeout_ms), 0, 3600ULL * 1000, true,
     "how long SIGTERM waits for in-flight calls before closing them"},
    {"registries", KEY_ABS_PATH, FIELD(registries_path), 0, 0, false,
     "mirrors and registry credentials, in k3s's registries.yaml format (reloaded on SIGHUP)"},
    {"images.max_concurrent_downloads", KEY_UINT, FIELD(images_max_concurrent_downloads), 1, 64, false,
     "layer downloads running at once, across all pulls"},
    {"images.keep_layer_blobs", KEY_BOOL, FIELD(images_keep_layer_blobs), 0, 1, false,
     "keep compressed layer blobs after unpacking (else they are deleted to save disk)"},
    {"images.max_layer_size", KEY_SIZE, FIELD(images_max_layer_size), 1ULL << 20, 1ULL << 40, false,
     "largest total of file sizes one layer may unpack to"},
    {"images.import_dir", KEY_PATH_OR_EMPTY, FIELD(images_import_dir), 0, 0, false,
     "image tarballs found here are imported at start (empty: <root>/import)"},
    {"cni.conf_dir", KEY_ABS_PATH, FIELD(cni_conf_dir), 0, 0, false, "CNI network configurations (*.conflist, *.conf)"},
    {"cni.bin_dirs", KEY_PATH_LIST, FIELD(cni_bin_dirs), 0, 0, false,
     "where CNI plugins are looked for, ':'-separated"},
    {"network.pod_cidr", KEY_CIDR, FIELD(pod_cidr), 0, 0, false,
     "subnet of the built-in pod network when kubelet sends none (empty: none)"},
    {"images.max_file_size", KEY_SIZE, FIELD(images_max_file_size), 1ULL << 20, 1ULL << 40, false,
     "largest single file a layer may contain"},
    {"streaming.address", KEY_IP, FIELD(streaming_address), 0, 0, false,
     "address the exec/attach/port-forward server listens on (the URLs kubelet is given point there)"},
    {"streaming.port", KEY_UINT, FIELD(streaming_port), 0, 65535, false, "its TCP port (0: any free port)"},
    {"streaming.tls_cert_file", KEY_PATH_OR_EMPTY, FIELD(streaming_tls_cert_file), 0, 0, false,
     "PEM certificate chain: with tls_key_file, the streaming server speaks https"},
    {"streaming.tls_key_file", KEY_PATH_OR_EMPTY, FIELD(streaming_tls_key_file), 0, 0, false,
     "PEM private key of tls_cert_file"},
    {"streaming.idle_timeout", KEY_DURATION, FIELD(streaming_idle_timeout_ms), 1000, 24ULL * 3600 * 1000, false,
     "a streaming session with no traffic for this long is closed"},
    {"streaming.max_sessions", KEY_UINT, FIELD(streaming_max_sessions), 1, 4096, false,
     "streaming sessions open at once; more are refused with 503"},
};

void config_init_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->socket_path = strdup(CONFIG_DEFAULT_SOCKET);
    c->root_dir = strdup(CONFIG_DEFAULT_ROOT);
    c->state_dir = strdup(CONFIG_DEFAULT_STATE);
    c->log_level = LOG_LEVEL_INFO;
    c->cgroup_driver = CGROUP_DRIVER_CGROUPFS;
    c->grpc_max_recv_message_size = 16ULL << 20;
    c->grpc_max_send_message_size = 16ULL << 20;
    c->shutdown_timeout_ms = 10 * 1000;
    c->registries_path = strdup(CONFIG_DEFAULT_REGISTRIES);
    c->images_max_concurrent_downloads = 3;
    c->images_keep_layer_blobs = false;
    c->images_max_layer_size = 32ULL << 30;
    c->images_max_file_size = 8ULL << 30;
    c->images_import_dir = strdup("");
    c->cni_conf_dir = strdup("/etc/cni/net.d");
    c->cni_bin_dirs = strdup("/opt/cni/bin:/usr/lib/cni");
    c->pod_cidr = strdup("10.88.0.0/16");
    c->streaming_address = strdup("127.0.0.1");
    c->streaming_port = 0;
    c->streaming_tls_cert_file = strdup("");
    c->streaming_tls_key_file = strdup("");
    c->streaming_idle_timeout_ms = 4ULL * 3600 * 1000;
    c->streaming_max_sessions = 32;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (keys[i].type == KEY_ABS_PATH || keys[i].type == KEY_PATH_OR_EMPTY || keys[i].type == KEY_PATH_LIST ||
            keys[i].type == KEY_CIDR || keys[i].type == KEY_IP) {
            char **p = (char **)((char *)c + keys[i].offset);
            free(*p);
            *p = NULL;
        }
}

static const struct config_key *find_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* "grpc" is a section when some key is named "grpc.<something>". */
static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
            return true;
    return false;
}

static const char *const cgroup_driver_names[] = {"cgroupfs", "systemd"};

/* Applies one textual value; `where` is "file:line" (or "--flag") for messages. */
static int set_value(struct config *c, const struct config_key *k, const char *value, const char *where, err_t *err)
{
    void *field = (char *)c + k->offset;
    uint64_t v;
    int r;

    switch (k->type) {
    case KEY_ABS_PATH:
    case KEY_PATH_OR_EMPTY:
        if (value[0] != '/' && !(k->type == KEY_PATH_OR_EMPTY && value[0] == '\0'))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: \"%s\" is not an absolute path", where,
                           k->name, value);
        if (strlen(value) >= 4096)
            return err_set(err, ERR_INVALID_ARGUMENT, ENAMETOOLONG, "%s: key %s: path is too long", where, k->name);
        free(*(char **)field);
        *(char **)field = strdup(value);
        if (!*(char **)field)
            return err_sys(err, ENOMEM, "%s: key %s", where, k->name);
        return 0;
    case KEY_PATH_LIST: {
        if (!*value)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: empty list", where, k->name);
        _cleanup_free_ char *copy = strdup(value);
        char *rest = copy, *item;
        while (copy && (item = strsep(&rest, ":")) != NULL)
            if (item[0] != '/')
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: \"%s\" is not an absolute path", where,
                               k->name, item);
        free(*(char **)field);
        *(char **)field = strdup(value);
        return *(char **)field ? 0 : err_sys(err, ENOMEM, "%s: key %s", where, k->name);
    }
    case KEY_CIDR: {
        char *norm = NULL;
        err_t e = ERR_INIT;
        if (pod_cidr_normalize(value, &norm, &e) < 0) {
            int rc = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: %s", where, k->name, e.msg);
            err_clear(&e);
            return rc;
        }
        free(*(char **)field);
        *(char **)field = norm;
        return 0;
    }
    case KEY_IP: {
        struct in6_addr a6;
        if (inet_pton(AF_INET, value, &a6) != 1 && inet_pton(AF_INET6, value, &a6) != 1)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: \"%s\" is not an IP address", where, k->name,
                           value);
        free(*(char **)field);
        *(char **)field = strdup(value);
        return *(char **)field ? 0 : err_sys(err, ENOMEM, "%s: key %s", where, k->name);
    }
    case KEY_LOG_LEVEL:
        r = log_level_parse(value);
        if (r < 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "%s: key %s: \"%s\" is not a log level (error, warn, info, debug)", where, k->name, value);
        *(int *)field = r;
        return 0;
    case KEY_CGROUP_DRIVER:
        for (size_t i = 0; i < ARRAY_SIZE(cgroup_driver_names); i++)
            if (strcmp(value, cgroup_driver_names[i]) == 0) {
                *(int *)field = (int)i;
                return 0;
            }
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "%s: key %s: \"%s\" is not a cgroup driver (cgroupfs, systemd)", where, k->name, value);
    case KEY_SIZE:
        r = parse_size(value, &v);
        if (r < 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "%s: key %s: \"%s\" is not a size (bytes, or a number with KiB, MiB, GiB)", where, k->name,
                           value);
        goto range;
    case KEY_DURATION:
        r = parse_duration_ms(value, &v);
        if (r < 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "%s: key %s: \"%s\" is not a duration (like 500ms, 10s, 2m, 1h)", where, k->name, value);
        goto range;
    case KEY_UINT:
        r = parse_u64(value, &v);
        if (r < 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: \"%s\" is not a whole number", where,
                           k->name, value);
        goto range;
    case KEY_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0) {
            *(bool *)field = true;
            return 0;
        }
        if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "off") == 0) {
            *(bool *)field = false;
            return 0;
        }
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: \"%s\" is not true or false", where, k->name,
                       value);
    }
    return err_set(err, ERR_INTERNAL, EINVAL, "%s: key %s: unknown key type", where, k->name);

range:
    if (v < k->min || v > k->max)
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "%s: key %s: %s is out of range (%llu to %llu%s)", where,
                       k->name, value, (unsigned long long)k->min, (unsigned long long)k->max,
                       k->type == KEY_DURATION ? " ms"
                       : k->type == KEY_SIZE   ? " bytes"
                                               : "");
    *(uint64_t *)field = v;
    return 0;
}

/* --- YAML ----------------------------------------------------------------
 * The event API, not the document API: aliases are refused outright (a
 * document tree with aliases can be exponentially large to walk), and every
 * event carries the line a message should point at. */

/* Where each key got its value ("config.yaml:3", "--socket"; empty for a
 * default), so checks that span keys can still point at a line or a flag. */
struct origins {
    char where[ARRAY_SIZE(keys)][512];
};

struct yaml_reader {
    yaml_parser_t parser;
    const char *name;
    struct config *c;
    err_t *err;
    struct origins *origins;
};

static int next_event(struct yaml_reader *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return 0;
    const yaml_parser_t *p = &y->parser;
    if (p->context && p->context_mark.line != p->problem_mark.line)
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: invalid YAML: %s (%s on line %zu)", y->name,
                       p->problem_mark.line + 1, p->problem ? p->problem : "parse error", p->context,
                       p->context_mark.line + 1);
    return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: invalid YAML: %s", y->name, p->problem_mark.line + 1,
                   p->problem ? p->problem : "parse error");
}

static bool scalar_is_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

static int read_mapping(struct yaml_reader *y, const char *prefix, int depth);

/* Skips a value we refuse anyway, so the error can name the key cleanly. */
static int read_value(struct yaml_reader *y, const char *key_name, size_t key_line, int depth)
{
    yaml_event_t ev;
    char where[512];
    int r = next_event(y, &ev);
    if (r < 0)
        return r;
    snprintf(where, sizeof(where), "%s:%zu", y->name, key_line);

    const struct config_key *k = find_key(key_name);
    switch (ev.type) {
    case YAML_ALIAS_EVENT:
        /* Refused outright: aliases can make a small file expand hugely. */
        yaml_event_delete(&ev);
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: YAML aliases are not supported", where,
                       key_name);
    case YAML_SCALAR_EVENT:
        if (!k) {
            r = err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL,
                        is_section(key_name) ? "%s: key %s is a section and needs a mapping" : "%s: unknown key %s",
                        where, key_name);
        } else if (scalar_is_null(&ev)) {
            r = err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s has no value", where, key_name);
        } else {
            snprintf(y->origins->where[k - keys], sizeof(y->origins->where[0]), "%s", where);
            r = set_value(y->c, k, (const char *)ev.data.scalar.value, where, y->err);
        }
        yaml_event_delete(&ev);
        return r;
    case YAML_MAPPING_START_EVENT:
        yaml_event_delete(&ev);
        if (!is_section(key_name))
            return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL,
                           k ? "%s: key %s takes a single value, not a mapping" : "%s: unknown key %s", where,
                           key_name);
        return read_mapping(y, key_name, depth + 1);
    case YAML_SEQUENCE_START_EVENT:
        yaml_event_delete(&ev);
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL,
                       k                      ? "%s: key %s takes a single value, not a list"
                       : is_section(key_name) ? "%s: key %s is a section and needs a mapping"
                                              : "%s: unknown key %s",
                       where, key_name);
    default:
        yaml_event_delete(&ev);
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s: key %s: unexpected YAML structure", where, key_name);
    }
}

static int read_mapping(struct yaml_reader *y, const char *prefix, int depth)
{
    if (depth > 8)
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s: mappings nested too deeply", y->name);
    /* Sections seen in this mapping: "grpc:" twice is a duplicate key too. */
    char sections[ARRAY_SIZE(keys)][256];
    size_t n_sections = 0;
    for (;;) {
        yaml_event_t ev;
        int r = next_event(y, &ev);
        if (r < 0)
            return r;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        size_t line = ev.start_mark.line + 1;
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: keys must be plain strings", y->name, line);
        }
        char name[256];
        const char *leaf = (const char *)ev.data.scalar.value;
        int n = snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", leaf);
        bool dotted = strchr(leaf, '.') != NULL;
        yaml_event_delete(&ev);
        if (n < 0 || (size_t)n >= sizeof(name))
            return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: key is too long", y->name, line);
        if (dotted)
            return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL,
                           "%s:%zu: unknown key %s (write sections as nested mappings, not dotted names)", y->name,
                           line, name);
        const struct config_key *k = find_key(name);
        if (k && y->origins->where[k - keys][0])
            return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: key %s is given twice", y->name, line, name);
        if (is_section(name)) {
            for (size_t i = 0; i < n_sections; i++)
                if (strcmp(sections[i], name) == 0)
                    return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: key %s is given twice", y->name, line,
                                   name);
            if (n_sections < ARRAY_SIZE(sections))
                snprintf(sections[n_sections++], sizeof(sections[0]), "%s", name);
        }
        r = read_value(y, name, line, depth);
        if (r < 0)
            return r;
    }
}

static int read_yaml(struct config *c, struct origins *origins, const char *name, const char *text, size_t len,
                     err_t *err)
{
    struct yaml_reader y = {.name = name, .c = c, .err = err, .origins = origins};
    if (!yaml_parser_initialize(&y.parser))
        return err_sys(err, ENOMEM, "%s: initializing the YAML parser", name);
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);

    int r = 0, documents = 0;
    for (bool done = false; !done && r == 0;) {
        yaml_event_t ev;
        r = next_event(&y, &ev);
        if (r < 0)
            break;
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: only one YAML document is allowed", name, line);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            r = read_mapping(&y, NULL, 0);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
            /* An empty document (only comments, or "~") leaves every default. */
            if (ev.type == YAML_ALIAS_EVENT || !scalar_is_null(&ev))
                r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: the configuration must be a mapping of keys",
                            name, line);
            break;
        default:
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: the configuration must be a mapping of keys", name,
                        line);
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y.parser);
    return r;
}

/* --- whole configuration ------------------------------------------------- */

static int apply_overrides(struct config *c, struct origins *origins, const struct config_overrides *ov, err_t *err)
{
    if (!ov)
        return 0;
    const struct {
        const char *key, *flag, *value;
    } flags[] = {
        {"socket", "--socket", ov->socket_path},
        {"root", "--root", ov->root_dir},
        {"state", "--state", ov->state_dir},
        {"log_level", "--log-level", ov->log_level},
    };
    for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
        if (!flags[i].value)
            continue;
        const struct config_key *k = find_key(flags[i].key);
        int r = set_value(c, k, flags[i].value, flags[i].flag, err);
        if (r < 0)
            return r;
        snprintf(origins->where[k - keys], sizeof(origins->where[0]), "%s", flags[i].flag);
    }
    return 0;
}

/* "config.yaml:3" or "--socket" for a key that was set, else the file name. */
static const char *origin_of(const struct origins *o, const char *key, const char *name)
{
    const char *w = o->where[find_key(key) - keys];
    return *w ? w : name;
}

static int validate(const struct config *c, const struct origins *o, const char *name, err_t *err)
{
    struct sockaddr_un sun;
    if (strlen(c->socket_path) >= sizeof(sun.sun_path))
        return err_set(err, ERR_INVALID_ARGUMENT, ENAMETOOLONG,
                       "%s: key socket: \"%s\" is longer than a unix socket path may be (%zu bytes)",
                       origin_of(o, "socket", name), c->socket_path, sizeof(sun.sun_path) - 1);
    if (strcmp(c->root_dir, c->state_dir) == 0) {
        /* Point at the one that was set last: the flag, or the later line. */
        const char *key = o->where[find_key("state") - keys][0] ? "state" : "root";
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "%s: key %s: root and state must be different directories (both are %s)",
                       origin_of(o, key, name), key, c->root_dir);
    }
    if (!*c->streaming_tls_cert_file != !*c->streaming_tls_key_file) {
        /* Point at the one that was given. */
        const char *key = *c->streaming_tls_cert_file ? "streaming.tls_cert_file" : "streaming.tls_key_file";
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "%s: key %s: streaming.tls_cert_file and streaming.tls_key_file go together",
                       origin_of(o, key, name), key);
    }
    return 0;
}

int config_load_text(struct config *out, const char *name, const char *text, size_t len,
                     const struct config_overrides *ov, err_t *err)
{
    struct origins *origins = calloc(1, sizeof(*origins));
    if (!origins)
        return err_sys(err, ENOMEM, "reading %s", name);
    config_init_defaults(out);
    int r = read_yaml(out, origins, name, text, len, err);
    if (r == 0)
        r = apply_overrides(out, origins, ov, err);
    if (r == 0)
        r = validate(out, origins, name, err);
    free(origins);
    if (r < 0)
        config_free(out);
    return r;
}

int config_load(struct config *out, const char *path, bool must_exist, const struct config_overrides *ov, err_t *err)
{
    /* O_NONBLOCK: a FIFO planted at the path must not hang the start. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT && !must_exist)
            return config_load_text(out, path, "", 0, ov, err);
        return err_sys(err, errno, "reading configuration %s", path);
    }
    _cleanup_fclose_ FILE *f = fdopen(fd, "r");
    if (!f) {
        int e = errno;
        close(fd);
        return err_sys(err, e, "reading configuration %s", path);
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0)
        return err_sys(err, errno, "reading configuration %s", path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_INVALID_ARGUMENT, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "reading configuration %s: %s",
                       path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    _cleanup_free_ char *text = malloc(CONFIG_FILE_MAX + 1);
    if (!text)
        return err_sys(err, ENOMEM, "reading configuration %s", path);
    size_t len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f))
        return err_sys(err, EIO, "reading configuration %s", path);
    if (len > CONFIG_FILE_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, EFBIG, "%s: configuration is larger than %d bytes", path,
                       CONFIG_FILE_MAX);
    if (memchr(text, '\0', len))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: configuration contains a NUL byte", path);
    return config_load_text(out, path, text, len, ov, err);
}

static void format_value(const struct config *c, const struct config_key *k, char *buf, size_t n)
{
    const void *field = (const char *)c + k->offset;
    switch (k->type) {
    case KEY_ABS_PATH:
    case KEY_PATH_OR_EMPTY:
    case KEY_PATH_LIST:
    case KEY_CIDR:
    case KEY_IP:
        snprintf(buf, n, "%s", *(char *const *)field);
        break;
    case KEY_LOG_LEVEL:
        snprintf(buf, n, "%s", log_level_name(*(const int *)field));
        break;
    case KEY_CGROUP_DRIVER:
        snprintf(buf, n, "%s", cgroup_driver_names[*(const int *)field]);
        break;
    case KEY_SIZE: {
        uint64_t v = *(const uint64_t *)field;
        if (v && v % (1ULL << 20) == 0)
            snprintf(buf, n, "%lluMiB", (unsigned long long)(v >> 20));
        else
            snprintf(buf, n, "%llu", (unsigned long long)v);
        break;
    }
    case KEY_DURATION: {
        uint64_t v = *(const uint64_t *)field;
        if (v % 1000 == 0)
            snprintf(buf, n, "%llus", (unsigned long long)(v / 1000));
        else
            snprintf(buf, n, "%llums", (unsigned long long)v);
        break;
    }
    case KEY_UINT:
        snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case KEY_BOOL:
        snprintf(buf, n, "%s", *(const bool *)field ? "true" : "false");
        break;
    }
}

void config_print_reference(FILE *f)
{
    struct config d;
    config_init_defaults(&d);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        char value[256];
        format_value(&d, &keys[i], value, sizeof(value));
        fprintf(f, "  %-32s %-28s %s%s\n", keys[i].name, value, keys[i].help,
                keys[i].reloadable ? "" : " (restart to change)");
    }
    config_free(&d);
}

void config_apply_reloadable(struct config *dst, const struct config *src)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (!keys[i].reloadable)
            continue;
        void *d = (char *)dst + keys[i].offset;
        const void *s = (const char *)src + keys[i].offset;
        switch (keys[i].type) {
        case KEY_ABS_PATH:
        case KEY_PATH_OR_EMPTY:
        case KEY_PATH_LIST:
        case KEY_CIDR:
        case KEY_IP: {
            char *copy = strdup(*(char *const *)s);
            if (copy) {
                free(*(char **)d);
                *(char **)d = copy;
            }
            break;
        }
        case KEY_LOG_LEVEL:
        case KEY_CGROUP_DRIVER:
            *(int *)d = *(const int *)s;
            break;
        case KEY_SIZE:
        case KEY_DURATION:
        case KEY_UINT:
            *(uint64_t *)d = *(const uint64_t *)s;
            break;
        case KEY_BOOL:
            *(bool *)d = *(const bool *)s;
            break;
        }
    }
}

char *config_to_json(const struct config *c)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        char value[4200];
        format_value(c, &keys[i], value, sizeof(value));
        json_object_set_new(obj, keys[i].name, json_string(value));
    }
    char *s = json_dumps(obj, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(obj);
    return s;
}

static bool values_equal(const struct config *a, const struct config *b, const struct config_key *k)
{
    const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case KEY_ABS_PATH:
    case KEY_PATH_OR_EMPTY:
    case KEY_PATH_LIST:
    case KEY_CIDR:
    case KEY_IP:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case KEY_LOG_LEVEL:
    case KEY_CGROUP_DRIVER:
        return *(const int *)fa == *(const int *)fb;
    case KEY_SIZE:
    case KEY_DURATION:
    case KEY_UINT:
        return *(const uint64_t *)fa == *(const uint64_t *)fb;
    case KEY_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    }
    return false;
}

char *config_unreloadable_changes(const struct config *a, const struct config *b)
{
    char *out = NULL;
    size_t len = 0;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (keys[i].reloadable || values_equal(a, b, &keys[i]))
            continue;
        size_t add = strlen(keys[i].name) + 2;
        char *grown = realloc(out, len + add + 1);
        if (!grown)
            break;
        out = grown;
        len += (size_t)sprintf(out + len, "%s%s", len ? ", " : "", keys[i].name);
    }
    return out;
}
