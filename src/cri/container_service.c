/* The container RPCs: CreateContainer, StartContainer, StopContainer,
 * RemoveContainer, ContainerStatus, ListContainers, StreamContainers,
 * UpdateContainerResources, ReopenContainerLog and ExecSync, over
 * src/runtime/containers. Lifecycle changes are also published to
 * GetContainerEvents subscribers from here. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "image/image_store.h"
#include "image/images.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "util/cleanup.h"
#include "util/ids.h"

#define STREAM_BATCH 100
/* ExecSync's output is returned in one message: both streams together stay
 * well inside the default 16 MiB send limit. */
#define EXEC_SYNC_MAX_OUTPUT (8u << 20)

static struct containers *containers_of(struct grpc_call *call)
{
    struct edgecri *d = grpc_call_userdata(call);
    return d->containers;
}

static bool id_given(struct grpc_call *call, const char *rpc, const char *id)
{
    if (id && *id)
        return true;
    grpc_call_fail(call, ERR_INVALID_ARGUMENT, "%s: container_id is required", rpc);
    return false;
}

/* --- building messages ------------------------------------------------------------- */

/* The digest-based reference kubelet shows as the image ID of a pod: a repo
 * digest when the image has one, its config digest otherwise. */
static const char *image_ref_of(const struct images *images, const struct container *c)
{
    const struct image_record *rec = images ? images_lookup(images, c->image_ref) : NULL;
    if (rec && rec->n_repo_digests)
        return rec->repo_digests[0];
    return c->image_ref;
}

/* The image name a status shows (kubelet copies it into the pod's
 * containerStatuses[].image). Kubelet creates containers with the image ID
 * it resolved, not the name in the pod spec: answer with the name the user
 * gave (user_specified_image, sent by newer kubelets), else, for an ID, the
 * image's first tag as containerd does, so that a pod does not show
 * "sha256:…" as its image. A name given in the config is shown as given. */
static const char *image_name_of(const struct images *images, const struct container *c)
{
    const Runtime__V1__ImageSpec *spec = c->config->image;
    const char *given = spec && spec->image && spec->image[0] ? spec->image : c->image_ref;
    if (spec && spec->user_specified_image && spec->user_specified_image[0])
        return spec->user_specified_image;
    const struct image_record *rec = images ? images_lookup(images, c->image_ref) : NULL;
    if (!rec || !rec->n_repo_tags)
        return given;
    const char *hex = strchr(rec->id, ':');
    bool by_id = strcmp(given, rec->id) == 0 || (hex && strcmp(given, hex + 1) == 0);
    return by_id ? rec->repo_tags[0] : given;
}

static Runtime__V1__Signal cri_signal_of(int sig)
{
    const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
    char name[32];
    if (!abbrev)
        return RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT;
    snprintf(name, sizeof(name), "SIG%s", abbrev);
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(&runtime__v1__signal__descriptor, name);
    return v ? (Runtime__V1__Signal)v->value : RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT;
}

/* Everything a ContainerStatus points to, owned by the caller's stack frame. */
struct status_msg {
    Runtime__V1__ContainerStatus st;
    Runtime__V1__ContainerResources res;
    Runtime__V1__ContainerUser user;
    Runtime__V1__LinuxContainerUser linux_user;
    Runtime__V1__ContainerMetadata md;
    Runtime__V1__ImageSpec image;
    int64_t *groups;
};

/* The labels, annotations, mounts and metadata come from the ContainerConfig
 * kept whole: its map entries have the same fields and numbers as the
 * status's, so they encode identically. */
