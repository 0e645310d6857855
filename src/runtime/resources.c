#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/resources.h"

int cri_resources_from(const Runtime__V1__LinuxContainerResources *in, struct cri_resources *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!in)
        return 0;
    struct cgroup_resources *r = &out->r;
    r->cpu_period = in->cpu_period;
    r->cpu_quota = in->cpu_quota;
    r->cpu_shares = in->cpu_shares;
    r->cpuset_cpus = in->cpuset_cpus;
    r->cpuset_mems = in->cpuset_mems;
    r->memory_limit = in->memory_limit_in_bytes;
    r->memory_swap_limit = in->memory_swap_limit_in_bytes;
    if (in->n_hugepage_limits) {
        out->hugepages = calloc(in->n_hugepage_limits, sizeof(*out->hugepages));
        if (!out->hugepages)
            return err_sys(err, ENOMEM, "resources");
        for (size_t i = 0; i < in->n_hugepage_limits; i++) {
            const char *ps = in->hugepage_limits[i]->page_size;
            if (!ps || strlen(ps) >= sizeof(out->hugepages[i].page_size)) {
                cri_resources_free(out);
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid hugepage size \"%s\"", ps ? ps : "");
            }
            snprintf(out->hugepages[i].page_size, sizeof(out->hugepages[i].page_size), "%s", ps);
            out->hugepages[i].limit = in->hugepage_limits[i]->limit;
        }
        r->hugepages = out->hugepages;
        r->n_hugepages = in->n_hugepage_limits;
    }
    if (in->n_unified) {
        out->keys = calloc(in->n_unified, sizeof(char *));
        out->values = calloc(in->n_unified, sizeof(char *));
        if (!out->keys || !out->values) {
            cri_resources_free(out);
            return err_sys(err, ENOMEM, "resources");
        }
        for (size_t i = 0; i < in->n_unified; i++) {
            out->keys[i] = in->unified[i]->key;
            out->values[i] = in->unified[i]->value;
        }
        r->unified_keys = out->keys;
        r->unified_values = out->values;
        r->n_unified = in->n_unified;
    }
    return 0;
}

void cri_resources_free(struct cri_resources *c)
{
    free(c->hugepages);
    free(c->keys);
    free(c->values);
    memset(c, 0, sizeof(*c));
}

json_t *cri_resources_json(const Runtime__V1__LinuxContainerResources *in)
{
    if (!in)
        return json_null();
    json_t *hp = json_array();
    for (size_t i = 0; i < in->n_hugepage_limits; i++)
        json_array_append_new(hp, json_pack("{s:s, s:I}", "pageSize", in->hugepage_limits[i]->page_size, "limit",
                                            (json_int_t)in->hugepage_limits[i]->limit));
    json_t *unified = json_object();
    for (size_t i = 0; i < in->n_unified; i++)
        json_object_set_new(unified, in->unified[i]->key, json_string(in->unified[i]->value));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:o, s:o}", "cpuPeriod", (json_int_t)in->cpu_period,
                     "cpuQuota", (json_int_t)in->cpu_quota, "cpuShares", (json_int_t)in->cpu_shares, "memoryLimit",
                     (json_int_t)in->memory_limit_in_bytes, "oomScoreAdj", (json_int_t)in->oom_score_adj, "cpusetCpus",
                     in->cpuset_cpus ? in->cpuset_cpus : "", "cpusetMems", in->cpuset_mems ? in->cpuset_mems : "",
                     "memorySwapLimit", (json_int_t)in->memory_swap_limit_in_bytes, "hugepageLimits", hp, "unified",
                     unified);
}

int cri_resources_pod(const Runtime__V1__LinuxContainerResources *resources,
                      const Runtime__V1__LinuxContainerResources *overhead, struct cri_resources *out, err_t *err)
{
    int r = cri_resources_from(resources ? resources : overhead, out, err);
    if (r < 0 || !resources || !overhead)
        return r;
    struct cgroup_resources *c = &out->r;
    if (c->memory_limit > 0 && overhead->memory_limit_in_bytes > 0)
        c->memory_limit += overhead->memory_limit_in_bytes;
    if (c->memory_swap_limit > 0 && overhead->memory_limit_in_bytes > 0)
        c->memory_swap_limit += overhead->memory_limit_in_bytes;
    if (c->cpu_shares > 0 && overhead->cpu_shares > 0)
        c->cpu_shares += overhead->cpu_shares;
    if (c->cpu_quota > 0 && overhead->cpu_quota > 0) {
        /* CFS's default period when one is not given */
        int64_t period = c->cpu_period > 0 ? c->cpu_period : 100000;
        int64_t operiod = overhead->cpu_period > 0 ? overhead->cpu_period : 100000;
        c->cpu_quota += overhead->cpu_quota * period / operiod;
        c->cpu_period = period;
    }
    return 0;
}

static int64_t int_of(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? strdup(s) : NULL;
}

Runtime__V1__LinuxContainerResources *cri_resources_from_json(const json_t *o)
{
    if (!json_is_object(o))
        return NULL;
    Runtime__V1__LinuxContainerResources *m = malloc(sizeof(*m));
    if (!m)
        return NULL;
    runtime__v1__linux_container_resources__init(m);
    m->cpu_period = int_of(o, "cpuPeriod");
    m->cpu_quota = int_of(o, "cpuQuota");
    m->cpu_shares = int_of(o, "cpuShares");
    m->memory_limit_in_bytes = int_of(o, "memoryLimit");
    m->oom_score_adj = int_of(o, "oomScoreAdj");
    m->memory_swap_limit_in_bytes = int_of(o, "memorySwapLimit");
    m->cpuset_cpus = str_of(o, "cpusetCpus");
    m->cpuset_mems = str_of(o, "cpusetMems");
    return m;
}

void cri_resources_free_msg(Runtime__V1__LinuxContainerResources *m)
{
    if (!m)
        return;
    free(m->cpuset_cpus);
    free(m->cpuset_mems);
    free(m);
}
