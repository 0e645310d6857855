#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cri/cri.h"
#include "cri/grpc_server.h"
#include "image/images.h"
#include "image/import.h"
#include "net/cni.h"
#include "runtime/cgroup.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "runtime/spawn.h"
#include "streaming/streaming.h"
#include "loop/loop.h"
#include "net/pod_cidr.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

struct daemon_handles {
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t wait_timer; /* shutdown: waits for persistence to settle */
};

static struct daemon_handles handles;

char *daemon_root_path(const struct edgecri *d, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", d->config.root_dir, name) < 0)
        return NULL;
    return p;
}

static void reload(struct edgecri *d)
{
    struct config next;
    _cleanup_err_ err_t err = ERR_INIT;
    if (config_load(&next, d->config_path, d->config_explicit, &d->overrides, &err) < 0) {
        log_error("reload: %s; keeping the running configuration", err.msg);
        return;
    }
    _cleanup_free_ char *fixed = config_unreloadable_changes(&d->config, &next);
    if (fixed)
        log_warn("reload: %s changed; that takes a restart, the running value stays", fixed);
    config_apply_reloadable(&d->config, &next);
    config_free(&next);
    log_set_level(d->config.log_level);
    grpc_server_set_limits(d->grpc, d->config.grpc_max_recv_message_size, d->config.grpc_max_send_message_size);
    log_info("configuration reloaded from %s", d->config_path);
    _cleanup_err_ err_t rerr = ERR_INIT;
    if (cni_reload(d->cni, &rerr) < 0) {
        log_error("reload: CNI configuration: %s", rerr.msg);
        err_clear(&rerr);
    }
    if (images_reload_registries(d->images, &rerr) < 0)
        log_error("reload: %s; keeping the running registry configuration", rerr.msg);
    else
        log_info("registry configuration reloaded from %s", d->config.registries_path);
}

static void close_everything(struct edgecri *d)
{
    uv_close((uv_handle_t *)&handles.sigterm, NULL);
    uv_close((uv_handle_t *)&handles.sigint, NULL);
    uv_close((uv_handle_t *)&handles.sighup, NULL);
    uv_close((uv_handle_t *)&handles.wait_timer, NULL);
    grpc_server_free(d->grpc);
    d->grpc = NULL;
    /* Before the containers: sessions refer to them. */
    streaming_server_free(d->streaming);
    d->streaming = NULL;
    images_free(d->images);
    d->images = NULL;
    image_import_dir_shutdown();
    containers_free(d->containers);
    d->containers = NULL;
    pods_free(d->pods);
    d->pods = NULL;
    cni_free(d->cni);
    d->cni = NULL;
    cgroup_manager_free(d->cgroups);
    d->cgroups = NULL;
    uv_stop(loop_get());
}

static void on_wait_persistence(uv_timer_t *t)
{
    struct edgecri *d = t->data;
    if (pod_cidr_busy(d->pod_cidr) || (d->images && images_busy(d->images)) || image_import_dir_busy() ||
        (d->pods && pods_busy(d->pods)) || (d->containers && containers_busy(d->containers)) ||
        streaming_server_busy(d->streaming))
        return; /* the timer repeats */
    uv_timer_stop(t);
    close_everything(d);
}

static void on_grpc_drained(void *data)
{
    struct edgecri *d = data;
    if (d->images)
        images_shutdown(d->images);
    /* A state write still in the thread pool must land before we exit. */
    uv_timer_start(&handles.wait_timer, on_wait_persistence, 0, 10);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct edgecri *d = h->data;
    if (signum == SIGHUP) {
        reload(d);
        return;
    }
    if (d->stopping) {
        log_warn("%s again: not waiting for in-flight calls any longer", strsignal(signum));
        grpc_server_shutdown(d->grpc, 0, on_grpc_drained, d);
        return;
    }
    d->stopping = true;
    /* Streams are open-ended: they end now, like GetContainerEvents. */
    streaming_server_shutdown(d->streaming);
    log_info("%s: stopping (waiting up to %llums for in-flight calls)", strsignal(signum),
             (unsigned long long)d->config.shutdown_timeout_ms);
    grpc_server_shutdown(d->grpc, d->config.shutdown_timeout_ms, on_grpc_drained, d);
}