static void status_msg_init(struct status_msg *m, const struct images *images, const struct container *c)
{
    const Runtime__V1__ContainerConfig *cfg = c->config;
    Runtime__V1__ContainerStatus st = RUNTIME__V1__CONTAINER_STATUS__INIT;
    Runtime__V1__ContainerResources res = RUNTIME__V1__CONTAINER_RESOURCES__INIT;
    Runtime__V1__ContainerUser user = RUNTIME__V1__CONTAINER_USER__INIT;
    Runtime__V1__LinuxContainerUser lu = RUNTIME__V1__LINUX_CONTAINER_USER__INIT;
    Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    Runtime__V1__ImageSpec image = RUNTIME__V1__IMAGE_SPEC__INIT;
    m->st = st;
    m->res = res;
    m->user = user;
    m->linux_user = lu;
    m->md = md;
    m->image = image;
    m->md.name = c->name;
    m->md.attempt = c->attempt;
    m->image.image = (char *)image_name_of(images, c);
    m->image.n_annotations = cfg->image ? cfg->image->n_annotations : 0;
    m->image.annotations = cfg->image ? cfg->image->annotations : NULL;
    m->image.user_specified_image = cfg->image ? cfg->image->user_specified_image : (char *)"";
    m->image.runtime_handler = cfg->image ? cfg->image->runtime_handler : (char *)"";

    m->st.id = (char *)c->id;
    m->st.metadata = &m->md;
    m->st.state = (Runtime__V1__ContainerState)c->state;
    m->st.created_at = c->created_at;
    m->st.started_at = c->started_at;
    m->st.finished_at = c->finished_at;
    m->st.exit_code = c->exit_code;
    m->st.image = &m->image;
    m->st.image_ref = (char *)image_ref_of(images, c);
    m->st.image_id = c->image_ref;
    m->st.reason = c->reason ? c->reason : (char *)"";
    m->st.message = c->message ? c->message : (char *)"";
    m->st.n_labels = cfg->n_labels;
    m->st.labels = (Runtime__V1__ContainerStatus__LabelsEntry **)cfg->labels;
    m->st.n_annotations = cfg->n_annotations;
    m->st.annotations = (Runtime__V1__ContainerStatus__AnnotationsEntry **)cfg->annotations;
    m->st.n_mounts = cfg->n_mounts;
    m->st.mounts = cfg->mounts;
    m->st.log_path = c->log_path ? c->log_path : (char *)"";
    m->res.linux = (Runtime__V1__LinuxContainerResources *)container_resources(c);
    if (m->res.linux)
        m->st.resources = &m->res;
    m->groups = calloc(c->n_groups ? c->n_groups : 1, sizeof(*m->groups));
    if (m->groups) {
        for (size_t i = 0; i < c->n_groups; i++)
            m->groups[i] = c->groups[i];
        m->linux_user.n_supplemental_groups = c->n_groups;
        m->linux_user.supplemental_groups = m->groups;
    }
    m->linux_user.uid = c->uid;
    m->linux_user.gid = c->gid;
    m->user.linux = &m->linux_user;
    m->st.user = &m->user;
    m->st.stop_signal = cri_signal_of(container_stop_signal(c));
}

static void status_msg_free(struct status_msg *m)
{
    free(m->groups);
}

/* The summary ListContainers and StreamContainers give. */
static void container_msg_init(Runtime__V1__Container *out, Runtime__V1__ContainerMetadata *md,
                               Runtime__V1__ImageSpec *image, const struct images *images, const struct container *c)
{
    const Runtime__V1__ContainerConfig *cfg = c->config;
    Runtime__V1__Container m = RUNTIME__V1__CONTAINER__INIT;
    Runtime__V1__ContainerMetadata mdi = RUNTIME__V1__CONTAINER_METADATA__INIT;
    Runtime__V1__ImageSpec imi = RUNTIME__V1__IMAGE_SPEC__INIT;
    *md = mdi;
    *image = imi;
    md->name = c->name;
    md->attempt = c->attempt;
    image->image = (char *)image_name_of(images, c);
    m.id = (char *)c->id;
    m.pod_sandbox_id = (char *)c->pod_id;
    m.metadata = md;
    m.image = image;
    m.image_ref = (char *)image_ref_of(images, c);
    m.image_id = c->image_ref;
    m.state = (Runtime__V1__ContainerState)c->state;
    m.created_at = c->created_at;
    m.n_labels = cfg->n_labels;
    m.labels = (Runtime__V1__Container__LabelsEntry **)cfg->labels;
    m.n_annotations = cfg->n_annotations;
    m.annotations = (Runtime__V1__Container__AnnotationsEntry **)cfg->annotations;
    *out = m;
}

