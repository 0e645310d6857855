/* Reading resource usage from the kernel's files: cgroup v1 and v2
 * (Documentation/admin-guide/cgroup-v1/{cpuacct,memory}.rst, cgroup-v2.rst),
 * PSI (accounting/psi.rst), /proc/net/dev, and a du-like walk. The derived
 * numbers follow what kubelet and cAdvisor expect: working set = usage minus
 * inactive file pages, RSS = total_rss (v1) or anon (v2). */
#include "runtime/stats.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "util/cleanup.h"

/* Larger than any cgroup file edgecri reads (memory.stat is ~2 KiB). */
#define CG_FILE_MAX (16 * 1024)
/* /proc/net/dev: ~130 bytes a line; enough for STATS_MAX_IFACES and many
 * more, the rest is cut at a line boundary. */
#define NETDEV_MAX (32 * 1024)
/* v1 limits at or above this mean "no limit" (the kernel rounds
 * PAGE_COUNTER_MAX to pages, so it is not exactly INT64_MAX). */
#define V1_UNLIMITED (1ULL << 62)

/* ---- parsers ------------------------------------------------------------- */

/* An unsigned decimal of at most 20 digits ending at *end; no sign, no
 * space, no overflow. */
static int parse_u64_at(const char *s, const char **end, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    uint64_t v = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return 0;
}

int stats_parse_value(const char *text, uint64_t *out)
{
    if (!text)
        return -EINVAL;
    const char *end;
    uint64_t v = STATS_UNLIMITED;
    if (strncmp(text, "max", 3) == 0)
        end = text + 3;
    else if (parse_u64_at(text, &end, &v) < 0)
        return -EINVAL;
    if (*end == '\n')
        end++;
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

int stats_parse_keyed(const char *text, const char *key, uint64_t *out)
{
    if (!text || !key || !*key)
        return -EINVAL;
    size_t kl = strlen(key);
    for (const char *line = text; *line;) {
        const char *nl = strchrnul(line, '\n');
        if ((size_t)(nl - line) > kl && strncmp(line, key, kl) == 0 && line[kl] == ' ') {
            const char *end;
            uint64_t v;
            if (parse_u64_at(line + kl + 1, &end, &v) < 0 || end != nl)
                return -EINVAL;
            *out = v;
            return 0;
        }
        line = *nl ? nl + 1 : nl;
    }
    return -ENOENT;
}

/* "avg10=1.23": a non-negative decimal with at most two fraction digits in
 * the kernel's format; anything else fails. */
static bool psi_field(const char *tok, const char *name, double *out)
{
    size_t n = strlen(name);
    if (strncmp(tok, name, n) != 0 || tok[n] != '=')
        return false;
    const char *p = tok + n + 1;
    if (!isdigit((unsigned char)*p))
        return false;
    char *end;
    double v = strtod(p, &end);
    if (end == p || (*end && *end != ' ' && *end != '\n') || !(v >= 0.0 && v <= 1e9))
        return false;
    *out = v;
    return true;
}

static bool psi_line(const char *line, const char *nl, struct stats_psi_line *out)
{
    char buf[256];
    size_t len = (size_t)(nl - line);
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    struct stats_psi_line l = {.set = true};
    char *save = NULL;
    char *tok = strtok_r(buf, " ", &save); /* "some" / "full" */
    int seen = 0;
    while ((tok = strtok_r(NULL, " ", &save))) {
        if (psi_field(tok, "avg10", &l.avg10) || psi_field(tok, "avg60", &l.avg60) ||
            psi_field(tok, "avg300", &l.avg300)) {
            seen++;
        } else if (strncmp(tok, "total=", 6) == 0) {
            const char *end;
            if (parse_u64_at(tok + 6, &end, &l.total_us) < 0 || *end)
                return false;
            seen++;
        } else {
            return false;
        }
    }
    if (seen != 4)
        return false;
    *out = l;
    return true;
}

int stats_parse_psi(const char *text, struct stats_psi *out)
{
    memset(out, 0, sizeof(*out));
    if (!text)
        return -EINVAL;
    for (const char *line = text; *line;) {
        const char *nl = strchrnul(line, '\n');
        if (strncmp(line, "some ", 5) == 0 && !out->some.set)
            psi_line(line, nl, &out->some);
        else if (strncmp(line, "full ", 5) == 0 && !out->full.set)
            psi_line(line, nl, &out->full);
        line = *nl ? nl + 1 : nl;
    }
    return out->some.set || out->full.set ? 0 : -EINVAL;
}

/* One interface line: "  eth0: 1 2 3 …" with exactly 16 counters. */
static bool netdev_line(const char *line, const char *nl, struct stats_iface *out)
{
    while (line < nl && *line == ' ')
        line++;
    const char *colon = memchr(line, ':', (size_t)(nl - line));
    if (!colon || colon == line || (size_t)(colon - line) >= STATS_IFNAME_MAX)
        return false;
    struct stats_iface f = {0};
    for (const char *c = line; c < colon; c++)
        if ((unsigned char)*c <= ' ' || *c == '/' || (unsigned char)*c >= 0x7f)
            return false;
    memcpy(f.name, line, (size_t)(colon - line));
    uint64_t v[16];
    const char *p = colon + 1;
    for (int i = 0; i < 16; i++) {
        while (p < nl && *p == ' ')
            p++;
        const char *end;
        if (p >= nl || parse_u64_at(p, &end, &v[i]) < 0 || end > nl)
            return false;
        p = end;
    }
    while (p < nl && *p == ' ')
        p++;
    if (p != nl)
        return false;
    /* receive: bytes packets errs drop fifo frame compressed multicast;
     * transmit: bytes packets errs drop fifo colls carrier compressed */
    f.rx_bytes = v[0];
    f.rx_packets = v[1];
    f.rx_errors = v[2];
    f.rx_dropped = v[3];
    f.tx_bytes = v[8];
    f.tx_packets = v[9];
    f.tx_errors = v[10];
    f.tx_dropped = v[11];
    *out = f;
    return true;
}

int stats_parse_netdev(const char *text, struct stats_net *out)
{
    out->n = 0;
    if (!text)
        return -EINVAL;
    int line_no = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchrnul(line, '\n');
        line_no++;
        if (line_no <= 2) {
            /* "Inter-|   Receive …" and " face |bytes …" */
            if (!memchr(line, '|', (size_t)(nl - line)))
                return -EINVAL;
        } else if (out->n < STATS_MAX_IFACES) {
            struct stats_iface f;
            if (netdev_line(line, nl, &f) && strcmp(f.name, "lo") != 0)
                out->ifaces[out->n++] = f;
        }
        line = *nl ? nl + 1 : nl;
    }
    return line_no >= 2 ? 0 : -EINVAL;
}

