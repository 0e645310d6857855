/* The runtime-level RPCs: Version, Status, RuntimeConfig and
 * UpdateRuntimeConfig. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include "cri/cri.h"
#include "cri/grpc_server.h"
#include "daemon/daemon.h"
#include "net/cni.h"
#include "net/pod_cidr.h"
#include "util/cleanup.h"
#include "util/log.h"

/* The CRI version string containerd and CRI-O report in VersionResponse. */
#define CRI_KUBELET_API_VERSION "0.1.0"

void cri_version(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
    resp.version = (char *)CRI_KUBELET_API_VERSION;
    resp.runtime_name = (char *)"edgecri";
    resp.runtime_version = (char *)EDGECRI_VERSION;
    /* The package the client called, as containerd answers. */
    resp.runtime_api_version = (char *)(cri_call_is_v1alpha2(call) ? "v1alpha2" : "v1");
    grpc_call_finish(call, &resp.base, NULL);
}

/* RuntimeReady reflects whether we can still keep state: the root and state
 * directories must be there and writable (a read-only remount after a disk
 * error is the usual way this fails on edge devices). */
static void fill_runtime_condition(const struct edgecri *d, Runtime__V1__RuntimeCondition *c, char *msg, size_t n)
{
    c->type = (char *)"RuntimeReady";
    const char *bad = access(d->config.root_dir, W_OK) != 0    ? d->config.root_dir
                      : access(d->config.state_dir, W_OK) != 0 ? d->config.state_dir
                                                               : NULL;
    if (bad) {
        c->status = 0;
        c->reason = (char *)"RuntimeDirUnavailable";
        snprintf(msg, n, "%s is not writable", bad);
        c->message = msg;
    } else {
        c->status = 1;
    }
}

/* NetworkReady: a CNI configuration (or the built-in network) whose
 * plugins are all there. */
static void fill_network_condition(struct edgecri *d, Runtime__V1__RuntimeCondition *c, char **reason)
{
    c->type = (char *)"NetworkReady";
    c->status = cni_ready(d->cni, reason);
    if (!c->status) {
        c->reason = (char *)"NetworkPluginNotReady";
        c->message = *reason ? *reason : (char *)"no CNI network";
    }
}

/* Recursive read-only mounts need mount_setattr(2) (Linux 5.12): probe it
 * with invalid arguments (EBADF when it exists, ENOSYS when it does not). */
static bool kernel_has_mount_setattr(void)
{
    static int known = -1;
    if (known < 0)
        known = !(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0) < 0 && errno == ENOSYS);
    return known;
}

/* Pods with their own user namespace need the kernel to allow user
 * namespaces at all and to take idmapped layers under overlayfs (Linux
 * 5.19); a setting or kernel that refuses shows up at RunPodSandbox too,
 * with the reason. */
static bool kernel_has_userns_idmapped_overlay(void)
{
    static int known = -1;
    if (known >= 0)
        return known;
    struct utsname u;
    unsigned major = 0, minor = 0;
    long max_userns = 0;
    FILE *f = fopen("/proc/sys/user/max_user_namespaces", "re");
    if (f) {
        if (fscanf(f, "%ld", &max_userns) != 1)
            max_userns = 0;
        fclose(f);
    }
    known = uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 &&
            (major > 5 || (major == 5 && minor >= 19)) && max_userns > 0 && kernel_has_mount_setattr();
    return known;
}

