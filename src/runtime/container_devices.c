#include "runtime/container_devices.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

static int add_text(struct devfilter_rules *l, const char *text, err_t *err)
{
    struct devfilter_rule r;
    int rc = devfilter_rule_parse(text, true, &r, err);
    return rc < 0 ? rc : devfilter_rules_add(l, &r, err);
}

static int add_device(struct devfilter_rules *l, const Runtime__V1__Device *d, err_t *err)
{
    struct stat st;
    if (!d->host_path || stat(d->host_path, &st) < 0)
        return err_sys(err, errno, "device %s", d->host_path ? d->host_path : "");
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device %s is not a device node", d->host_path);
    const char *perms = d->permissions && *d->permissions ? d->permissions : "rwm";
    struct devfilter_rule r = {
        .allow = true,
        .type = S_ISCHR(st.st_mode) ? DEVFILTER_CHAR : DEVFILTER_BLOCK,
        .major = (int32_t)major(st.st_rdev),
        .minor = (int32_t)minor(st.st_rdev),
    };
    if (strlen(perms) > 3 || devfilter_access_parse(perms, &r.access) < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "device %s: permissions \"%.16s\" are not r, w and m",
                       d->host_path, perms);
    if (major(st.st_rdev) > DEVFILTER_MAJOR_MAX || minor(st.st_rdev) > DEVFILTER_MINOR_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "device %s: numbers %u:%u are out of the kernel's range",
                       d->host_path, major(st.st_rdev), minor(st.st_rdev));
    return devfilter_rules_add(l, &r, err);
}

int container_device_rules(const Runtime__V1__ContainerConfig *cfg, bool privileged, struct devfilter_rules *out,
                           err_t *err)
{
    out->n = 0;
    if (privileged) {
        out->default_allow = true;
        return 0;
    }
    out->default_allow = false;
    static const char *const defaults[] = {"c *:* m",   "b *:* m",   "c 1:3 rwm",   "c 1:5 rwm",
                                           "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",   "c 5:0 rwm",
                                           "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"};
    int r = 0;
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(defaults); i++)
        r = add_text(out, defaults[i], err);
    for (size_t i = 0; r == 0 && cfg && i < cfg->n_devices; i++)
        r = add_device(out, cfg->devices[i], err);
    return r;
}

static int write_rule(const char *dir_file, const char *rule, err_t *err)
{
    _cleanup_close_ int fd = open(dir_file, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, rule, strlen(rule)) < 0)
        return err_sys(err, errno, "writing \"%s\" to %s", rule, dir_file);
    return 0;
}

/* The default first ("a" to devices.deny or devices.allow, which also
 * clears what an earlier attempt left), then each rule to its file. Returns
 * 1 when there is no v1 devices controller to write to. */
static int apply_v1(struct cgroup_manager *m, const char *cgroup_path, const struct devfilter_rules *l, err_t *err)
{
    _cleanup_free_ char *deny = cgroup_file(m, cgroup_path, "devices", "devices.deny");
    _cleanup_free_ char *allow = cgroup_file(m, cgroup_path, "devices", "devices.allow");
    if (!deny || !allow || access(deny, W_OK) < 0)
        return 1;
    int r = write_rule(l->default_allow ? allow : deny, "a", err);
    for (size_t i = 0; r == 0 && i < l->n; i++) {
        char text[32];
        if (devfilter_rule_format(&l->rule[i], text, sizeof(text)) < 0)
            return err_set(err, ERR_INTERNAL, EINVAL, "device rule %zu cannot be written", i);
        r = write_rule(l->rule[i].allow ? allow : deny, text, err);
    }
    return r;
}

int container_devices_apply(struct cgroup_manager *m, const char *cgroup_path, const struct devfilter_rules *rules,
                            err_t *err)
{
    int v1 = apply_v1(m, cgroup_path, rules, err);
    if (v1 < 0)
        return v1;
    _cleanup_err_ err_t e = ERR_INIT;
    _cleanup_close_ int fd = cgroup_open_unified(m, cgroup_path, &e);
    if (fd == -ENOTSUP)
        return 0; /* v1 without a cgroup2 tree: v1 alone (if mounted) decides */
    int r = fd < 0 ? fd : devfilter_attach(fd, rules, &e);
    if (r == 0)
        return 0;
    err_wrap(&e, "cgroup %s: device filter", cgroup_path);
    if (cgroup_manager_version(m) == CGROUP_V2 || v1 == 1) {
        err_move(err, &e);
        return r;
    }
    /* A hybrid node: v1 decides for the devices; the unified tree's filter
     * only repeats it. */
    log_warn("%s (the v1 devices controller still enforces the rules)", e.msg);
    return 0;
}
