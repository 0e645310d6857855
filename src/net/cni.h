/* Pod networking through CNI plugins (CNI spec 1.0.0, and 0.3.x/0.4.0 for
 * older configurations). Plugins are executables run as child processes on
 * the libuv loop: the network configuration goes to their stdin, the result
 * comes back on stdout, and an exit callback moves the operation on; a timer
 * kills a plugin (and anything it started) that exceeds its time limit.
 * Small file reads (the configuration directory) happen on the loop thread;
 * everything that syncs to disk (the result cache) runs in the thread pool.
 *
 * The network: the first file of conf_dir named *.conflist, *.conf or *.json
 * in lexical (byte) order, as kubelet's runtimes choose it; a .conf/.json file
 * holding a single plugin is wrapped into a list. A symlink counts when it
 * leads to a regular file (ConfigMap-style directories). Files that cannot be
 * used (not a regular file, over 1 MiB, not JSON or with duplicate keys, no
 * valid name, a cniVersion other than 0.3.0/0.3.1/0.4.0/1.0.0, a plugin type
 * that is not a plain file name) are skipped with a warning, so that a stray
 * file cannot take pod networking down while a valid one exists; hidden files
 * are ignored (atomic writers rename from them). When the directory has no
 * candidate at all, the built-in network on the node's pod CIDR is used
 * (cni_set_default_network); when it has only unusable ones, nothing is:
 * cni_ready says which files and why, rather than putting pods on a network
 * the administrator did not choose.
 *
 * Operations on the same (container id, interface) run one after the other,
 * as the spec requires; different pods run in parallel. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"

struct cni_options {
    const char *conf_dir; /* /etc/cni/net.d */
    const char *const *bin_dirs;
    size_t n_bin_dirs;     /* /opt/cni/bin, /usr/lib/cni */
    const char *cache_dir; /* results and the built-in network, e.g. <root>/cni */
    uint64_t timeout_ms;   /* per plugin run; 0 = 60 s */
};

struct cni;

int cni_new(uv_loop_t *loop, const struct cni_options *opts, struct cni **out, err_t *err);

/* Kills the plugins still running (their process groups); no callback runs
 * after this. Internal handles finish closing on the next loop iterations. */
void cni_free(struct cni *c);

/* Re-reads the configuration directory (SIGHUP). It is also re-read before
 * each operation and by cni_ready when the directory or the chosen file
 * changed. Fails only when the directory cannot be read at all (a missing
 * directory is simply "no configuration"). */
int cni_reload(struct cni *c, err_t *err);

/* The built-in network used when conf_dir holds no usable configuration:
 * bridge "edgecri0" (gateway, masquerade, hairpin) with host-local IPAM on
 * `pod_cidr` ("v4[,v6]", from UpdateRuntimeConfig or the config), its
 * allocations in cache_dir/ipam, then portmap (capability portMappings) and
 * loopback. It is kept in memory and written to cache_dir/default.conflist
 * for operators. An empty pod_cidr removes it. */
int cni_set_default_network(struct cni *c, const char *pod_cidr, err_t *err);

/* Ready when a network exists and every plugin it names (including IPAM
 * plugins) is found in bin_dirs; otherwise false and, when `reason` is not
 * NULL, a heap string saying why (e.g. "no CNI configuration in
 * /etc/cni/net.d and no pod CIDR for the built-in network", "plugin bridge
 * not found in /opt/cni/bin:/usr/lib/cni (network …)"). */
bool cni_ready(struct cni *c, char **reason);

/* The network in use ("" when none) and the file it came from. */
const char *cni_network_name(struct cni *c);
const char *cni_network_file(struct cni *c);

struct cni_port_mapping {
    int host_port, container_port; /* host_port <= 0: not published, skipped */
    const char *protocol;          /* "tcp" (also for NULL), "udp", "sctp" */
    const char *host_ip;           /* NULL or "" = all addresses */
};

struct cni_bandwidth {
    uint64_t ingress_rate, ingress_burst, egress_rate, egress_burst; /* bits/s, bits; 0 = unset */
};

struct cni_request {
    const char *container_id;                       /* the pod sandbox id: [A-Za-z0-9][A-Za-z0-9_.-]* */
    const char *netns;                              /* the held network namespace; DEL accepts NULL/"" or a gone one */
    const char *ifname;                             /* "eth0" */
    const char *pod_name, *pod_namespace, *pod_uid; /* CNI_ARGS K8S_POD_*; NULL = left out */
    const struct cni_port_mapping *port_mappings;
    size_t n_port_mappings;
    const struct cni_bandwidth *bandwidth; /* NULL = none */
    const char *const *ips;                /* runtimeConfig "ips" ("10.1.2.3" or "10.1.2.3/24") */
    size_t n_ips;
};

struct cni_result {
    char **ips; /* "10.88.0.5" (no prefix), IPv4 first, only addresses inside the sandbox */
    size_t n_ips;
    char *interface_mac; /* of the sandbox interface CNI_IFNAME; NULL when not reported */
    char *raw_json;      /* the final result as the last plugin printed it (re-serialized) */
};

/* `res` is set on a successful ADD only and is valid during the call (copy it
 * with cni_result_dup to keep it); `err` is NULL on success. */
typedef void (*cni_done_fn)(void *data, const struct cni_result *res, const err_t *err);

/* The three operations return 0 when started, and `done` then runs exactly
 * once, always from a later loop callback (never from inside the call); or
 * a negative errno with `err` set (bad request, no network, missing plugin),
 * and `done` never runs.
 *
 * ADD runs the plugins in order, each with the previous one's result as
 * prevResult, runtimeConfig holding only the capabilities it asks for
 * (portMappings, bandwidth, ips), name and cniVersion of the list injected
 * and "capabilities" removed. The final result and the configuration used
 * are cached atomically in cache_dir/results for DEL and CHECK. When a
 * plugin fails (its CNI error "msg"/"details" or its stderr is in the
 * message) or the cache cannot be written, the plugins run so far, the
 * failed one included, are DELeted before `done` reports the error. */
int cni_add(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err);

/* DEL in reverse order with the cached configuration and result (without a
 * cache: the current network, no prevResult; without any network: nothing to
 * do). A missing or unmounted netns is passed as an empty CNI_NETNS; a plugin
 * error with code 3 or saying "not found"/"no such file"/"does not exist" is
 * a success. The cache is removed once every plugin succeeded; on another
 * error it stays so that the next DEL retries with it. */
int cni_del(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err);

/* CHECK with the cached configuration and result; NOT_FOUND without a cache.
 * cniVersion below 0.4.0 or "disableCheck": success without running
 * anything. */
int cni_check(struct cni *c, const struct cni_request *req, cni_done_fn done, void *data, err_t *err);

struct cni_result *cni_result_dup(const struct cni_result *r);

/* Frees a result from cni_result_dup (NULL is fine). */
void cni_result_free(struct cni_result *r);