/* ---- file reading ----------------------------------------------------------- */

/* Reads a whole small file into buf (NUL-terminated). Returns the length or
 * -errno; -EFBIG when it does not fit, unless `cut` is set, in which case
 * the text is cut after its last complete line. */
static ssize_t read_text_at(int dirfd, const char *path, char *buf, size_t size, bool cut)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        if (got + 1 >= size) {
            if (!cut)
                return -EFBIG;
            break;
        }
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (got + 1 >= size) {
        char *nl = strrchr(buf, '\n');
        got = nl ? (size_t)(nl - buf) + 1 : 0;
        buf[got] = '\0';
    }
    if (memchr(buf, '\0', got))
        return -EINVAL; /* no kernel file we read holds a NUL */
    return (ssize_t)got;
}

/* One cgroup being read: its directory in each hierarchy is opened once
 * and its files relative to that, which spares the kernel a walk down the
 * whole cgroup path per file (most of the cost of a read on a deep tree). */
#define CG_MAX_DIRS 8

struct cg {
    struct cgroup_manager *m;
    const char *path;
    struct {
        char *dir;
        int fd; /* -errno when it could not be opened */
    } dirs[CG_MAX_DIRS];
    size_t n;
};

static void cg_close(struct cg *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->dirs[i].dir);
        if (c->dirs[i].fd >= 0)
            close(c->dirs[i].fd);
    }
    c->n = 0;
}

/* The directory fd of the cgroup in the hierarchy holding `controller`. */
static int cg_dir(struct cg *c, const char *controller)
{
    /* cgroup_file validates the path and picks the hierarchy; the directory
     * is what holds the file. */
    _cleanup_free_ char *p = cgroup_file(c->m, c->path, controller, "cgroup.procs");
    if (!p)
        return -ENOTSUP;
    *strrchr(p, '/') = '\0';
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->dirs[i].dir, p) == 0)
            return c->dirs[i].fd;
    int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        fd = -errno;
    if (c->n == CG_MAX_DIRS) {
        if (fd >= 0)
            close(fd);
        return -EMFILE; /* more hierarchies than controllers: cannot happen */
    }
    c->dirs[c->n].dir = steal_pointer(&p);
    c->dirs[c->n].fd = fd;
    c->n++;
    return fd;
}

