/* Containers, supervised by edgecri itself: no shim, no monitor process.
 *
 * A container's process is a direct child of edgecri (clone3 with a pidfd on
 * the loop); its output goes through FIFOs that outlive edgecri; its record
 * (<root>/containers/<id>/container.json, plus the request that created it
 * in config.pb) is written atomically at every state change. When edgecri
 * restarts, running containers are adopted again by pid and start time, and
 * their exit is still collected (see runtime/process.h for how precisely).
 *
 * Root filesystem: overlayfs over the image's layers with an upper and work
 * directory per container under <root>/containers/<id>; mounted on the host
 * at create time (so the image's /etc/passwd can be read safely) and
 * detached on the host once the container runs in its own mount namespace,
 * which keeps the host's mount table free of container roots. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api.pb-c.h"
#include "runtime/process.h"
#include "util/error.h"
#include "util/list.h"

struct containers;
struct pods;
struct images;
struct cgroup_manager;

enum container_state { CONTAINER_CREATED = 0, CONTAINER_RUNNING = 1, CONTAINER_EXITED = 2, CONTAINER_UNKNOWN = 3 };

struct container {
    struct list_node link;
    char id[65];
    char pod_id[65];
    char *name;
    uint32_t attempt;
    Runtime__V1__ContainerConfig *config; /* the request's, kept whole */
    char *image_ref;                      /* the image ID */
    char *log_path;                       /* full path, "" when none */
    enum container_state state;
    int64_t created_at, started_at, finished_at;
    int32_t exit_code;
    char *reason, *message;
    pid_t pid;
    uint64_t start_time;
    char *cgroup_path;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t n_groups;
    void *priv;
};

/* What happened to a container, for GetContainerEvents. */
enum container_event {
    CONTAINER_EVENT_CREATED,
    CONTAINER_EVENT_STARTED,
    CONTAINER_EVENT_STOPPED,
    CONTAINER_EVENT_DELETED
};
typedef void (*container_event_fn)(void *data, enum container_event ev, const struct container *c);

struct containers_options {
    const char *root, *state;
    struct pods *pods;
    struct images *images;
    struct cgroup_manager *cgroups;
    container_event_fn on_event;
    void *event_data;
};

/* (blocking, at startup) Loads the records and adopts running containers. */
int containers_open(uv_loop_t *loop, const struct containers_options *opts, struct containers **out, err_t *err);
void containers_free(struct containers *s);
bool containers_busy(const struct containers *s);

struct container *containers_find(struct containers *s, const char *id); /* exact or unique prefix */
struct list_node *containers_list(struct containers *s);
/* Whether a layer chain is the root of an existing container (image GC). */
bool containers_use_layer(void *s, const char *chain_id);

typedef void (*containers_done_fn)(void *data, struct container *c, const err_t *err);

void containers_create(struct containers *s, const char *pod_id, const Runtime__V1__ContainerConfig *cfg,
                       containers_done_fn done, void *data);
void containers_start(struct containers *s, const char *id, containers_done_fn done, void *data);
/* timeout_s: seconds before SIGKILL (0: at once). Idempotent. */
void containers_stop(struct containers *s, const char *id, int64_t timeout_s, containers_done_fn done, void *data);
/* Idempotent: an unknown id succeeds. */
void containers_remove(struct containers *s, const char *id, containers_done_fn done, void *data);
int containers_update_resources(struct containers *s, struct container *c,
                                const Runtime__V1__LinuxContainerResources *res, err_t *err);
int containers_reopen_log(struct containers *s, struct container *c, err_t *err);

struct exec_result {
    int exit_code;
    uint8_t *out, *err; /* captured, at most the limit each */
    size_t out_len, err_len;
    bool timed_out;
};
typedef void (*containers_exec_fn)(void *data, const struct exec_result *r, const err_t *err);
/* ExecSync: the command in the container's namespaces, cgroup, identity,
 * capabilities, seccomp profile and environment. timeout_s 0: none. */
void containers_exec_sync(struct containers *s, const char *id, char *const *cmd, size_t n_cmd, int64_t timeout_s,
                          size_t max_output, containers_exec_fn done, void *data);

/* Interactive exec (the streaming server's Exec): `cmd` started in a running
 * container as ExecSync starts it, with stdio as its fds 0-2 (the caller
 * keeps its own copies); with `tty`, stdio[0] is a terminal that becomes
 * the controlling one. `started` runs exactly once, with the pidfd (the
 * caller's to close; watch it with process_watch_start) or an error. */
typedef void (*containers_spawned_fn)(void *data, int pidfd, pid_t pid, const err_t *err);
void containers_exec_start(struct containers *s, const char *id, char *const *cmd, size_t n_cmd, const int stdio[3],
                           bool tty, containers_spawned_fn started, void *data);

/* The hooks pods use to stop and remove their containers. */
void containers_stop_pod(void *s, const char *pod_id, int64_t timeout_s, void (*done)(void *, const err_t *),
                         void *data);
void containers_remove_pod(void *s, const char *pod_id, void (*done)(void *, const err_t *), void *data);

/* Current resources of a container (the request's, updated), or NULL. */
const Runtime__V1__LinuxContainerResources *container_resources(const struct container *c);

/* The signal StopContainer sends first (the request's, else the image's,
 * else SIGTERM). */
int container_stop_signal(const struct container *c);

/* Attach (the streaming server's): taps a running container's output while
 * it still goes to the log; several clients may attach at once. `out` gets
 * every chunk read (stream 0 stdout, 1 stderr; a TTY's output is all 0);
 * `end` runs once when the container exits, after its last output. On
 * success *stdin_fd is a duplicate of the container's stdin (the caller's to
 * close) or -1 when the container was not created with stdin; with a TTY
 * and stdin it is the terminal, so TIOCSWINSZ on it resizes. */
struct container_attach;
typedef void (*containers_attach_out_fn)(void *data, int stream, const uint8_t *buf, size_t len);
typedef void (*containers_attach_end_fn)(void *data);
struct container_attach *containers_attach(struct containers *s, const char *id, containers_attach_out_fn out,
                                           containers_attach_end_fn end, void *data, int *stdin_fd, err_t *err);
/* No more calls after this; safe from inside `out`. */
void containers_detach(struct container_attach *a);
