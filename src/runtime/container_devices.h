/* Which devices a container may use, and holding its processes to that: one
 * rule list feeds cgroup v1's devices controller and the cgroup v2 eBPF
 * device filter (runtime/devfilter.h), so both hierarchies decide alike. */
#pragma once

#include <stdbool.h>

#include "api.pb-c.h"
#include "runtime/cgroup.h"
#include "runtime/devfilter.h"
#include "util/error.h"

/* runc's and containerd's policy: deny by default, then mknod of any node
 * (the container's /dev is made that way), the standard nodes (null, zero,
 * full, random, urandom, tty, console, ptmx), the pty slaves, /dev/net/tun,
 * then the request's devices with their permissions ("" means rwm). A
 * privileged container may use every device. A device whose host path is
 * not a device node, or whose permissions are not r, w and m, is refused
 * with ERR_INVALID_ARGUMENT. */
int container_device_rules(const Runtime__V1__ContainerConfig *cfg, bool privileged, struct devfilter_rules *out,
                           err_t *err);

/* Applies the rules to the container's (existing) cgroup: writes them to
 * devices.deny/devices.allow where a v1 devices controller is mounted, and
 * attaches the eBPF filter to the cgroup's directory in the cgroup2
 * hierarchy where there is one. When the filter is the only enforcement
 * (pure v2, or no v1 devices controller), failing to attach it is an
 * error; beside a v1 controller it is only logged. */
int container_devices_apply(struct cgroup_manager *m, const char *cgroup_path, const struct devfilter_rules *rules,
                            err_t *err);
