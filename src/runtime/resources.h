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

/* The same resources as JSON, for records and verbose status. */
json_t *cri_resources_json(const Runtime__V1__LinuxContainerResources *in);
