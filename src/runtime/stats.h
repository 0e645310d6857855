/* Resource usage as the kernel reports it: cgroup interface files (v1 and
 * v2), /proc/net/dev of a network namespace, and the disk usage of a
 * directory tree (a container's writable layer).
 *
 * Everything here is blocking file-system work meant for a pool thread; the
 * parsers take the text of a file and treat it as hostile (a cgroup file can
 * be garbled by an old kernel, /proc/<pid>/net/dev belongs to a process
 * that may be anyone's by the time it is read). Nothing here keeps state:
 * rates and caches live in runtime/stats_collector. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct cgroup_manager;

/* A limit file saying "max" (v2), or a v1 limit so large it means none. */
#define STATS_UNLIMITED UINT64_MAX

/* ---- parsers of file contents ------------------------------------------- */

/* A file holding one unsigned decimal (or "max", giving STATS_UNLIMITED),
 * optionally followed by a newline. -EINVAL for anything else. */
int stats_parse_value(const char *text, uint64_t *out);

/* The value of `key` in a flat-keyed file ("key value" lines: cpu.stat,
 * memory.stat, memory.events…). -ENOENT when absent, -EINVAL when the line
 * is there but its value is not a plain unsigned decimal. */
int stats_parse_keyed(const char *text, const char *key, uint64_t *out);

/* One line of a *.pressure file. Totals are microseconds, as in the file. */
struct stats_psi_line {
    bool set;
    double avg10, avg60, avg300;
    uint64_t total_us;
};
struct stats_psi {
    struct stats_psi_line some, full;
};
/* "some avg10=… avg60=… avg300=… total=…" and the "full" line; a missing
 * or broken line is left unset. Returns 0 when at least one line parsed. */
int stats_parse_psi(const char *text, struct stats_psi *out);

#define STATS_IFNAME_MAX 16 /* IFNAMSIZ */
#define STATS_MAX_IFACES 64 /* more than any pod needs; the rest is dropped */

struct stats_iface {
    char name[STATS_IFNAME_MAX];
    uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
};
struct stats_net {
    struct stats_iface ifaces[STATS_MAX_IFACES];
    size_t n;
};
/* /proc/net/dev: two header lines, then "name: 16 counters" per interface.
 * Malformed lines are skipped; "lo" is left out (a pod's loopback is not
 * its network use, as in cAdvisor). */
int stats_parse_netdev(const char *text, struct stats_net *out);

/* ---- cgroups ------------------------------------------------------------- */

struct stats_cpu {
    bool valid;
    uint64_t usage_ns, user_ns, system_ns; /* user and system: v2, or v1 with STATS_READ_FULL */
    bool has_throttling;
    uint64_t periods, throttled_periods, throttled_ns;
    bool has_psi;
    struct stats_psi psi;
};

struct stats_memory {
    bool valid;
    uint64_t usage, working_set, rss, cache, mapped_file;
    uint64_t page_faults, major_page_faults;         /* hierarchical */
    uint64_t own_page_faults, own_major_page_faults; /* this cgroup only (v1); = hierarchical on v2 */
    uint64_t limit;                                  /* STATS_UNLIMITED when none */
    bool has_max_usage, has_failcnt, has_oom;
    uint64_t max_usage, failcnt, oom_kills;
    bool has_swap;
    uint64_t swap_usage, swap_limit; /* swap_limit: STATS_UNLIMITED when none */
    bool has_psi;
    struct stats_psi psi;
};

struct stats_pids {
    bool valid;
    uint64_t current, limit; /* limit: STATS_UNLIMITED for "max" */
};

/* What the cgroup's own limits say (the effective values, whatever set
 * them), for the container_spec_* metrics. */
struct stats_spec {
    bool has_quota, has_period, has_shares;
    uint64_t cpu_quota_us, cpu_period_us, cpu_shares;
};

