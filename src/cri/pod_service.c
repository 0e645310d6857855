/* The pod sandbox RPCs: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
 * PodSandboxStatus, ListPodSandbox, StreamPodSandboxes and
 * UpdatePodSandboxResources, over src/runtime/pods. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "runtime/pods.h"
#include "util/cleanup.h"
#include "util/ids.h"

#define STREAM_BATCH 100

static struct pods *pods_of(struct grpc_call *call)
{
    struct edgecri *d = grpc_call_userdata(call);
    return d->pods;
}

/* --- maps -------------------------------------------------------------------- */

/* Builds the repeated map entries a message wants from a JSON object; the
 * generated entry types of every string map share one layout. */
struct map_out {
    Runtime__V1__PodSandboxStatus__LabelsEntry *entries;
    Runtime__V1__PodSandboxStatus__LabelsEntry **ptrs;
    size_t n;
};

static void map_fill(struct map_out *m, json_t *obj, const ProtobufCMessageDescriptor *desc)
{
    m->n = json_object_size(obj);
    m->entries = calloc(m->n ? m->n : 1, sizeof(*m->entries));
    m->ptrs = calloc(m->n ? m->n : 1, sizeof(*m->ptrs));
    if (!m->entries || !m->ptrs) {
        m->n = 0;
        return;
    }
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(obj, k, v)
    {
        Runtime__V1__PodSandboxStatus__LabelsEntry e = RUNTIME__V1__POD_SANDBOX_STATUS__LABELS_ENTRY__INIT;
        e.base.descriptor = desc;
        e.key = (char *)k;
        e.value = (char *)json_string_value(v);
        m->entries[i] = e;
        m->ptrs[i] = &m->entries[i];
        i++;
    }
}

static void map_free(struct map_out *m)
{
    free(m->entries);
    free(m->ptrs);
}

static void publish_pod_event(struct pods *pods, const char *pod_id, Runtime__V1__ContainerEventType type);

/* --- RunPodSandbox ------------------------------------------------------------- */

static void ran(void *data, struct pod *pod, const err_t *err)
{
    Runtime__V1__RunPodSandboxResponse resp = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
    resp.pod_sandbox_id = pod ? pod->id : (char *)"";
    if (!err && pod) {
        struct pods *pods = pods_of(data);
        char id[sizeof(pod->id)];
        memcpy(id, pod->id, sizeof(id));
        grpc_call_finish(data, &resp.base, NULL);
        publish_pod_event(pods, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
        publish_pod_event(pods, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
        return;
    }
    grpc_call_finish(data, &resp.base, err);
}

void cri_run_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__RunPodSandboxRequest *req = (const Runtime__V1__RunPodSandboxRequest *)request;
    if (!req->config) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "RunPodSandbox: config is required");
        return;
    }
    pods_run(pods_of(call), req->config, req->runtime_handler, ran, call);
}

/* --- Stop and Remove ----------------------------------------------------------- */

static void stopped(void *data, struct pod *pod, const err_t *err)
{
    Runtime__V1__StopPodSandboxResponse resp = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
    struct pods *pods = pods_of(data);
    char id[65];
    id[0] = '\0';
    if (!err && pod)
        memcpy(id, pod->id, sizeof(pod->id));
    grpc_call_finish(data, &resp.base, err);
    if (*id)
        publish_pod_event(pods, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
}

void cri_stop_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__StopPodSandboxRequest *req = (const Runtime__V1__StopPodSandboxRequest *)request;
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "StopPodSandbox: pod_sandbox_id is required");
        return;
    }
    pods_stop(pods_of(call), req->pod_sandbox_id, stopped, call);
}

struct remove_call {
    struct grpc_call *call;
    char id[65]; /* the pod's full ID, "" when it did not exist */
};

static void removed(void *data, struct pod *pod, const err_t *err)
{
    (void)pod;
    struct remove_call *rc = data;
    struct pods *pods = pods_of(rc->call);
    Runtime__V1__RemovePodSandboxResponse resp = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
    grpc_call_finish(rc->call, &resp.base, err);
    if (!err && rc->id[0] && !pods_find(pods, rc->id))
        publish_pod_event(pods, rc->id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
    free(rc);
}

void cri_remove_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__RemovePodSandboxRequest *req = (const Runtime__V1__RemovePodSandboxRequest *)request;
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "RemovePodSandbox: pod_sandbox_id is required");
        return;
    }
    struct remove_call *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "RemovePodSandbox: out of memory");
        return;
    }
    rc->call = call;
    struct pod *pod = pods_find(pods_of(call), req->pod_sandbox_id);
    if (pod)
        memcpy(rc->id, pod->id, sizeof(rc->id));
    pods_remove(pods_of(call), req->pod_sandbox_id, removed, rc);
}

