#include "runtime/caps.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <strings.h>
#include <unistd.h>
#include <linux/capability.h>

#include "util/cleanup.h"

/* Names as capabilities(7) spells them, indexed by number. Written out rather
 * than taken from the kernel header so a name the header of the build machine
 * lacks still parses on a newer kernel. */
static const char *const cap_names[] = {
    [0] = "CAP_CHOWN",
    [1] = "CAP_DAC_OVERRIDE",
    [2] = "CAP_DAC_READ_SEARCH",
    [3] = "CAP_FOWNER",
    [4] = "CAP_FSETID",
    [5] = "CAP_KILL",
    [6] = "CAP_SETGID",
    [7] = "CAP_SETUID",
    [8] = "CAP_SETPCAP",
    [9] = "CAP_LINUX_IMMUTABLE",
    [10] = "CAP_NET_BIND_SERVICE",
    [11] = "CAP_NET_BROADCAST",
    [12] = "CAP_NET_ADMIN",
    [13] = "CAP_NET_RAW",
    [14] = "CAP_IPC_LOCK",
    [15] = "CAP_IPC_OWNER",
    [16] = "CAP_SYS_MODULE",
    [17] = "CAP_SYS_RAWIO",
    [18] = "CAP_SYS_CHROOT",
    [19] = "CAP_SYS_PTRACE",
    [20] = "CAP_SYS_PACCT",
    [21] = "CAP_SYS_ADMIN",
    [22] = "CAP_SYS_BOOT",
    [23] = "CAP_SYS_NICE",
    [24] = "CAP_SYS_RESOURCE",
    [25] = "CAP_SYS_TIME",
    [26] = "CAP_SYS_TTY_CONFIG",
    [27] = "CAP_MKNOD",
    [28] = "CAP_LEASE",
    [29] = "CAP_AUDIT_WRITE",
    [30] = "CAP_AUDIT_CONTROL",
    [31] = "CAP_SETFCAP",
    [32] = "CAP_MAC_OVERRIDE",
    [33] = "CAP_MAC_ADMIN",
    [34] = "CAP_SYSLOG",
    [35] = "CAP_WAKE_ALARM",
    [36] = "CAP_BLOCK_SUSPEND",
    [37] = "CAP_AUDIT_READ",
    [38] = "CAP_PERFMON",
    [39] = "CAP_BPF",
    [40] = "CAP_CHECKPOINT_RESTORE",
};

#define CAP_BIT(n) (UINT64_C(1) << (n))

/* -1 until the first call; the value never changes afterwards, so a race
 * between two first calls only reads the file twice. */
static int cached_last_cap = -1;

static int read_last_cap(void)
{
    _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[32];
    ssize_t n;
    do
        n = read(fd, buf, sizeof(buf) - 1);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || (*end != '\n' && *end != '\0') || v < 0)
        return -1;
    return v > 63 ? 63 : (int)v; /* a set is 64 bits wide */
}

int caps_last_cap(void)
{
    int v = __atomic_load_n(&cached_last_cap, __ATOMIC_RELAXED);
    if (v >= 0)
        return v;
    v = read_last_cap();
    if (v < 0)
        v = CAP_LAST_CAP > 63 ? 63 : CAP_LAST_CAP;
    __atomic_store_n(&cached_last_cap, v, __ATOMIC_RELAXED);
    return v;
}

uint64_t caps_all(void)
{
    int last = caps_last_cap();
    return last >= 63 ? UINT64_MAX : CAP_BIT(last + 1) - 1;
}

uint64_t caps_bounding_self(void)
{
    uint64_t set = 0;
    for (int cap = 0; cap <= caps_last_cap() && cap < 64; cap++)
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
            set |= 1ULL << cap;
    return set;
}

uint64_t caps_default(void)
{
    return CAP_BIT(0) /* CHOWN */ | CAP_BIT(1) /* DAC_OVERRIDE */ | CAP_BIT(4) /* FSETID */ | CAP_BIT(3) /* FOWNER */ |
           CAP_BIT(27) /* MKNOD */ | CAP_BIT(13) /* NET_RAW */ | CAP_BIT(6) /* SETGID */ | CAP_BIT(7) /* SETUID */ |
           CAP_BIT(31) /* SETFCAP */ | CAP_BIT(8) /* SETPCAP */ | CAP_BIT(10) /* NET_BIND_SERVICE */ |
           CAP_BIT(18) /* SYS_CHROOT */ | CAP_BIT(5) /* KILL */ | CAP_BIT(29) /* AUDIT_WRITE */;
}

/* The name without a leading "CAP_" (any case). */
static const char *strip_prefix(const char *name)
{
    return strncasecmp(name, "CAP_", 4) == 0 ? name + 4 : name;
}

int caps_from_name(const char *name)
{
    if (!name)
        return -1;
    const char *bare = strip_prefix(name);
    if (!*bare)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
        if (cap_names[i] && strcasecmp(bare, cap_names[i] + 4) == 0)
            return (int)i;
    return -1;
}

const char *caps_name(int cap)
{
    if (cap < 0 || (size_t)cap >= ARRAY_SIZE(cap_names))
        return NULL;
    return cap_names[cap];
}

static bool is_all(const char *name)
{
    return name && strcasecmp(strip_prefix(name), "ALL") == 0;
}

static bool list_has_all(const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_all(list[i]))
            return true;
    return false;
}

/* The named capabilities of a list (ALL skipped), or an error naming the
 * first unknown one. */
static int list_mask(const char *const *list, size_t n, const char *what, uint64_t *out, err_t *err)
{
    uint64_t mask = 0;
    for (size_t i = 0; i < n; i++) {
        if (!list[i])
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s capabilities: entry %zu is missing", what, i);
        if (is_all(list[i]))
            continue;
        int c = caps_from_name(list[i]);
        if (c < 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s capabilities: unknown capability \"%s\"", what,
                           list[i]);
        mask |= CAP_BIT(c);
    }
    *out = mask;
    return 0;
}

int caps_compute(uint64_t base, const char *const *add, size_t n_add, const char *const *drop, size_t n_drop,
                 uint64_t *out, err_t *err)
{
    uint64_t add_mask, drop_mask;
    int r = list_mask(add, n_add, "add", &add_mask, err);
    if (r < 0)
        return r;
    r = list_mask(drop, n_drop, "drop", &drop_mask, err);
    if (r < 0)
        return r;

    uint64_t set = base;
    if (list_has_all(add, n_add))
        set = caps_all();
    if (list_has_all(drop, n_drop))
        set = 0;
    set |= add_mask;
    set &= ~drop_mask;
    *out = set & caps_all();
    return 0;
}

char *caps_format(uint64_t set)
{
    /* 64 names of at most 22 bytes, with commas. */
    char buf[64 * 24];
    size_t len = 0;
    for (int c = 0; c < 64; c++) {
        if (!(set & CAP_BIT(c)))
            continue;
        char num[16];
        const char *name = caps_name(c);
        if (!name) {
            snprintf(num, sizeof(num), "CAP_%d", c);
            name = num;
        }
        if (len)
            buf[len++] = ',';
        for (const char *p = name; *p; p++)
            buf[len++] = (char)tolower((unsigned char)*p);
    }
    buf[len] = '\0';
    return strdup(buf);
}
