/* Pod sandboxes without pause processes.
 *
 * A pod is a set of namespaces (network, IPC, UTS, and PID when the pod
 * shares one), a cgroup, a network set up by CNI, and a few files its
 * containers mount (/etc/resolv.conf, /etc/hosts, /etc/hostname, /dev/shm).
 * The namespaces are created by a holder child that lives only until they
 * are bind-mounted under <state>/pods/<id>/ns; after that no process of the
 * pod exists, except the tiny init a pod-shared PID namespace needs (our
 * own binary, `edgecri pod-init`).
 *
 * Records live in <root>/pods/<id>/pod.json (written atomically), so an
 * edgecri restart finds its pods again; the namespace mounts live under the
 * state directory, so a reboot leaves pods NOTREADY, as kubelet expects. */
#pragma once

#include <jansson.h>

#include "runtime/userns.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"
#include "util/list.h"

struct pods;
struct cni;
struct cgroup_manager;

/* CRI NamespaceMode values */
enum ns_mode { NS_MODE_POD = 0, NS_MODE_CONTAINER = 1, NS_MODE_NODE = 2, NS_MODE_TARGET = 3 };

enum pod_state { POD_READY = 0, POD_NOTREADY = 1 };

struct pod {
    struct list_node link;
    char id[65];
    char *name, *uid, *ns; /* metadata; ns is the Kubernetes namespace */
    uint32_t attempt;
    json_t *labels, *annotations; /* objects of strings */
    char *runtime_handler;
    int64_t created_at; /* unix ns */
    enum pod_state state;
    enum ns_mode net_mode, pid_mode, ipc_mode;
    char *hostname;
    char *log_directory;
    char *cgroup_path; /* relative to the hierarchies: "/kubepods/…/pod<uid>" */
    json_t *config;    /* what the record keeps of the request: dns, ports, sysctls, resources */
    char **ips;        /* primary first */
    size_t n_ips;
    bool privileged;

    /* the pod-shared PID namespace's init */
    pid_t init_pid;
    uint64_t init_start_time;

    /* paths under <state>/pods/<id> (NULL for namespaces of the host) */
    char *dir;
    char *netns, *ipcns, *utsns;
    char *userns;                  /* the pod's user namespace (hostUsers: false), or NULL */
    struct userns_map *userns_map; /* its mappings, with userns */
    char *resolv_conf, *hosts, *hostname_file, *shm;

    /* internal */
    bool busy;
    bool creating;
    void *priv;
};

struct pods_options {
    const char *root;
    const char *state;
    struct cni *cni;
    struct cgroup_manager *cgroups;
    int self_exe_fd; /* our own binary, for the pod init */
};

/* What the container module does for a pod; pods call these on stop and
 * remove. */
struct pods_container_hooks {
    void (*stop_all)(void *data, const char *pod_id, int64_t timeout_s, void (*done)(void *, const err_t *),
                     void *done_data);
    void (*remove_all)(void *data, const char *pod_id, void (*done)(void *, const err_t *), void *done_data);
    void *data;
};

/* (blocking, at startup) Loads the records and checks which pods survived
 * (their namespaces still mounted, their init still alive). */
int pods_open(uv_loop_t *loop, const struct pods_options *opts, struct pods **out, err_t *err);
void pods_free(struct pods *p);
void pods_set_container_hooks(struct pods *p, const struct pods_container_hooks *hooks);
bool pods_busy(const struct pods *p);

struct pod *pods_find(struct pods *p, const char *id); /* exact id, or a unique prefix */
struct list_node *pods_list(struct pods *p);           /* of struct pod.link */

typedef void (*pods_done_fn)(void *data, struct pod *pod, const err_t *err);

/* RunPodSandbox: config is the decoded Runtime__V1__PodSandboxConfig. */
void pods_run(struct pods *p, const void *config, const char *runtime_handler, pods_done_fn done, void *data);
/* StopPodSandbox: idempotent; an unknown id is NOT_FOUND. */
void pods_stop(struct pods *p, const char *id, pods_done_fn done, void *data);
/* RemovePodSandbox: idempotent; an unknown id succeeds (kubelet retries). */
void pods_remove(struct pods *p, const char *id, pods_done_fn done, void *data);
/* UpdatePodSandboxResources: the decoded LinuxContainerResources (overhead
 * and/or resources); applied to the pod cgroup and recorded. */
int pods_update_resources(struct pods *p, struct pod *pod, const void *overhead, const void *resources, err_t *err);
/* The same, answering once the record holding the new values is on disk. */
void pods_update(struct pods *p, const char *id, const void *overhead, const void *resources, pods_done_fn done,
                 void *data);

/* A PID namespace fd for containers that share the pod's, or -1. */
int pods_open_pidns(struct pod *pod, err_t *err);

/* An fd on the pod's user namespace (caller closes), -1 with the reason;
 * only for a pod that has one (pod->userns). */
int pods_open_userns(const struct pod *pod, err_t *err);