/* --- Status ---------------------------------------------------------------------- */

static Runtime__V1__PodSandboxState state_of(const struct pod *pod)
{
    return pod->state == POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                   : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

/* Everything a PodSandboxStatus points to, owned by the caller's frame (for
 * PodSandboxStatus and for the events GetContainerEvents carries). */
struct pod_status_msg {
    Runtime__V1__PodSandboxStatus st;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__PodSandboxNetworkStatus net;
    Runtime__V1__PodIP *extra;
    Runtime__V1__PodIP **extra_ptrs;
    Runtime__V1__NamespaceOption nso;
    Runtime__V1__UserNamespace userns;
    Runtime__V1__IDMapping *idmaps;  /* uids then gids */
    Runtime__V1__IDMapping **idptrs; /* the same */
    Runtime__V1__Namespace ns;
    Runtime__V1__LinuxPodSandboxStatus lx;
    struct map_out labels, annotations;
};

/* The pod's user namespace as it was asked for: mode POD and its mappings. */
static int userns_status_fill(struct pod_status_msg *m, const struct userns_map *um)
{
    size_t n = um->n_uids + um->n_gids;
    m->idmaps = calloc(n, sizeof(*m->idmaps));
    m->idptrs = calloc(n, sizeof(*m->idptrs));
    if (!m->idmaps || !m->idptrs) {
        free(m->idmaps);
        free(m->idptrs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct userns_range *r = i < um->n_uids ? &um->uids[i] : &um->gids[i - um->n_uids];
        Runtime__V1__IDMapping idm = RUNTIME__V1__IDMAPPING__INIT;
        idm.container_id = r->container_id;
        idm.host_id = r->host_id;
        idm.length = r->length;
        m->idmaps[i] = idm;
        m->idptrs[i] = &m->idmaps[i];
    }
    Runtime__V1__UserNamespace u = RUNTIME__V1__USER_NAMESPACE__INIT;
    m->userns = u;
    m->userns.mode = RUNTIME__V1__NAMESPACE_MODE__POD;
    m->userns.n_uids = um->n_uids;
    m->userns.uids = m->idptrs;
    m->userns.n_gids = um->n_gids;
    m->userns.gids = m->idptrs + um->n_uids;
    m->nso.userns_options = &m->userns;
    return 0;
}

static int pod_status_msg_init(struct pod_status_msg *m, const struct pod *pod)
{
    memset(m, 0, sizeof(*m));
    m->extra = calloc(pod->n_ips ? pod->n_ips : 1, sizeof(*m->extra));
    m->extra_ptrs = calloc(pod->n_ips ? pod->n_ips : 1, sizeof(*m->extra_ptrs));
    if (!m->extra || !m->extra_ptrs) {
        free(m->extra);
        free(m->extra_ptrs);
        return -ENOMEM;
    }
    Runtime__V1__PodSandboxMetadata md = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    m->md = md;
    m->md.name = pod->name;
    m->md.uid = pod->uid;
    m->md.namespace_ = pod->ns;
    m->md.attempt = pod->attempt;
    Runtime__V1__PodSandboxNetworkStatus net = RUNTIME__V1__POD_SANDBOX_NETWORK_STATUS__INIT;
    m->net = net;
    if (pod->n_ips && pod->state == POD_READY) {
        m->net.ip = pod->ips[0];
        for (size_t i = 1; i < pod->n_ips; i++) {
            Runtime__V1__PodIP ip = RUNTIME__V1__POD_IP__INIT;
            ip.ip = pod->ips[i];
            m->extra[i - 1] = ip;
            m->extra_ptrs[i - 1] = &m->extra[i - 1];
        }
        m->net.n_additional_ips = pod->n_ips - 1;
        m->net.additional_ips = m->extra_ptrs;
    }
    Runtime__V1__NamespaceOption nso = RUNTIME__V1__NAMESPACE_OPTION__INIT;
    m->nso = nso;
    m->nso.network = (Runtime__V1__NamespaceMode)pod->net_mode;
    m->nso.pid = (Runtime__V1__NamespaceMode)pod->pid_mode;
    m->nso.ipc = (Runtime__V1__NamespaceMode)pod->ipc_mode;
    if (pod->userns_map && userns_status_fill(m, pod->userns_map) < 0) {
        free(m->extra);
        free(m->extra_ptrs);
        return -ENOMEM;
    }
    Runtime__V1__Namespace ns = RUNTIME__V1__NAMESPACE__INIT;
    m->ns = ns;
    m->ns.options = &m->nso;
    Runtime__V1__LinuxPodSandboxStatus lx = RUNTIME__V1__LINUX_POD_SANDBOX_STATUS__INIT;
    m->lx = lx;
    m->lx.namespaces = &m->ns;

    Runtime__V1__PodSandboxStatus st = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
    m->st = st;
    m->st.id = (char *)pod->id;
    m->st.metadata = &m->md;
    m->st.state = state_of(pod);
    m->st.created_at = pod->created_at;
    m->st.network = &m->net;
    m->st.linux = &m->lx;
    m->st.runtime_handler = pod->runtime_handler;
    map_fill(&m->labels, pod->labels, &runtime__v1__pod_sandbox_status__labels_entry__descriptor);
    map_fill(&m->annotations, pod->annotations, &runtime__v1__pod_sandbox_status__annotations_entry__descriptor);
    m->st.n_labels = m->labels.n;
    m->st.labels = (Runtime__V1__PodSandboxStatus__LabelsEntry **)m->labels.ptrs;
    m->st.n_annotations = m->annotations.n;
    m->st.annotations = (Runtime__V1__PodSandboxStatus__AnnotationsEntry **)m->annotations.ptrs;
    return 0;
}

static void pod_status_msg_free(struct pod_status_msg *m)
{
    free(m->idmaps);
    free(m->idptrs);
    free(m->extra);
    free(m->extra_ptrs);
    map_free(&m->labels);
    map_free(&m->annotations);
}

struct pod_status_msg *cri_pod_status_new(const struct pod *pod)
{
    struct pod_status_msg *m = malloc(sizeof(*m));
    if (m && pod_status_msg_init(m, pod) < 0) {
        free(m);
        m = NULL;
    }
    return m;
}

Runtime__V1__PodSandboxStatus *cri_pod_status_get(struct pod_status_msg *m)
{
    return &m->st;
}

void cri_pod_status_free(struct pod_status_msg *m)
{
    if (!m)
        return;
    pod_status_msg_free(m);
    free(m);
}

/* A sandbox lifecycle event, as containerd sends them to kubelet's evented
 * PLEG: the sandbox ID as container_id, the sandbox's status attached. */
static void publish_pod_event(struct pods *pods, const char *pod_id, Runtime__V1__ContainerEventType type)
{
    Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    ev.container_id = (char *)pod_id;
    ev.container_event_type = type;
    ev.created_at = time_now_ns();
    struct pod *pod =
        type == RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT ? NULL : pods_find(pods, pod_id);
    struct pod_status_msg *m = pod ? cri_pod_status_new(pod) : NULL;
    if (m)
        ev.pod_sandbox_status = cri_pod_status_get(m);
    cri_publish_container_event(&ev);
    cri_pod_status_free(m);
}

void cri_pod_sandbox_status(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__PodSandboxStatusRequest *req = (const Runtime__V1__PodSandboxStatusRequest *)request;
    struct pod *pod = pods_find(pods_of(call), req->pod_sandbox_id);
    if (!pod) {
        grpc_call_fail(call, ERR_NOT_FOUND, "PodSandboxStatus: pod sandbox %s not found",
                       req->pod_sandbox_id ? req->pod_sandbox_id : "");
        return;
    }
    struct pod_status_msg m;
    if (pod_status_msg_init(&m, pod) < 0) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "PodSandboxStatus: out of memory");
        return;
    }
    Runtime__V1__PodSandboxStatus st = m.st;
    Runtime__V1__PodSandboxStatusResponse resp = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
    resp.status = &st;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry info = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__PodSandboxStatusResponse__InfoEntry *infos[] = {&info};
    _cleanup_free_ char *text = NULL;
    if (req->verbose) {
        json_t *o = json_pack("{s:s, s:O, s:s, s:s?, s:s?, s:s?, s:I, s:b}", "id", pod->id, "config",
                              pod->config ? pod->config : json_null(), "cgroupPath", pod->cgroup_path, "netns",
                              pod->netns, "resolvConf", pod->resolv_conf, "hostname", pod->hostname, "initPid",
                              (json_int_t)pod->init_pid, "privileged", pod->privileged);
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
    pod_status_msg_free(&m);
}

/* --- List and Stream ------------------------------------------------------------------ */

static bool labels_match(const struct pod *pod, size_t n, Runtime__V1__PodSandboxFilter__LabelSelectorEntry **sel)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_object_get(pod->labels, sel[i]->key));
        if (!v || strcmp(v, sel[i]->value ? sel[i]->value : "") != 0)
            return false;
    }
    return true;
}