/* --- events ------------------------------------------------------------------------ */

void cri_container_event(void *data, enum container_event ev, const struct container *c)
{
    struct edgecri *d = data;
    static const Runtime__V1__ContainerEventType types[] = {
        [CONTAINER_EVENT_CREATED] = RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT,
        [CONTAINER_EVENT_STARTED] = RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT,
        [CONTAINER_EVENT_STOPPED] = RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT,
        [CONTAINER_EVENT_DELETED] = RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT,
    };
    Runtime__V1__ContainerEventResponse resp = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    resp.container_id = (char *)c->id;
    resp.container_event_type = types[ev];
    resp.created_at = time_now_ns();
    struct status_msg m;
    Runtime__V1__ContainerStatus *statuses[1];
    /* A deleted container has no status any more (as in containerd). */
    if (ev != CONTAINER_EVENT_DELETED) {
        status_msg_init(&m, d->images, c);
        statuses[0] = &m.st;
        resp.n_containers_statuses = 1;
        resp.containers_statuses = statuses;
    }
    struct pod *pod = pods_find(d->pods, c->pod_id);
    struct pod_status_msg *pm = pod ? cri_pod_status_new(pod) : NULL;
    if (pm)
        resp.pod_sandbox_status = cri_pod_status_get(pm);
    cri_publish_container_event(&resp);
    cri_pod_status_free(pm);
    if (ev != CONTAINER_EVENT_DELETED)
        status_msg_free(&m);
}

/* --- Create, Start, Stop, Remove ---------------------------------------------------- */

static void created(void *data, struct container *c, const err_t *err)
{
    Runtime__V1__CreateContainerResponse resp = RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
    resp.container_id = c ? c->id : (char *)"";
    grpc_call_finish(data, &resp.base, err);
}

void cri_create_container(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__CreateContainerRequest *req = (const Runtime__V1__CreateContainerRequest *)request;
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "CreateContainer: pod_sandbox_id is required");
        return;
    }
    if (!req->config) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "CreateContainer: config is required");
        return;
    }
    containers_create(containers_of(call), req->pod_sandbox_id, req->config, created, call);
}

static void started(void *data, struct container *c, const err_t *err)
{
    (void)c;
    Runtime__V1__StartContainerResponse resp = RUNTIME__V1__START_CONTAINER_RESPONSE__INIT;
    grpc_call_finish(data, &resp.base, err);
}

void cri_start_container(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__StartContainerRequest *req = (const Runtime__V1__StartContainerRequest *)request;
    if (id_given(call, "StartContainer", req->container_id))
        containers_start(containers_of(call), req->container_id, started, call);
}

static void stopped(void *data, struct container *c, const err_t *err)
{
    (void)c;
    Runtime__V1__StopContainerResponse resp = RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT;
    grpc_call_finish(data, &resp.base, err);
}

void cri_stop_container(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__StopContainerRequest *req = (const Runtime__V1__StopContainerRequest *)request;
    if (!id_given(call, "StopContainer", req->container_id))
        return;
    if (req->timeout < 0) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "StopContainer: timeout %lld is negative", (long long)req->timeout);
        return;
    }
    containers_stop(containers_of(call), req->container_id, req->timeout, stopped, call);
}

static void removed(void *data, struct container *c, const err_t *err)
{
    (void)c;
    Runtime__V1__RemoveContainerResponse resp = RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT;
    grpc_call_finish(data, &resp.base, err);
}

void cri_remove_container(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__RemoveContainerRequest *req = (const Runtime__V1__RemoveContainerRequest *)request;
    if (id_given(call, "RemoveContainer", req->container_id))
        containers_remove(containers_of(call), req->container_id, removed, call);
}

/* --- Status, List, Stream ------------------------------------------------------------- */

static struct container *find_or_fail(struct grpc_call *call, const char *rpc, const char *id)
{
    if (!id_given(call, rpc, id))
        return NULL;
    struct container *c = containers_find(containers_of(call), id);
    if (!c)
        grpc_call_fail(call, ERR_NOT_FOUND, "%s: container %s not found", rpc, id);
    return c;
}

