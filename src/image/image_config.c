/* The image configuration, written from the OCI image spec (config.md) and
 * Docker's image JSON, which share the fields read here. Docker writes null
 * for unset lists and maps, so null is accepted wherever a list or map is. */
#include "image/image_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/digest.h"

#define PLATFORM_FIELD_MAX 128
#define QUOTE_MAX          96
#define QUOTE_BUF          (QUOTE_MAX * 4 + 8)

/* Untrusted bytes for a message, in double quotes: printable ASCII as is,
 * anything else as \xNN, cut after QUOTE_MAX bytes with "...". */
static void quote_str(char *out, const char *s)
{
    size_t n = strnlen(s, QUOTE_MAX + 1), o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        }
    }
    out[o++] = '"';
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static int invalid(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(err_t *err, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "invalid image config: out of memory");
    int r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid image config: %s", msg);
    free(msg);
    return r;
}

static int oom(err_t *err)
{
    return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "parsing image config: out of memory");
}

static int check_string(json_t *v, const char *what, err_t *err)
{
    if (!json_is_string(v))
        return invalid(err, "%s must be a string", what);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return invalid(err, "%s contains a NUL byte", what);
    return 0;
}

/* An optional string: absent, null and "" all leave *out NULL. */
static int opt_string(json_t *obj, const char *key, const char *what, size_t max, char **out, err_t *err)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return 0;
    int r = check_string(v, what, err);
    if (r < 0)
        return r;
    size_t n = json_string_length(v);
    if (max && n > max)
        return invalid(err, "%s is too long (%zu bytes, at most %zu)", what, n, max);
    if (n == 0)
        return 0;
    *out = strdup(json_string_value(v));
    return *out ? 0 : oom(err);
}

static int req_string(json_t *obj, const char *key, size_t max, char **out, err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return invalid(err, "%s is missing", key);
    int r = opt_string(obj, key, key, max, out, err);
    if (r == 0 && !*out)
        return invalid(err, "%s is empty", key);
    return r;
}

void image_config_free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A list of strings or null. *set tells an array (even empty) from null. */
static int opt_strv(json_t *obj, const char *key, const char *what, char ***out, size_t *n_out, bool *set, err_t *err)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (set)
        *set = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return invalid(err, "%s must be an array of strings or null", what);
    size_t n = json_array_size(v);
    if (n > IMAGE_CONFIG_MAX_ITEMS)
        return invalid(err, "%s has %zu entries (at most %d)", what, n, IMAGE_CONFIG_MAX_ITEMS);
    if (set)
        *set = true;
    if (n == 0)
        return 0;
    if (!(*out = calloc(n, sizeof(char *))))
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char field[64];
        snprintf(field, sizeof(field), "%s[%zu]", what, i);
        int r = check_string(e, field, err);
        if (r < 0)
            return r;
        if (!((*out)[i] = strdup(json_string_value(e))))
            return oom(err);
        (*n_out)++;
    }
    return 0;
}

/* The keys of a map (Volumes, ExposedPorts: {"/data": {}}), or null. With
 * values != NULL the values are strings too (Labels). */
static int opt_map(json_t *obj, const char *key, const char *what, char ***keys, char ***values, size_t *n_out,
                   err_t *err)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return invalid(err, "%s must be an object or null", what);
    size_t n = json_object_size(v);
    if (n > IMAGE_CONFIG_MAX_ITEMS)
        return invalid(err, "%s has %zu entries (at most %d)", what, n, IMAGE_CONFIG_MAX_ITEMS);
    if (n == 0)
        return 0;
    if (!(*keys = calloc(n, sizeof(char *))) || (values && !(*values = calloc(n, sizeof(char *)))))
        return oom(err);
    const char *k;
    json_t *val;
    size_t i = 0;
    json_object_foreach(v, k, val)
    {
        if (i >= n)
            break;
        if (values) {
            char field[QUOTE_BUF + 64], q[QUOTE_BUF];
            quote_str(q, k);
            snprintf(field, sizeof(field), "%s[%s]", what, q);
            int r = check_string(val, field, err);
            if (r < 0)
                return r;
            if (!((*values)[i] = strdup(json_string_value(val))))
                return oom(err);
        }
        if (!((*keys)[i] = strdup(k))) {
            if (values) {
                free((*values)[i]);
                (*values)[i] = NULL;
            }
            return oom(err);
        }
        i++;
        (*n_out)++;
    }
    return 0;
}

void image_config_free(struct image_config *c)
{
    if (!c)
        return;
    free(c->architecture);
    free(c->os);
    free(c->variant);
    free(c->created);
    free(c->user);
    image_config_free_strv(c->env, c->n_env);
    image_config_free_strv(c->entrypoint, c->n_entrypoint);
    image_config_free_strv(c->cmd, c->n_cmd);
    free(c->working_dir);
    free(c->stop_signal);
    image_config_free_strv(c->labels_keys, c->n_labels);
    image_config_free_strv(c->labels_values, c->n_labels);
    image_config_free_strv(c->exposed_ports, c->n_exposed_ports);
    image_config_free_strv(c->volumes, c->n_volumes);
    image_config_free_strv(c->diff_ids, c->n_diff_ids);
    memset(c, 0, sizeof(*c));
}