void cri_status(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__StatusRequest *req = (const Runtime__V1__StatusRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);

    Runtime__V1__RuntimeCondition runtime = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    Runtime__V1__RuntimeCondition network = RUNTIME__V1__RUNTIME_CONDITION__INIT;
    char runtime_msg[4200];
    fill_runtime_condition(d, &runtime, runtime_msg, sizeof(runtime_msg));
    _cleanup_free_ char *net_reason = NULL;
    fill_network_condition(d, &network, &net_reason);
    Runtime__V1__RuntimeCondition *conditions[] = {&runtime, &network};
    Runtime__V1__RuntimeStatus status = RUNTIME__V1__RUNTIME_STATUS__INIT;
    status.n_conditions = ARRAY_SIZE(conditions);
    status.conditions = conditions;

    Runtime__V1__StatusResponse resp = RUNTIME__V1__STATUS_RESPONSE__INIT;
    resp.status = &status;

    /* What kubelet puts into the node's status: one (default) handler. */
    Runtime__V1__RuntimeHandlerFeatures hf = RUNTIME__V1__RUNTIME_HANDLER_FEATURES__INIT;
    hf.recursive_read_only_mounts = kernel_has_mount_setattr();
    hf.user_namespaces = kernel_has_userns_idmapped_overlay();
    Runtime__V1__RuntimeHandler handler = RUNTIME__V1__RUNTIME_HANDLER__INIT;
    handler.name = (char *)"";
    handler.features = &hf;
    Runtime__V1__RuntimeHandler *handlers[] = {&handler};
    resp.n_runtime_handlers = 1;
    resp.runtime_handlers = handlers;
    Runtime__V1__RuntimeFeatures features = RUNTIME__V1__RUNTIME_FEATURES__INIT;
    features.supplemental_groups_policy = true;
    resp.features = &features;

    /* verbose: JSON values, as containerd does ("config" and our own facts). */
    _cleanup_free_ char *config_json = NULL, *runtime_json = NULL;
    Runtime__V1__StatusResponse__InfoEntry info_config = RUNTIME__V1__STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__StatusResponse__InfoEntry info_runtime = RUNTIME__V1__STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__StatusResponse__InfoEntry *info[] = {&info_config, &info_runtime};
    if (req->verbose) {
        config_json = config_to_json(&d->config);
        json_t *rt = json_pack("{s:s, s:s, s:i, s:I, s:s, s:I}", "name", "edgecri", "version", EDGECRI_VERSION, "pid",
                               (int)getpid(), "startedAt", (json_int_t)(d->started_at_ns / 1000000000ULL), "podCIDR",
                               pod_cidr_get(d->pod_cidr), "activeCalls", (json_int_t)grpc_server_active_calls(d->grpc));
        runtime_json = rt ? json_dumps(rt, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
        json_decref(rt);
        if (!config_json || !runtime_json) {
            grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "Status: out of memory building verbose info");
            return;
        }
        info_config.key = (char *)"config";
        info_config.value = config_json;
        info_runtime.key = (char *)"runtime";
        info_runtime.value = runtime_json;
        resp.n_info = ARRAY_SIZE(info);
        resp.info = info;
    }
    grpc_call_finish(call, &resp.base, NULL);
}

void cri_runtime_config(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    struct edgecri *d = grpc_call_userdata(call);
    Runtime__V1__LinuxRuntimeConfiguration linux_config = RUNTIME__V1__LINUX_RUNTIME_CONFIGURATION__INIT;
    linux_config.cgroup_driver = d->config.cgroup_driver == CGROUP_DRIVER_SYSTEMD
                                     ? RUNTIME__V1__CGROUP_DRIVER__SYSTEMD
                                     : RUNTIME__V1__CGROUP_DRIVER__CGROUPFS;
    Runtime__V1__RuntimeConfigResponse resp = RUNTIME__V1__RUNTIME_CONFIG_RESPONSE__INIT;
    resp.linux = &linux_config;
    grpc_call_finish(call, &resp.base, NULL);
}

static void pod_cidr_saved(void *data, const err_t *err)
{
    struct grpc_call *call = data;
    struct edgecri *d = grpc_call_userdata(call);
    _cleanup_err_ err_t nerr = ERR_INIT;
    /* The built-in network follows the node's CIDR (a conflist of the
     * operator's, if there is one, is not touched). */
    if (!err && cni_set_default_network(d->cni, pod_cidr_get(d->pod_cidr), &nerr) < 0) {
        Runtime__V1__UpdateRuntimeConfigResponse fail = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;
        grpc_call_finish(call, &fail.base, &nerr);
        return;
    }
    Runtime__V1__UpdateRuntimeConfigResponse resp = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;
    grpc_call_finish(call, &resp.base, err);
}

void cri_update_runtime_config(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__UpdateRuntimeConfigRequest *req = (const Runtime__V1__UpdateRuntimeConfigRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);
    Runtime__V1__UpdateRuntimeConfigResponse resp = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;

    const char *cidr =
        req->runtime_config && req->runtime_config->network_config ? req->runtime_config->network_config->pod_cidr : "";
    /* kubelet only sends a non-empty CIDR; an empty one changes nothing, as
     * with containerd. */
    if (!cidr || !*cidr) {
        grpc_call_finish(call, &resp.base, NULL);
        return;
    }
    _cleanup_free_ char *normalized = NULL;
    _cleanup_err_ err_t err = ERR_INIT;
    if (pod_cidr_normalize(cidr, &normalized, &err) < 0) {
        err_wrap(&err, "UpdateRuntimeConfig");
        grpc_call_finish(call, NULL, &err);
        return;
    }
    if (strcmp(normalized, pod_cidr_get(d->pod_cidr)) == 0) {
        grpc_call_finish(call, &resp.base, NULL);
        return;
    }
    log_info("pod CIDR set to %s", normalized);
    pod_cidr_set(d->pod_cidr, normalized, pod_cidr_saved, call);
}
