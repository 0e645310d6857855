/* CRI LinuxContainerResources as the cgroup module takes them; shared by
 * pods (overhead, resources) and containers. */
#pragma once

#include "api.pb-c.h"
#include "runtime/cgroup.h"

struct cri_resources {
    struct cgroup_resources r;
    struct cgroup_hugepage_limit *hugepages;
    const char **keys, **values;
};

/* Fills `out` from `in` (NULL gives "nothing set"); the strings stay owned
 * by `in`. Free with cri_resources_free. */
int cri_resources_from(const Runtime__V1__LinuxContainerResources *in, struct cri_resources *out, err_t *err);
void cri_resources_free(struct cri_resources *c);

/* The pod cgroup's limits: CRI's `resources` is the sum of the containers'
 * and `overhead` what the sandbox itself costs, so the cgroup (kubelet's pod
 * cgroup, which kubelet sizes as their sum too) gets resources + overhead:
 * memory, CPU shares and CPU quota add up (a quota in the resources' period);
 * a limit left unset in `resources` stays unset (unlimited), and without
 * `resources` the overhead alone applies. Other fields come from
 * `resources`. Either may be NULL. Free with cri_resources_free. */
int cri_resources_pod(const Runtime__V1__LinuxContainerResources *resources,
                      const Runtime__V1__LinuxContainerResources *overhead, struct cri_resources *out, err_t *err);

/* The same resources as JSON, for records and verbose status. */
json_t *cri_resources_json(const Runtime__V1__LinuxContainerResources *in);

/* Back from cri_resources_json (NULL for JSON null or not an object). The
 * scalars only: hugepage limits and unified entries are left out. */
Runtime__V1__LinuxContainerResources *cri_resources_from_json(const json_t *o);
void cri_resources_free_msg(Runtime__V1__LinuxContainerResources *m);