static bool filter_match(const struct pod *pod, const Runtime__V1__PodSandboxFilter *f)
{
    if (!f)
        return true;
    if (f->id && *f->id && strncmp(pod->id, f->id, strlen(f->id)) != 0)
        return false;
    if (f->state && f->state->state != state_of(pod))
        return false;
    return labels_match(pod, f->n_label_selector, f->label_selector);
}

struct sandbox_msg {
    Runtime__V1__PodSandbox sb;
    Runtime__V1__PodSandboxMetadata md;
    struct map_out labels, annotations;
};

static void sandbox_msg_init(struct sandbox_msg *m, struct pod *pod)
{
    Runtime__V1__PodSandbox sb = RUNTIME__V1__POD_SANDBOX__INIT;
    Runtime__V1__PodSandboxMetadata md = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
    m->sb = sb;
    m->md = md;
    m->md.name = pod->name;
    m->md.uid = pod->uid;
    m->md.namespace_ = pod->ns;
    m->md.attempt = pod->attempt;
    m->sb.id = pod->id;
    m->sb.metadata = &m->md;
    m->sb.state = state_of(pod);
    m->sb.created_at = pod->created_at;
    m->sb.runtime_handler = pod->runtime_handler;
    map_fill(&m->labels, pod->labels, &runtime__v1__pod_sandbox__labels_entry__descriptor);
    map_fill(&m->annotations, pod->annotations, &runtime__v1__pod_sandbox__annotations_entry__descriptor);
    m->sb.n_labels = m->labels.n;
    m->sb.labels = (Runtime__V1__PodSandbox__LabelsEntry **)m->labels.ptrs;
    m->sb.n_annotations = m->annotations.n;
    m->sb.annotations = (Runtime__V1__PodSandbox__AnnotationsEntry **)m->annotations.ptrs;
}