void cri_container_status(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ContainerStatusRequest *req = (const Runtime__V1__ContainerStatusRequest *)request;
    struct container *c = find_or_fail(call, "ContainerStatus", req->container_id);
    if (!c)
        return;
    struct edgecri *d = grpc_call_userdata(call);
    struct status_msg m;
    status_msg_init(&m, d->images, c);
    Runtime__V1__ContainerStatusResponse resp = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
    resp.status = &m.st;
    Runtime__V1__ContainerStatusResponse__InfoEntry info = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__ContainerStatusResponse__InfoEntry *infos[] = {&info};
    _cleanup_free_ char *text = NULL;
    if (req->verbose) {
        /* What crictl inspect shows: the process and where things live. */
        json_t *o = json_pack("{s:s, s:s, s:I, s:s?, s:s?}", "id", c->id, "sandboxID", c->pod_id, "pid",
                              (json_int_t)(c->state == CONTAINER_RUNNING ? c->pid : 0), "cgroupPath", c->cgroup_path,
                              "logPath", c->log_path);
        text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (text) {
            info.key = (char *)"info";
            info.value = text;
            resp.n_info = 1;
            resp.info = infos;
        }
    }
    grpc_call_finish(call, &resp.base, NULL);
    status_msg_free(&m);
}

static bool labels_match(const struct container *c, size_t n, Runtime__V1__ContainerFilter__LabelSelectorEntry **sel)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < c->config->n_labels && !found; j++)
            found = strcmp(c->config->labels[j]->key, sel[i]->key) == 0 &&
                    strcmp(c->config->labels[j]->value, sel[i]->value) == 0;
        if (!found)
            return false;
    }
    return true;
}

/* The filter's id and pod_sandbox_id match exactly or as a prefix, as crictl
 * users type them. */
static bool filter_match(const struct container *c, const Runtime__V1__ContainerFilter *f)
{
    if (!f)
        return true;
    if (f->id && *f->id && strncmp(c->id, f->id, strlen(f->id)) != 0)
        return false;
    if (f->pod_sandbox_id && *f->pod_sandbox_id &&
        strncmp(c->pod_id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)) != 0)
        return false;
    if (f->state && (int)f->state->state != (int)c->state)
        return false;
    return labels_match(c, f->n_label_selector, f->label_selector);
}

struct container_msg {
    Runtime__V1__Container m;
    Runtime__V1__ContainerMetadata md;
    Runtime__V1__ImageSpec image;
};

static void send_containers(struct grpc_call *call, const Runtime__V1__ContainerFilter *filter, bool streaming)
{
    struct edgecri *d = grpc_call_userdata(call);
    struct list_node *head = containers_list(containers_of(call)), *pos, *tmp;
    size_t n = 0;
    list_for_each_safe(pos, tmp, head) n++;
    _cleanup_free_ struct container_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
    _cleanup_free_ Runtime__V1__Container **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!msgs || !ptrs) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "out of memory listing containers");
        return;
    }
    size_t k = 0;
    list_for_each_safe(pos, tmp, head)
    {
        struct container *c = list_entry(pos, struct container, link);
        if (!filter_match(c, filter))
            continue;
        container_msg_init(&msgs[k].m, &msgs[k].md, &msgs[k].image, d->images, c);
        ptrs[k] = &msgs[k].m;
        k++;
    }
    if (!streaming) {
        Runtime__V1__ListContainersResponse resp = RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
        resp.n_containers = k;
        resp.containers = ptrs;
        grpc_call_finish(call, &resp.base, NULL);
        return;
    }
    for (size_t off = 0; off < k; off += STREAM_BATCH) {
        Runtime__V1__StreamContainersResponse resp = RUNTIME__V1__STREAM_CONTAINERS_RESPONSE__INIT;
        resp.n_containers = k - off < STREAM_BATCH ? k - off : STREAM_BATCH;
        resp.containers = ptrs + off;
        if (grpc_call_send(call, &resp.base) < 0)
            break;
    }
    grpc_call_finish(call, NULL, NULL);
}