struct stats_cgroup {
    struct stats_cpu cpu;
    struct stats_memory memory;
    struct stats_pids pids;
    bool has_io_psi;
    struct stats_psi io_psi;
    struct stats_spec spec;
};

/* Which files to read beyond CPU usage, memory and swap: every read of a
 * cgroup file costs tens of microseconds of kernel time, and kubelet polls.
 * FULL: everything the metrics show (user/system split, throttling, limits,
 * OOM kills, peaks, process count and limit); PIDS: the process count,
 * which the CRI reports for pods only. */
#define STATS_READ_FULL 1u
#define STATS_READ_PIDS 2u
/* The node has no swap (sysinfo): report none used without reading. */
#define STATS_SWAP_OFF 4u

/* Reads the usage of one cgroup (blocking). Each group (cpu, memory, pids)
 * is valid only if its files were there and parsed: a cgroup that is gone
 * gives -ENOENT, a controller that is not mounted or not enabled leaves its
 * group invalid. v1: cpuacct, cpu, memory and pids hierarchies; v2: the
 * unified files, including PSI. */
int stats_read_cgroup(struct cgroup_manager *m, const char *path, unsigned flags, struct stats_cgroup *out);

/* v1's memory.stat and the usage → the derived numbers kubelet wants
 * (working set = usage - total_inactive_file…). Exposed for the tests. */
int stats_memory_from_v1(const char *memory_stat, uint64_t usage, struct stats_memory *out);
int stats_memory_from_v2(const char *memory_stat, uint64_t usage, struct stats_memory *out);

/* cpu.weight (1..10000) back to the cpu.shares kubelet set (2..262144), the
 * inverse of the conversion cgroup.c writes. */
uint64_t stats_weight_to_shares(uint64_t weight);

/* ---- network namespaces --------------------------------------------------- */

/* The interfaces of the network namespace mounted at `netns_path`.
 * Cheapest first: /proc/<pid>/net/dev of one of `pids` (candidates believed
 * to live in that namespace, checked by inode before reading, so a reused
 * pid is never believed); when none qualifies, a short-lived thread setns()
 * into the namespace and reads /proc/thread-self/net/dev, so no thread of
 * the pool ever changes namespace. */
int stats_read_netns(const char *netns_path, const pid_t *pids, size_t n_pids, struct stats_net *out, err_t *err);

/* ---- disk usage ---------------------------------------------------------- */

struct stats_du {
    uint64_t bytes;  /* allocated (st_blocks * 512), as du counts */
    uint64_t inodes; /* every entry, the root included; a hard-linked file once */
    bool truncated;  /* deeper than STATS_DU_MAX_DEPTH: not all counted */
};

#define STATS_DU_MAX_DEPTH 4096

/* Walks the tree at `path` (blocking), never following a symlink nor
 * crossing into another file system. At most `max_open` directories are
 * open at once however deep the tree (a container may nest thousands of
 * levels): deeper, the shallowest are closed and found again by name when
 * the walk comes back up. A tree changing underneath is counted as well as
 * it can be; an entry that vanished is skipped. */
int stats_dir_usage(const char *path, unsigned max_open, struct stats_du *out, err_t *err);

/* ---- rates ----------------------------------------------------------------- */

/* Usage in nanocores between two samples of a cumulative CPU counter. The
 * baseline moves only when at least `min_window_ns` have passed, so several
 * clients polling at once (kubelet's summary, its eviction manager, a
 * metrics scrape) all get a rate over a meaningful window instead of over
 * the milliseconds between their calls. */
struct stats_rate {
    bool have_base, have_rate;
    int64_t base_ns; /* monotonic */
    uint64_t base_usage;
    uint64_t rate;
};
#define STATS_RATE_MIN_WINDOW_NS (1000LL * 1000 * 1000)
/* Returns true and sets *nano_cores when a rate is known. */
bool stats_rate_update(struct stats_rate *r, int64_t now_ns, uint64_t usage_ns, int64_t min_window_ns,
                       uint64_t *nano_cores);