static int parse_rootfs(json_t *root, struct image_config *c, err_t *err)
{
    json_t *rootfs = json_object_get(root, "rootfs");
    if (!rootfs || json_is_null(rootfs))
        return invalid(err, "rootfs is missing");
    if (!json_is_object(rootfs))
        return invalid(err, "rootfs must be an object");
    json_t *type = json_object_get(rootfs, "type");
    if (!type)
        return invalid(err, "rootfs.type is missing");
    int r = check_string(type, "rootfs.type", err);
    if (r < 0)
        return r;
    if (strcmp(json_string_value(type), "layers") != 0) {
        char q[QUOTE_BUF];
        quote_str(q, json_string_value(type));
        return invalid(err, "rootfs.type is %s, want \"layers\"", q);
    }
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (!ids || json_is_null(ids))
        return invalid(err, "rootfs.diff_ids is missing");
    if (!json_is_array(ids))
        return invalid(err, "rootfs.diff_ids must be an array of digests");
    if (json_array_size(ids) > IMAGE_CONFIG_MAX_LAYERS)
        return invalid(err, "rootfs.diff_ids has %zu entries (at most %d)", json_array_size(ids),
                       IMAGE_CONFIG_MAX_LAYERS);
    if ((r = opt_strv(rootfs, "diff_ids", "rootfs.diff_ids", &c->diff_ids, &c->n_diff_ids, NULL, err)) < 0)
        return r;
    for (size_t i = 0; i < c->n_diff_ids; i++) {
        if (!digest_valid(c->diff_ids[i])) {
            char q[QUOTE_BUF];
            quote_str(q, c->diff_ids[i]);
            return invalid(err, "rootfs.diff_ids[%zu] %s is not a valid digest", i, q);
        }
    }
    return 0;
}

static int parse(json_t *root, struct image_config *c, err_t *err)
{
    int r;
    if ((r = req_string(root, "architecture", PLATFORM_FIELD_MAX, &c->architecture, err)) < 0 ||
        (r = req_string(root, "os", PLATFORM_FIELD_MAX, &c->os, err)) < 0 ||
        (r = opt_string(root, "variant", "variant", PLATFORM_FIELD_MAX, &c->variant, err)) < 0 ||
        (r = opt_string(root, "created", "created", PLATFORM_FIELD_MAX, &c->created, err)) < 0)
        return r;

    json_t *cfg = json_object_get(root, "config");
    if (cfg && json_is_null(cfg))
        cfg = NULL;
    if (cfg && !json_is_object(cfg))
        return invalid(err, "config must be an object or null");
    if ((r = opt_string(cfg, "User", "config.User", 0, &c->user, err)) < 0 ||
        (r = opt_strv(cfg, "Env", "config.Env", &c->env, &c->n_env, NULL, err)) < 0 ||
        (r = opt_strv(cfg, "Entrypoint", "config.Entrypoint", &c->entrypoint, &c->n_entrypoint, &c->entrypoint_set,
                      err)) < 0 ||
        (r = opt_strv(cfg, "Cmd", "config.Cmd", &c->cmd, &c->n_cmd, &c->cmd_set, err)) < 0 ||
        (r = opt_string(cfg, "WorkingDir", "config.WorkingDir", 0, &c->working_dir, err)) < 0 ||
        (r = opt_string(cfg, "StopSignal", "config.StopSignal", 0, &c->stop_signal, err)) < 0 ||
        (r = opt_map(cfg, "Labels", "config.Labels", &c->labels_keys, &c->labels_values, &c->n_labels, err)) < 0 ||
        (r = opt_map(cfg, "ExposedPorts", "config.ExposedPorts", &c->exposed_ports, NULL, &c->n_exposed_ports, err)) <
            0 ||
        (r = opt_map(cfg, "Volumes", "config.Volumes", &c->volumes, NULL, &c->n_volumes, err)) < 0)
        return r;
    return parse_rootfs(root, c, err);
}

int image_config_parse(const uint8_t *data, size_t len, struct image_config *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!data || len == 0)
        return invalid(err, "empty");
    if (len > IMAGE_CONFIG_MAX_SIZE)
        return invalid(err, "%zu bytes is too large (at most %u)", len, IMAGE_CONFIG_MAX_SIZE);
    json_error_t jerr;
    json_auto_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char q[QUOTE_BUF];
        quote_str(q, jerr.text);
        return invalid(err, "not valid JSON at line %d column %d: %s", jerr.line, jerr.column, q);
    }
    if (!json_is_object(root))
        return invalid(err, "not a JSON object");
    struct image_config c = {0};
    int r = parse(root, &c, err);
    if (r < 0) {
        image_config_free(&c);
        return r;
    }
    *out = c;
    return 0;
}

int image_config_chain_ids(const struct image_config *c, char ***out, err_t *err)
{
    *out = NULL;
    if (c->n_diff_ids == 0)
        return 0;
    char **chain = calloc(c->n_diff_ids, sizeof(char *));
    if (!chain)
        return oom(err);
    for (size_t i = 0; i < c->n_diff_ids; i++) {
        if (!digest_valid(c->diff_ids[i])) {
            image_config_free_strv(chain, c->n_diff_ids);
            char q[QUOTE_BUF];
            quote_str(q, c->diff_ids[i] ? c->diff_ids[i] : "(null)");
            return invalid(err, "diff_ids[%zu] %s is not a valid digest", i, q);
        }
        if (i == 0) {
            chain[0] = strdup(c->diff_ids[0]);
        } else {
            _cleanup_free_ char *joined = NULL;
            char id[DIGEST_MAX_LEN + 1];
            if (asprintf(&joined, "%s %s", chain[i - 1], c->diff_ids[i]) < 0) {
                joined = NULL;
            } else {
                digest_buffer(DIGEST_SHA256, joined, strlen(joined), id);
                if (id[0])
                    chain[i] = strdup(id);
            }
        }
        if (!chain[i]) {
            image_config_free_strv(chain, c->n_diff_ids);
            return oom(err);
        }
    }
    *out = chain;
    return 0;
}
