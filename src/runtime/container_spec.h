/* What a container's process and filesystem look like, computed from the
 * image config and the CRI request: pure functions, no system state, so the
 * rules are unit-tested on their own (test/unit/test_container_spec.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "api.pb-c.h"
#include "runtime/userns.h"
#include "image/image_config.h"
#include "runtime/spawn.h"
#include "util/error.h"

#define DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct process_spec {
    char **argv; /* NULL-terminated */
    size_t argc;
    char **env; /* NULL-terminated "K=V" */
    size_t n_env;
    char *cwd;
    char **exec_paths; /* where argv[0] is looked for, in order; NULL-terminated */
};

/* Merges as containerd does for kubelet:
 * - command given: it replaces the image's Entrypoint and the image's Cmd is
 *   not used; args (if any) follow it;
 * - no command: the image's Entrypoint, then args if given, else the
 *   image's Cmd;
 * - env: the image's, then the request's (same key: the request wins), PATH
 *   defaulted when neither sets it, HOSTNAME set to the pod's, TERM=xterm
 *   for a TTY, HOME from the user's home when not set;
 * - working_dir, else the image's WorkingDir, else "/".
 * An empty command line is an error naming the container. */
int container_process_spec(const struct image_config *img, const Runtime__V1__ContainerConfig *cfg,
                           const char *hostname, const char *home, struct process_spec *out, err_t *err);

/* For ExecSync: argv from cmd, environment and cwd like the container's. */
int container_exec_spec(const struct process_spec *container, char *const *cmd, size_t n_cmd, struct process_spec *out,
                        err_t *err);
void process_spec_free(struct process_spec *p);

/* Candidate paths for argv0 given the PATH in env (argv0 with a '/' is used
 * as is). Returned NULL-terminated, caller frees with the spec. */
char **exec_candidates(const char *argv0, char *const *env);

struct mount_inputs {
    const Runtime__V1__ContainerConfig *cfg;
    bool privileged;
    bool readonly_rootfs;
    const char *resolv_conf, *hosts, *hostname; /* the pod's files */
    const char *shm;                            /* the pod's /dev/shm (or the host's) */
    bool host_ipc;
    int cgroup_version; /* 1 or 2 */
    /* cgroup v1 hierarchies to show under /sys/fs/cgroup: name (mount dir)
     * and the options naming its controllers ("cpu,cpuacct") */
    const char *const *v1_names, *const *v1_options;
    size_t n_v1;
    /* The pod's user namespace (NULL: none) and an fd on it for idmapped
     * mounts (CRI mounts that carry uid/gid mappings, which must be the
     * pod's). */
    const struct userns_map *userns;
    int userns_fd;
};

/* The ordered filesystem steps for the spawn plan. Strings are owned by
 * the plan. */
struct mount_plan {
    struct spawn_op *ops;
    size_t n_ops;
    char **owned;
    size_t n_owned;
};

/* Host paths of CRI mounts are resolved (symlinks, as containerd does) and
 * must exist; devices must be device nodes; propagation and read-only
 * requests are honoured. */
int container_mount_plan(const struct mount_inputs *in, struct mount_plan *out, err_t *err);
void mount_plan_free(struct mount_plan *p);

/* containerd's defaults when the request gives none (and the container is
 * not privileged). */
extern const char *const default_masked_paths[];
extern const char *const default_readonly_paths[];