/* Reads `file` of the cgroup in the hierarchy of `controller`. */
static ssize_t cg_read(struct cg *c, const char *controller, const char *file, char *buf, size_t size)
{
    int dfd = cg_dir(c, controller);
    if (dfd < 0)
        return dfd;
    return read_text_at(dfd, file, buf, size, false);
}

static int cg_value(struct cg *c, const char *controller, const char *file, uint64_t *out)
{
    char buf[64];
    ssize_t n = cg_read(c, controller, file, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    return stats_parse_value(buf, out);
}

/* ---- memory --------------------------------------------------------------- */

/* A key's value, or 0 when absent; false when the file is garbled. */
static bool keyed_or_zero(const char *text, const char *key, uint64_t *out)
{
    int r = stats_parse_keyed(text, key, out);
    if (r == -ENOENT)
        *out = 0;
    return r == 0 || r == -ENOENT;
}

/* Prefers the hierarchical "total_" key of v1, which covers the children. */
static bool keyed_total(const char *text, const char *key, uint64_t *out)
{
    char total[64];
    snprintf(total, sizeof(total), "total_%s", key);
    int r = stats_parse_keyed(text, total, out);
    if (r == -ENOENT)
        return keyed_or_zero(text, key, out);
    return r == 0;
}

static uint64_t sub_clamped(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

int stats_memory_from_v1(const char *st, uint64_t usage, struct stats_memory *out)
{
    uint64_t inactive_file;
    if (!keyed_total(st, "inactive_file", &inactive_file) || !keyed_total(st, "rss", &out->rss) ||
        !keyed_total(st, "cache", &out->cache) || !keyed_total(st, "mapped_file", &out->mapped_file) ||
        !keyed_total(st, "pgfault", &out->page_faults) || !keyed_total(st, "pgmajfault", &out->major_page_faults) ||
        !keyed_or_zero(st, "pgfault", &out->own_page_faults) ||
        !keyed_or_zero(st, "pgmajfault", &out->own_major_page_faults))
        return -EINVAL;
    out->usage = usage;
    out->working_set = sub_clamped(usage, inactive_file);
    return 0;
}

int stats_memory_from_v2(const char *st, uint64_t usage, struct stats_memory *out)
{
    uint64_t inactive_file;
    if (!keyed_or_zero(st, "inactive_file", &inactive_file) || !keyed_or_zero(st, "anon", &out->rss) ||
        !keyed_or_zero(st, "file", &out->cache) || !keyed_or_zero(st, "file_mapped", &out->mapped_file) ||
        !keyed_or_zero(st, "pgfault", &out->page_faults) || !keyed_or_zero(st, "pgmajfault", &out->major_page_faults))
        return -EINVAL;
    out->own_page_faults = out->page_faults;
    out->own_major_page_faults = out->major_page_faults;
    out->usage = usage;
    out->working_set = sub_clamped(usage, inactive_file);
    return 0;
}

static uint64_t v1_limit(uint64_t v)
{
    return v >= V1_UNLIMITED ? STATS_UNLIMITED : v;
}

/* A node without swap uses none: two reads fewer per cgroup for the CRI
 * stats (the metrics still read the limits, which they show). */
static bool swap_off(unsigned flags, struct stats_memory *mem)
{
    if (!(flags & STATS_SWAP_OFF) || (flags & STATS_READ_FULL))
        return false;
    mem->has_swap = true;
    mem->swap_usage = 0;
    mem->swap_limit = STATS_UNLIMITED;
    return true;
}

static void read_memory_v1(struct cg *c, unsigned flags, struct stats_memory *mem, int *status)
{
    char st[CG_FILE_MAX];
    uint64_t usage, limit, v;
    int r = cg_value(c, "memory", "memory.usage_in_bytes", &usage);
    if (r == 0)
        r = (int)(cg_read(c, "memory", "memory.stat", st, sizeof(st)) < 0 ? -EINVAL : 0);
    if (r == 0)
        r = stats_memory_from_v1(st, usage, mem);
    *status = r;
    if (r < 0)
        return;
    mem->valid = true;
    mem->limit = cg_value(c, "memory", "memory.limit_in_bytes", &limit) == 0 ? v1_limit(limit) : STATS_UNLIMITED;
    /* memsw counts memory + swap: swap is the difference. */
    uint64_t sw_usage, sw_limit;
    if (!swap_off(flags, mem) && cg_value(c, "memory", "memory.memsw.usage_in_bytes", &sw_usage) == 0 &&
        cg_value(c, "memory", "memory.memsw.limit_in_bytes", &sw_limit) == 0) {
        mem->has_swap = true;
        mem->swap_usage = sub_clamped(sw_usage, usage);
        sw_limit = v1_limit(sw_limit);
        mem->swap_limit = sw_limit == STATS_UNLIMITED || mem->limit == STATS_UNLIMITED
                              ? STATS_UNLIMITED
                              : sub_clamped(sw_limit, mem->limit);
    }
    if (!(flags & STATS_READ_FULL))
        return;
    if (cg_value(c, "memory", "memory.max_usage_in_bytes", &v) == 0) {
        mem->has_max_usage = true;
        mem->max_usage = v;
    }
    if (cg_value(c, "memory", "memory.failcnt", &v) == 0) {
        mem->has_failcnt = true;
        mem->failcnt = v;
    }
    char oc[512];
    if (cg_read(c, "memory", "memory.oom_control", oc, sizeof(oc)) >= 0 && stats_parse_keyed(oc, "oom_kill", &v) == 0) {
        mem->has_oom = true;
        mem->oom_kills = v;
    }
}

static void read_psi(struct cg *c, const char *controller, const char *file, bool *has, struct stats_psi *psi)
{
    char buf[512];
    *has = cg_read(c, controller, file, buf, sizeof(buf)) >= 0 && stats_parse_psi(buf, psi) == 0;
}

static void read_memory_v2(struct cg *c, unsigned flags, struct stats_memory *mem, int *status)
{
    char st[CG_FILE_MAX];
    uint64_t usage, v;
    int r = cg_value(c, "memory", "memory.current", &usage);
    if (r == 0)
        r = (int)(cg_read(c, "memory", "memory.stat", st, sizeof(st)) < 0 ? -EINVAL : 0);
    if (r == 0)
        r = stats_memory_from_v2(st, usage, mem);
    *status = r;
    if (r < 0)
        return;
    mem->valid = true;
    mem->limit = cg_value(c, "memory", "memory.max", &v) == 0 ? v : STATS_UNLIMITED;
    uint64_t sw_limit;
    if (!swap_off(flags, mem) && cg_value(c, "memory", "memory.swap.current", &v) == 0) {
        mem->has_swap = true;
        mem->swap_usage = v;
        mem->swap_limit = cg_value(c, "memory", "memory.swap.max", &sw_limit) == 0 ? sw_limit : STATS_UNLIMITED;
    }
    read_psi(c, "memory", "memory.pressure", &mem->has_psi, &mem->psi);
    if (!(flags & STATS_READ_FULL))
        return;
    if (cg_value(c, "memory", "memory.peak", &v) == 0) {
        mem->has_max_usage = true;
        mem->max_usage = v;
    }
    char ev[1024];
    if (cg_read(c, "memory", "memory.events", ev, sizeof(ev)) >= 0) {
        /* "max": times the usage hit the limit, v1's failcnt. */
        if (stats_parse_keyed(ev, "max", &v) == 0) {
            mem->has_failcnt = true;
            mem->failcnt = v;
        }
        if (stats_parse_keyed(ev, "oom_kill", &v) == 0) {
            mem->has_oom = true;
            mem->oom_kills = v;
        }
    }
}

/* ---- cpu ---------------------------------------------------------------------- */

static void read_cpu_v1(struct cg *c, unsigned flags, struct stats_cpu *cpu, struct stats_spec *spec, int *status)
{
    uint64_t v;
    int r = cg_value(c, "cpuacct", "cpuacct.usage", &cpu->usage_ns);
    *status = r;
    if (r < 0)
        return;
    cpu->valid = true;
    if (!(flags & STATS_READ_FULL))
        return;
    /* usage_user/usage_sys are nanoseconds (kernel 4.7+); cpuacct.stat is
     * in USER_HZ ticks. */
    if (cg_value(c, "cpuacct", "cpuacct.usage_user", &cpu->user_ns) < 0 ||
        cg_value(c, "cpuacct", "cpuacct.usage_sys", &cpu->system_ns) < 0) {
        char st[256];
        long hz = sysconf(_SC_CLK_TCK);
        uint64_t user = 0, sys = 0;
        cpu->user_ns = cpu->system_ns = 0;
        if (hz > 0 && cg_read(c, "cpuacct", "cpuacct.stat", st, sizeof(st)) >= 0 &&
            stats_parse_keyed(st, "user", &user) == 0 && stats_parse_keyed(st, "system", &sys) == 0 &&
            user < UINT64_MAX / 1000000000ULL && sys < UINT64_MAX / 1000000000ULL) {
            cpu->user_ns = user * 1000000000ULL / (uint64_t)hz;
            cpu->system_ns = sys * 1000000000ULL / (uint64_t)hz;
        }
    }
    char st[512];
    if (cg_read(c, "cpu", "cpu.stat", st, sizeof(st)) >= 0 && stats_parse_keyed(st, "nr_periods", &cpu->periods) == 0 &&
        stats_parse_keyed(st, "nr_throttled", &cpu->throttled_periods) == 0 &&
        stats_parse_keyed(st, "throttled_time", &cpu->throttled_ns) == 0)
        cpu->has_throttling = true;
    /* cfs_quota_us is -1 without a quota, which stats_parse_value refuses:
     * no quota is what that means. */
    if (cg_value(c, "cpu", "cpu.cfs_quota_us", &v) == 0) {
        spec->has_quota = true;
        spec->cpu_quota_us = v;
    }
    if (cg_value(c, "cpu", "cpu.cfs_period_us", &v) == 0) {
        spec->has_period = true;
        spec->cpu_period_us = v;
    }
    if (cg_value(c, "cpu", "cpu.shares", &v) == 0) {
        spec->has_shares = true;
        spec->cpu_shares = v;
    }
}

uint64_t stats_weight_to_shares(uint64_t weight)
{
    if (weight < 1)
        weight = 1;
    if (weight > 10000)
        weight = 10000;
    return 2 + ((weight - 1) * 262142) / 9999;
}

/* cpu.max: "max 100000" or "50000 100000". */
static void parse_cpu_max(const char *text, struct stats_spec *spec)
{
    const char *p = text, *end;
    uint64_t quota = 0, period;
    bool unlimited = strncmp(p, "max ", 4) == 0;
    if (unlimited)
        end = p + 3;
    else if (parse_u64_at(p, &end, &quota) < 0)
        return;
    if (*end != ' ' || parse_u64_at(end + 1, &end, &period) < 0 || (*end && strcmp(end, "\n") != 0))
        return;
    spec->has_period = true;
    spec->cpu_period_us = period;
    if (!unlimited) {
        spec->has_quota = true;
        spec->cpu_quota_us = quota;
    }
}

static void read_cpu_v2(struct cg *c, unsigned flags, struct stats_cpu *cpu, struct stats_spec *spec, int *status)
{
    char st[1024];
    uint64_t usage = 0, user = 0, sys = 0;
    ssize_t n = cg_read(c, "cpu", "cpu.stat", st, sizeof(st));
    int r = n < 0 ? (int)n : stats_parse_keyed(st, "usage_usec", &usage);
    if (r == 0 && (!keyed_or_zero(st, "user_usec", &user) || !keyed_or_zero(st, "system_usec", &sys) ||
                   usage > UINT64_MAX / 1000 || user > UINT64_MAX / 1000 || sys > UINT64_MAX / 1000))
        r = -EINVAL;
    *status = r;
    if (r < 0)
        return;
    cpu->valid = true;
    cpu->usage_ns = usage * 1000;
    cpu->user_ns = user * 1000;
    cpu->system_ns = sys * 1000;
    uint64_t thr_us;
    /* nr_periods is there only with the cpu controller enabled. */
    if (stats_parse_keyed(st, "nr_periods", &cpu->periods) == 0 &&
        stats_parse_keyed(st, "nr_throttled", &cpu->throttled_periods) == 0 &&
        stats_parse_keyed(st, "throttled_usec", &thr_us) == 0 && thr_us <= UINT64_MAX / 1000) {
        cpu->has_throttling = true;
        cpu->throttled_ns = thr_us * 1000;
    }
    read_psi(c, "cpu", "cpu.pressure", &cpu->has_psi, &cpu->psi);
    if (!(flags & STATS_READ_FULL))
        return;
    char buf[64];
    if (cg_read(c, "cpu", "cpu.max", buf, sizeof(buf)) >= 0)
        parse_cpu_max(buf, spec);
    uint64_t weight;
    if (cg_value(c, "cpu", "cpu.weight", &weight) == 0 && weight != STATS_UNLIMITED) {
        spec->has_shares = true;
        spec->cpu_shares = stats_weight_to_shares(weight);
    }
}

int stats_read_cgroup(struct cgroup_manager *m, const char *path, unsigned flags, struct stats_cgroup *out)
{
    memset(out, 0, sizeof(*out));
    struct cg cgv = {.m = m, .path = path}, *c = &cgv;
    bool v2 = cgroup_manager_version(m) == CGROUP_V2;
    int cpu_r, mem_r, pids_r = -ENODATA;
    if (v2) {
        read_cpu_v2(c, flags, &out->cpu, &out->spec, &cpu_r);
        read_memory_v2(c, flags, &out->memory, &mem_r);
        read_psi(c, "io", "io.pressure", &out->has_io_psi, &out->io_psi);
    } else {
        read_cpu_v1(c, flags, &out->cpu, &out->spec, &cpu_r);
        read_memory_v1(c, flags, &out->memory, &mem_r);
    }
    if (flags & (STATS_READ_PIDS | STATS_READ_FULL))
        pids_r = cg_value(c, "pids", "pids.current", &out->pids.current);
    if (pids_r == 0) {
        out->pids.valid = true;
        if (!(flags & STATS_READ_FULL) || cg_value(c, "pids", "pids.max", &out->pids.limit) < 0)
            out->pids.limit = STATS_UNLIMITED;
    }
    cg_close(c);
    if (!out->cpu.valid && !out->memory.valid && !out->pids.valid)
        return cpu_r == -ENOENT || mem_r == -ENOENT || pids_r == -ENOENT ? -ENOENT : -EINVAL;
    return 0;
}

/* ---- network namespaces ------------------------------------------------------- */

/* /proc/<pid>/net/dev, if <pid> is (still) in the namespace `ns`: the
 * directory fd pins the process, so the check and the read are about the
 * same one even if the pid is reused meanwhile. */
static int netdev_of_pid(pid_t pid, const struct stat *ns, char *buf, size_t size)
{
    char p[32];
    snprintf(p, sizeof(p), "/proc/%d", (int)pid);
    _cleanup_close_ int dfd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct stat st;
    if (fstatat(dfd, "ns/net", &st, 0) < 0)
        return -errno;
    if (st.st_dev != ns->st_dev || st.st_ino != ns->st_ino)
        return -ESRCH;
    ssize_t n = read_text_at(dfd, "net/dev", buf, size, true);
    return n < 0 ? (int)n : 0;
}

struct netns_thread {
    const char *path;
    char *buf;
    size_t size;
    int result;
};

/* Runs in a thread of its own that ends right after: the namespace it
 * enters never outlives the read. */
static void *netns_reader(void *arg)
{
    struct netns_thread *t = arg;
    _cleanup_close_ int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        t->result = -errno;
        return NULL;
    }
    if (setns(fd, CLONE_NEWNET) < 0) {
        t->result = -errno;
        return NULL;
    }
    /* /proc/self would be the thread group leader's view. */
    ssize_t n = read_text_at(AT_FDCWD, "/proc/thread-self/net/dev", t->buf, t->size, true);
    t->result = n < 0 ? (int)n : 0;
    return NULL;
}

int stats_read_netns(const char *netns_path, const pid_t *pids, size_t n_pids, struct stats_net *out, err_t *err)
{
    out->n = 0;
    struct stat ns;
    if (stat(netns_path, &ns) < 0)
        return err_sys(err, errno, "reading the network namespace %s", netns_path);
    _cleanup_free_ char *buf = malloc(NETDEV_MAX);
    if (!buf)
        return err_sys(err, ENOMEM, "reading the network namespace %s", netns_path);
    int r = -ESRCH;
    for (size_t i = 0; i < n_pids && r < 0; i++)
        if (pids[i] > 0)
            r = netdev_of_pid(pids[i], &ns, buf, NETDEV_MAX);
    if (r < 0) {
        struct netns_thread t = {.path = netns_path, .buf = buf, .size = NETDEV_MAX, .result = -EIO};
        pthread_t th;
        int e = pthread_create(&th, NULL, netns_reader, &t);
        if (e != 0)
            return err_sys(err, e, "starting a thread to read the network namespace %s", netns_path);
        pthread_join(th, NULL);
        r = t.result;
        if (r < 0)
            return err_sys(err, -r, "reading /proc/net/dev in the network namespace %s", netns_path);
    }
    if (stats_parse_netdev(buf, out) < 0)
        return err_set(err, ERR_INTERNAL, EINVAL,
                       "/proc/net/dev of the network namespace %s is not in the expected format", netns_path);
    return 0;
}

/* ---- disk usage ---------------------------------------------------------------- */

/* Hard-linked files are counted once, as du does: a set of (dev, ino) of
 * the files with more than one link. Bounded: past the cap a link may be
 * counted twice, which only overstates. */
#define LINKS_CAP (1u << 16)

struct links {
    struct {
        dev_t dev;
        ino_t ino;
    } * slots;
    size_t cap, n;
};

static bool links_seen(struct links *l, dev_t dev, ino_t ino)
{
    if (ino == 0) /* the empty-slot marker; no real file has it */
        return false;
    if (l->n * 2 >= l->cap) {
        if (l->cap >= LINKS_CAP)
            return false;
        size_t ncap = l->cap ? l->cap * 2 : 64;
        __typeof__(l->slots) ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return false;
        for (size_t i = 0; i < l->cap; i++) {
            if (!l->slots[i].ino)
                continue;
            size_t h = (size_t)(l->slots[i].ino * 0x9E3779B97F4A7C15ULL) & (ncap - 1);
            while (ns[h].ino)
                h = (h + 1) & (ncap - 1);
            ns[h] = l->slots[i];
        }
        free(l->slots);
        l->slots = ns;
        l->cap = ncap;
    }
    size_t h = (size_t)(ino * 0x9E3779B97F4A7C15ULL) & (l->cap - 1);
    while (l->slots[h].ino) {
        if (l->slots[h].ino == ino && l->slots[h].dev == dev)
            return true;
        h = (h + 1) & (l->cap - 1);
    }
    l->slots[h].dev = dev;
    l->slots[h].ino = ino;
    l->n++;
    return false;
}

struct du_level {
    DIR *d; /* NULL while closed to stay within max_open */
    long pos;
    dev_t dev;
    ino_t ino;
    char name[256];
};

struct du_walk {
    const char *root;
    struct du_level *lv;
    size_t depth, cap; /* lv[0..depth] are in use */
    size_t open, max_open;
    dev_t root_dev;
    struct links links;
    struct stats_du *out;
};

static void account(struct du_walk *w, const struct stat *st)
{
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && links_seen(&w->links, st->st_dev, st->st_ino))
        return;
    w->out->inodes++;
    w->out->bytes += (uint64_t)st->st_blocks * 512;
}

