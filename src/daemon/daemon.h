/* The edgecri process: configuration, locks, the gRPC server, signals, and
 * the orderly way down. Handlers reach the daemon's state through
 * grpc_call_userdata(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"

struct grpc_server;
struct pod_cidr_store;
struct images;
struct cgroup_manager;
struct cni;
struct pods;
struct streaming_server;

struct edgecri {
    struct config config;
    const char *config_path;
    bool config_explicit; /* --config given: the file must exist */
    struct config_overrides overrides;

    struct grpc_server *grpc;
    int root_lock_fd, state_lock_fd;
    uint64_t started_at_ns; /* CLOCK_REALTIME */

    struct pod_cidr_store *pod_cidr;
    struct images *images;
    struct cgroup_manager *cgroups;
    struct cni *cni;
    struct pods *pods;
    struct containers *containers;
    struct streaming_server *streaming; /* exec, attach, port-forward */
    int self_exe_fd;

    bool stopping;
    int exit_code;
};

/* Runs until SIGTERM/SIGINT; returns the process exit code (0 after a clean
 * stop, 1 when startup failed, 2 for a configuration error). */
int daemon_run(const char *config_path, bool config_explicit, const struct config_overrides *ov);

/* Path of a file under the root directory ("<root>/<name>"), caller frees. */
char *daemon_root_path(const struct edgecri *d, const char *name);