static void send_pods(struct grpc_call *call, const Runtime__V1__PodSandboxFilter *filter, bool streaming)
{
    struct list_node *head = pods_list(pods_of(call)), *pos, *tmp;
    size_t n = 0;
    list_for_each_safe(pos, tmp, head) n++;
    _cleanup_free_ struct sandbox_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
    _cleanup_free_ Runtime__V1__PodSandbox **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!msgs || !ptrs) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "out of memory listing pod sandboxes");
        return;
    }
    size_t k = 0;
    list_for_each_safe(pos, tmp, head)
    {
        struct pod *pod = list_entry(pos, struct pod, link);
        /* A pod still being created is listed once it exists (containerd
         * does the same). */
        if (pod->creating || !filter_match(pod, filter))
            continue;
        sandbox_msg_init(&msgs[k], pod);
        ptrs[k] = &msgs[k].sb;
        k++;
    }
    if (!streaming) {
        Runtime__V1__ListPodSandboxResponse resp = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
        resp.n_items = k;
        resp.items = ptrs;
        grpc_call_finish(call, &resp.base, NULL);
    } else {
        for (size_t off = 0; off < k; off += STREAM_BATCH) {
            Runtime__V1__StreamPodSandboxesResponse resp = RUNTIME__V1__STREAM_POD_SANDBOXES_RESPONSE__INIT;
            resp.n_pod_sandboxes = k - off < STREAM_BATCH ? k - off : STREAM_BATCH;
            resp.pod_sandboxes = ptrs + off;
            if (grpc_call_send(call, &resp.base) < 0)
                break;
        }
        grpc_call_finish(call, NULL, NULL);
    }
    for (size_t i = 0; i < k; i++) {
        map_free(&msgs[i].labels);
        map_free(&msgs[i].annotations);
    }
}

void cri_list_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_pods(call, ((const Runtime__V1__ListPodSandboxRequest *)request)->filter, false);
}

void cri_stream_pod_sandboxes(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_pods(call, ((const Runtime__V1__StreamPodSandboxesRequest *)request)->filter, true);
}

/* --- UpdatePodSandboxResources ----------------------------------------------------------- */

static void updated(void *data, struct pod *pod, const err_t *err)
{
    (void)pod;
    Runtime__V1__UpdatePodSandboxResourcesResponse resp = RUNTIME__V1__UPDATE_POD_SANDBOX_RESOURCES_RESPONSE__INIT;
    grpc_call_finish(data, &resp.base, err);
}

void cri_update_pod_sandbox_resources(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__UpdatePodSandboxResourcesRequest *req =
        (const Runtime__V1__UpdatePodSandboxResourcesRequest *)request;
    pods_update(pods_of(call), req->pod_sandbox_id, req->overhead, req->resources, updated, call);
}
