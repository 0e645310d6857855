/* edgecri's configuration: built-in defaults, overlaid by the optional YAML
 * file (/etc/edgecri/config.yaml), overlaid by command-line flags.
 *
 * Every key is described once in the key table (config.c); the parser, the
 * --help text and the README reference all follow that table. A bad file is
 * refused as a whole with an error naming the file, line and key, so nothing
 * ever starts (or reloads) half-configured. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

#define CONFIG_DEFAULT_PATH       "/etc/edgecri/config.yaml"
#define CONFIG_DEFAULT_SOCKET     "/run/edgecri/edgecri.sock"
#define CONFIG_DEFAULT_ROOT       "/var/lib/edgecri"
#define CONFIG_DEFAULT_STATE      "/run/edgecri"
#define CONFIG_DEFAULT_REGISTRIES "/etc/edgecri/registries.yaml"

enum cgroup_driver {
    CGROUP_DRIVER_CGROUPFS = 0,
    CGROUP_DRIVER_SYSTEMD = 1,
};

struct config {
    char *socket_path;
    char *root_dir;
    char *state_dir;
    int log_level;     /* enum log_level */
    int cgroup_driver; /* enum cgroup_driver */
    uint64_t grpc_max_recv_message_size;
    uint64_t grpc_max_send_message_size;
    uint64_t shutdown_timeout_ms;
    char *registries_path;
    uint64_t images_max_concurrent_downloads;
    bool images_keep_layer_blobs;
    uint64_t images_max_layer_size;
    uint64_t images_max_file_size;
    char *images_import_dir; /* "" → <root>/import */
    char *cni_conf_dir;
    char *cni_bin_dirs; /* colon separated */
    char *pod_cidr;     /* for the built-in network until kubelet sends one */
    char *streaming_address;
    uint64_t streaming_port;
    char *streaming_tls_cert_file, *streaming_tls_key_file; /* "" → plain http */
    uint64_t streaming_idle_timeout_ms;
    uint64_t streaming_max_sessions;
};

/* Values given on the command line; they win over the file, also on reload. */
struct config_overrides {
    const char *socket_path;
    const char *root_dir;
    const char *state_dir;
    const char *log_level;
};

void config_init_defaults(struct config *c);
void config_free(struct config *c);

/* Builds a complete configuration: defaults, then the file at `path` (a
 * missing file is an error only when `must_exist`), then the overrides, then
 * cross-key validation. On error `out` is left empty and `err` names the file,
 * line and key. */
int config_load(struct config *out, const char *path, bool must_exist, const struct config_overrides *ov, err_t *err);

/* Same, from YAML text held in memory; `name` stands for the file name in
 * messages. */
int config_load_text(struct config *out, const char *name, const char *text, size_t len,
                     const struct config_overrides *ov, err_t *err);

/* Prints the key reference (name, default, meaning) for --help. */
void config_print_reference(FILE *f);

/* Copies the keys that may change at runtime from src into dst (SIGHUP);
 * the others keep dst's values until a restart. */
void config_apply_reloadable(struct config *dst, const struct config *src);

/* The effective configuration as a JSON object (Status verbose info);
 * caller frees the string. */
char *config_to_json(const struct config *c);

/* Whether a key may change on SIGHUP; the others need a restart. Returns the
 * dotted names of keys that differ between a and b but cannot be reloaded,
 * comma separated, or NULL when every difference can be applied (caller
 * frees). */
char *config_unreloadable_changes(const struct config *a, const struct config *b);