static int start(struct edgecri *d, err_t *err)
{
    int r;
    if ((r = fs_mkdir_p(d->config.root_dir, 0711, err)) < 0 || (r = fs_mkdir_p(d->config.state_dir, 0711, err)) < 0)
        return r;

    /* One edgecri per root and per state directory: a second one would
     * corrupt the first one's records. */
    _cleanup_free_ char *root_lock = daemon_root_path(d, "edgecri.lock");
    _cleanup_free_ char *state_lock = NULL;
    if (!root_lock || asprintf(&state_lock, "%s/edgecri.lock", d->config.state_dir) < 0)
        return err_sys(err, ENOMEM, "starting");
    if ((d->root_lock_fd = fs_lock_file(root_lock, d->config.root_dir, err)) < 0)
        return d->root_lock_fd;
    if ((d->state_lock_fd = fs_lock_file(state_lock, d->config.state_dir, err)) < 0)
        return d->state_lock_fd;

    _cleanup_free_ char *cidr_path = daemon_root_path(d, "pod-cidr");
    d->pod_cidr = cidr_path ? pod_cidr_store_open(cidr_path) : NULL;
    if (!d->pod_cidr)
        return err_sys(err, ENOMEM, "starting");

    struct images_options iopts = {
        .root = d->config.root_dir,
        .registries_path = d->config.registries_path,
        .max_concurrent_downloads = (unsigned)d->config.images_max_concurrent_downloads,
        .keep_layer_blobs = d->config.images_keep_layer_blobs,
        .limits = UNPACK_LIMITS_DEFAULT,
    };
    iopts.limits.max_total_size = d->config.images_max_layer_size;
    iopts.limits.max_entry_size = d->config.images_max_file_size;
    r = images_open(loop_get(), &iopts, &d->images, err);
    if (r < 0)
        return r;

    /* Pods: cgroups, CNI, and the records of the pods that exist. */
    if ((r = spawn_init(err)) < 0)
        return r;
    d->self_exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (d->self_exe_fd < 0)
        return err_sys(err, errno, "opening edgecri's own binary");
    if ((r = cgroup_manager_new(d->config.cgroup_driver == CGROUP_DRIVER_SYSTEMD ? CGROUP_DRIVER_KIND_SYSTEMD
                                                                                 : CGROUP_DRIVER_KIND_CGROUPFS,
                                &d->cgroups, err)) < 0)
        return r;
    _cleanup_free_ char *cni_cache = daemon_root_path(d, "cni");
    _cleanup_free_ char *bins = strdup(d->config.cni_bin_dirs);
    const char *bin_dirs[16];
    size_t n_bins = 0;
    for (char *rest = bins, *item; bins && n_bins < 16 && (item = strsep(&rest, ":")) != NULL;)
        bin_dirs[n_bins++] = item;
    struct cni_options copts = {
        .conf_dir = d->config.cni_conf_dir,
        .bin_dirs = bin_dirs,
        .n_bin_dirs = n_bins,
        .cache_dir = cni_cache,
        .timeout_ms = 60000,
    };
    if ((r = cni_new(loop_get(), &copts, &d->cni, err)) < 0)
        return r;
    const char *cidr = *pod_cidr_get(d->pod_cidr) ? pod_cidr_get(d->pod_cidr) : d->config.pod_cidr;
    if (*cidr && (r = cni_set_default_network(d->cni, cidr, err)) < 0)
        return r;
    struct pods_options popts = {
        .root = d->config.root_dir,
        .state = d->config.state_dir,
        .cni = d->cni,
        .cgroups = d->cgroups,
        .self_exe_fd = d->self_exe_fd,
    };
    if ((r = pods_open(loop_get(), &popts, &d->pods, err)) < 0)
        return r;
    /* Containers after pods: adopting a running container needs its pod. */
    struct containers_options ctopts = {
        .root = d->config.root_dir,
        .state = d->config.state_dir,
        .pods = d->pods,
        .images = d->images,
        .cgroups = d->cgroups,
        .on_event = cri_container_event,
        .event_data = d,
    };
    if ((r = containers_open(loop_get(), &ctopts, &d->containers, err)) < 0)
        return r;
    struct pods_container_hooks hooks = {
        .stop_all = containers_stop_pod,
        .remove_all = containers_remove_pod,
        .data = d->containers,
    };
    pods_set_container_hooks(d->pods, &hooks);
    /* Image removal and GC keep the layers a container's root is built on. */
    images_set_layer_user(d->images, containers_use_layer, d->containers);

    struct streaming_options sopts = {
        .address = d->config.streaming_address,
        .port = (uint16_t)d->config.streaming_port,
        .tls_cert_file = d->config.streaming_tls_cert_file,
        .tls_key_file = d->config.streaming_tls_key_file,
        .idle_timeout_ms = d->config.streaming_idle_timeout_ms,
        .max_sessions = (size_t)d->config.streaming_max_sessions,
        .containers = d->containers,
        .pods = d->pods,
    };
    if ((r = streaming_server_start(loop_get(), &sopts, &d->streaming, err)) < 0)
        return r;

    size_t n_methods;
    struct grpc_method *methods = cri_methods(&n_methods);
    struct grpc_server_options opts = {
        .socket_path = d->config.socket_path,
        .max_recv_message_size = d->config.grpc_max_recv_message_size,
        .max_send_message_size = d->config.grpc_max_send_message_size,
        .methods = methods,
        .n_methods = n_methods,
        .services = cri_services,
        .n_services = cri_n_services,
        .userdata = d,
    };
    r = grpc_server_start(&d->grpc, loop_get(), &opts, err);
    if (r < 0)
        return r;
    /* Tarballs dropped into the import directory (air-gapped nodes). */
    _cleanup_free_ char *import_dir = NULL, *import_state = daemon_root_path(d, "imported.json");
    if (*d->config.images_import_dir)
        import_dir = strdup(d->config.images_import_dir);
    else
        import_dir = daemon_root_path(d, "import");
    if (import_dir && import_state)
        image_import_dir(d->images, import_dir, import_state);
    return 0;
}