/* Opens a directory of the walk by name relative to `parent_fd`, checking it
 * is the one seen before (same device and inode). */
static DIR *open_dir_at(int parent_fd, const char *name, dev_t dev, ino_t ino)
{
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != dev || st.st_ino != ino) {
        close(fd);
        return NULL;
    }
    DIR *d = fdopendir(fd);
    if (!d)
        close(fd);
    return d;
}

/* Closes the shallowest open level (never the current one) so a new one can
 * be opened. */
static void spill(struct du_walk *w)
{
    for (size_t i = 0; i < w->depth; i++) {
        if (!w->lv[i].d)
            continue;
        w->lv[i].pos = telldir(w->lv[i].d);
        closedir(w->lv[i].d);
        w->lv[i].d = NULL;
        w->open--;
        return;
    }
}

/* Opens level `k` again: from the root by name down to it, closing the
 * helpers on the way; then back to where its reading stopped. */
static int reopen(struct du_walk *w, size_t k)
{
    int fd = open(w->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != w->lv[0].dev || st.st_ino != w->lv[0].ino) {
        close(fd);
        return -ESTALE;
    }
    for (size_t i = 1; i <= k; i++) {
        int nfd = openat(fd, w->lv[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (nfd < 0)
            return -errno;
        if (fstat(nfd, &st) < 0 || st.st_dev != w->lv[i].dev || st.st_ino != w->lv[i].ino) {
            close(nfd);
            return -ESTALE;
        }
        fd = nfd;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    seekdir(d, w->lv[k].pos);
    w->lv[k].d = d;
    w->open++;
    return 0;
}

static int push(struct du_walk *w, const char *name, const struct stat *st)
{
    if (w->depth + 1 >= STATS_DU_MAX_DEPTH) {
        w->out->truncated = true;
        return 0;
    }
    if (w->depth + 1 >= w->cap) {
        size_t ncap = w->cap * 2;
        struct du_level *n = realloc(w->lv, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        w->lv = n;
        w->cap = ncap;
    }
    if (w->open >= w->max_open)
        spill(w);
    DIR *d = open_dir_at(dirfd(w->lv[w->depth].d), name, st->st_dev, st->st_ino);
    if (!d)
        return 0; /* gone or replaced meanwhile: its own inode was counted */
    struct du_level *l = &w->lv[++w->depth];
    memset(l, 0, sizeof(*l));
    l->d = d;
    l->dev = st->st_dev;
    l->ino = st->st_ino;
    snprintf(l->name, sizeof(l->name), "%s", name);
    w->open++;
    return 0;
}

int stats_dir_usage(const char *path, unsigned max_open, struct stats_du *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    struct du_walk w = {.root = path, .max_open = max_open < 2 ? 2 : max_open, .out = out, .cap = 16};
    w.lv = calloc(w.cap, sizeof(*w.lv));
    if (!w.lv)
        return err_sys(err, ENOMEM, "measuring %s", path);
    int r = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !(w.lv[0].d = fdopendir(fd))) {
        r = err_sys(err, errno, "measuring %s", path);
        if (fd >= 0)
            close(fd);
        goto out;
    }
    w.lv[0].dev = w.root_dev = st.st_dev;
    w.lv[0].ino = st.st_ino;
    w.open = 1;
    account(&w, &st);
    for (;;) {
        struct du_level *l = &w.lv[w.depth];
        if (!l->d && (r = reopen(&w, w.depth)) < 0) {
            err_sys(err, -r, "measuring %s: a directory %zu levels down moved during the walk", path, w.depth);
            goto out;
        }
        errno = 0;
        struct dirent *de = readdir(l->d);
        if (!de) {
            if (errno) {
                r = err_sys(err, errno, "measuring %s: reading a directory %zu levels down", path, w.depth);
                goto out;
            }
            closedir(l->d);
            l->d = NULL;
            w.open--;
            if (w.depth == 0)
                break;
            w.depth--;
            continue;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(l->d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed meanwhile */
        if (st.st_dev != w.root_dev)
            continue; /* a mount point inside: not ours to count */
        account(&w, &st);
        if (S_ISDIR(st.st_mode) && (r = push(&w, de->d_name, &st)) < 0) {
            err_sys(err, -r, "measuring %s", path);
            goto out;
        }
    }
out:
    for (size_t i = 0; i <= w.depth && i < w.cap; i++)
        if (w.lv[i].d)
            closedir(w.lv[i].d);
    free(w.lv);
    free(w.links.slots);
    return r;
}

/* ---- rates ------------------------------------------------------------------------ */

bool stats_rate_update(struct stats_rate *r, int64_t now_ns, uint64_t usage_ns, int64_t min_window_ns,
                       uint64_t *nano_cores)
{
    if (!r->have_base || usage_ns < r->base_usage || now_ns < r->base_ns) {
        /* first sample, or the counter went back (a cgroup made anew) */
        r->have_base = true;
        r->have_rate = false;
        r->base_ns = now_ns;
        r->base_usage = usage_ns;
        return false;
    }
    int64_t dt = now_ns - r->base_ns;
    if (dt >= min_window_ns && dt > 0) {
        uint64_t du = usage_ns - r->base_usage;
        /* du * 1e9 / dt without overflow: du is at most cores * dt. */
        long double rate = (long double)du * 1e9L / (long double)dt;
        r->rate = rate >= (long double)UINT64_MAX ? UINT64_MAX : (uint64_t)rate;
        r->have_rate = true;
        r->base_ns = now_ns;
        r->base_usage = usage_ns;
    }
    if (r->have_rate)
        *nano_cores = r->rate;
    return r->have_rate;
}