void cri_list_containers(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_containers(call, ((const Runtime__V1__ListContainersRequest *)request)->filter, false);
}

void cri_stream_containers(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_containers(call, ((const Runtime__V1__StreamContainersRequest *)request)->filter, true);
}

/* --- Update, ReopenLog ------------------------------------------------------------------ */

void cri_update_container_resources(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__UpdateContainerResourcesRequest *req =
        (const Runtime__V1__UpdateContainerResourcesRequest *)request;
    struct container *c = find_or_fail(call, "UpdateContainerResources", req->container_id);
    if (!c)
        return;
    _cleanup_err_ err_t err = ERR_INIT;
    if (containers_update_resources(containers_of(call), c, req->linux, &err) < 0) {
        err_wrap(&err, "UpdateContainerResources %s", c->id);
        grpc_call_finish(call, NULL, &err);
        return;
    }
    Runtime__V1__UpdateContainerResourcesResponse resp = RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_RESPONSE__INIT;
    grpc_call_finish(call, &resp.base, NULL);
}

void cri_reopen_container_log(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ReopenContainerLogRequest *req = (const Runtime__V1__ReopenContainerLogRequest *)request;
    struct container *c = find_or_fail(call, "ReopenContainerLog", req->container_id);
    if (!c)
        return;
    _cleanup_err_ err_t err = ERR_INIT;
    if (containers_reopen_log(containers_of(call), c, &err) < 0) {
        err_wrap(&err, "ReopenContainerLog %s", c->id);
        grpc_call_finish(call, NULL, &err);
        return;
    }
    Runtime__V1__ReopenContainerLogResponse resp = RUNTIME__V1__REOPEN_CONTAINER_LOG_RESPONSE__INIT;
    grpc_call_finish(call, &resp.base, NULL);
}

/* --- ExecSync ----------------------------------------------------------------------------- */

struct exec_sync_call {
    struct grpc_call *call;
    int64_t timeout;
};

static void exec_synced(void *data, const struct exec_result *r, const err_t *err)
{
    struct exec_sync_call *x = data;
    if (err) {
        grpc_call_finish(x->call, NULL, err);
    } else if (r->timed_out) {
        /* kubelet tells a probe timeout by this code. */
        grpc_call_fail(x->call, ERR_DEADLINE_EXCEEDED, "ExecSync: command timed out after %llds",
                       (long long)x->timeout);
    } else {
        Runtime__V1__ExecSyncResponse resp = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
        resp.stdout.data = r->out;
        resp.stdout.len = r->out_len;
        resp.stderr.data = r->err;
        resp.stderr.len = r->err_len;
        resp.exit_code = r->exit_code;
        grpc_call_finish(x->call, &resp.base, NULL);
    }
    free(x);
}

void cri_exec_sync(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ExecSyncRequest *req = (const Runtime__V1__ExecSyncRequest *)request;
    if (!id_given(call, "ExecSync", req->container_id))
        return;
    if (req->n_cmd == 0 || !req->cmd[0][0]) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "ExecSync: cmd is required");
        return;
    }
    if (req->timeout < 0) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "ExecSync: timeout %lld is negative", (long long)req->timeout);
        return;
    }
    struct exec_sync_call *x = calloc(1, sizeof(*x));
    if (!x) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "ExecSync: out of memory");
        return;
    }
    x->call = call;
    x->timeout = req->timeout;
    containers_exec_sync(containers_of(call), req->container_id, req->cmd, req->n_cmd, req->timeout,
                         EXEC_SYNC_MAX_OUTPUT / 2, exec_synced, x);
}

/* --- CheckpointContainer ----------------------------------------------------------------- */

void cri_checkpoint_container(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    /* An answer with the reason, not a generic "unimplemented": kubelet's
     * checkpoint API passes it on to the user. */
    grpc_call_fail(call, ERR_UNIMPLEMENTED,
                   "CheckpointContainer: not supported by edgecri: checkpointing a container needs CRIU, which "
                   "edgecri does not integrate");
}