int daemon_run(const char *config_path, bool config_explicit, const struct config_overrides *ov)
{
    log_init();
    struct edgecri *d = calloc(1, sizeof(*d));
    if (!d)
        return 1;
    d->config_path = config_path;
    d->config_explicit = config_explicit;
    d->overrides = *ov;
    d->root_lock_fd = d->state_lock_fd = d->self_exe_fd = -1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d->started_at_ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;

    _cleanup_err_ err_t err = ERR_INIT;
    if (config_load(&d->config, config_path, config_explicit, ov, &err) < 0) {
        fprintf(stderr, "edgecri: %s\n", err.msg ? err.msg : "invalid configuration");
        free(d);
        return 2;
    }
    log_set_level(d->config.log_level);
    /* Writes to a peer that hung up must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = loop_get();
    uv_signal_init(loop, &handles.sigterm);
    uv_signal_init(loop, &handles.sigint);
    uv_signal_init(loop, &handles.sighup);
    uv_timer_init(loop, &handles.wait_timer);
    handles.sigterm.data = handles.sigint.data = handles.sighup.data = handles.wait_timer.data = d;

    int code = 0;
    if (start(d, &err) < 0) {
        log_error("%s", err.msg ? err.msg : "startup failed");
        code = 1;
        close_everything(d);
    } else {
        uv_signal_start(&handles.sigterm, on_signal, SIGTERM);
        uv_signal_start(&handles.sigint, on_signal, SIGINT);
        uv_signal_start(&handles.sighup, on_signal, SIGHUP);
        log_info("edgecri %s serving the CRI on %s (root %s, state %s, cgroup driver %s)", EDGECRI_VERSION,
                 d->config.socket_path, d->config.root_dir, d->config.state_dir,
                 d->config.cgroup_driver == CGROUP_DRIVER_SYSTEMD ? "systemd" : "cgroupfs");
    }
    uv_run(loop, UV_RUN_DEFAULT);
    loop_close();

    pod_cidr_store_free(d->pod_cidr);
    if (d->root_lock_fd >= 0)
        close(d->root_lock_fd);
    if (d->state_lock_fd >= 0)
        close(d->state_lock_fd);
    if (d->self_exe_fd >= 0)
        close(d->self_exe_fd);
    config_free(&d->config);
    free(d);
    if (code == 0)
        log_info("stopped");
    return code;
}
