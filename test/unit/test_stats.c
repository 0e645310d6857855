/* Stats readers: the parsers on real and hostile file contents, the cgroup
 * reader over fake v1 and v2 trees, the netns reader on this process's own
 * namespace (both ways: by pid and by a thread that enters it), the du-like
 * walk (hard links, symlinks, a tree deeper than the directories it may
 * hold open), and the CPU rate. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "runtime/stats.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "unit.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *make_tmp(void)
{
    char *d = strdup("/tmp/edgecri-test-stats-XXXXXX");
    if (!d || !mkdtemp(d))
        abort();
    return d;
}

static void remove_tmp(char *d)
{
    err_t err = ERR_INIT;
    if (fs_remove_tree(d, &err) < 0)
        UNIT_FAIL("removing %s: %s", d, err.msg);
    err_clear(&err);
    free(d);
}

/* Writes root/rel, creating its directories. */
static void put(const char *root, const char *rel, const char *content)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    err_t err = ERR_INIT;
    if (fs_mkdir_p(p, 0755, &err) < 0)
        UNIT_FAIL("mkdir %s: %s", p, err.msg);
    err_clear(&err);
    *slash = '/';
    FILE *f = fopen(p, "w");
    if (!f) {
        UNIT_FAIL("creating %s: %s", p, strerror(errno));
        return;
    }
    fputs(content, f);
    fclose(f);
}

static struct cgroup_manager *manager(enum cgroup_version v, const char *root)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    CHECK_MSG(cgroup_manager_new_at(v, root, CGROUP_DRIVER_KIND_CGROUPFS, &m, &err) == 0, "manager: %s",
              err.msg ? err.msg : "");
    err_clear(&err);
    if (!m)
        abort();
    return m;
}

/* ---- value and keyed files ---------------------------------------------------- */

static void test_parse_value(void)
{
    uint64_t v = 7;
    CHECK_OK(stats_parse_value("123\n", &v));
    CHECK_EQ_U64(v, 123);
    CHECK_OK(stats_parse_value("0", &v));
    CHECK_EQ_U64(v, 0);
    CHECK_OK(stats_parse_value("max\n", &v));
    CHECK(v == STATS_UNLIMITED);
    CHECK_OK(stats_parse_value("18446744073709551615\n", &v));
    CHECK(v == UINT64_MAX);
    v = 7;
    static const char *const bad[] = {"",
                                      "\n",
                                      "-1\n",
                                      " 12\n",
                                      "12 \n",
                                      "12\n\n",
                                      "1x",
                                      "max1",
                                      "maxx",
                                      "0x10",
                                      "+5",
                                      "1.5\n",
                                      "18446744073709551616\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK_MSG(stats_parse_value(bad[i], &v) == -EINVAL, "\"%s\" was accepted", bad[i]);
    CHECK_EQ_U64(v, 7);
    CHECK(stats_parse_value(NULL, &v) == -EINVAL);
}

static const char V1_MEMORY_STAT[] = "cache 9302016\n"
                                     "rss 7102464\n"
                                     "rss_huge 0\n"
                                     "shmem 9097216\n"
                                     "mapped_file 7675904\n"
                                     "pgfault 197956\n"
                                     "pgmajfault 3\n"
                                     "inactive_anon 0\n"
                                     "active_anon 1531904\n"
                                     "inactive_file 1000\n"
                                     "active_file 204800\n"
                                     "hierarchical_memory_limit 9223372036854771712\n"
                                     "total_cache 698122240\n"
                                     "total_rss 67272704\n"
                                     "total_rss_huge 0\n"
                                     "total_mapped_file 43282432\n"
                                     "total_pgfault 67853047\n"
                                     "total_pgmajfault 6814\n"
                                     "total_inactive_file 355368960\n";

static void test_parse_keyed(void)
{
    uint64_t v = 0;
    CHECK_OK(stats_parse_keyed(V1_MEMORY_STAT, "rss", &v));
    CHECK_EQ_U64(v, 7102464);
    /* a key is a whole word: "rss" is not "rss_huge", "total_rss" is not
     * "total_rss_huge" */
    CHECK_OK(stats_parse_keyed(V1_MEMORY_STAT, "total_rss", &v));
    CHECK_EQ_U64(v, 67272704);
    CHECK_OK(stats_parse_keyed(V1_MEMORY_STAT, "total_inactive_file", &v));
    CHECK_EQ_U64(v, 355368960);
    CHECK(stats_parse_keyed(V1_MEMORY_STAT, "total", &v) == -ENOENT);
    CHECK(stats_parse_keyed(V1_MEMORY_STAT, "swap", &v) == -ENOENT);
    CHECK(stats_parse_keyed(V1_MEMORY_STAT, "", &v) == -EINVAL);
    /* last line without a newline; first of two duplicates */
    CHECK_OK(stats_parse_keyed("a 1\nb 2", "b", &v));
    CHECK_EQ_U64(v, 2);
    CHECK_OK(stats_parse_keyed("a 1\na 2\n", "a", &v));
    CHECK_EQ_U64(v, 1);
    /* garbled values are errors, not zeros */
    static const char *const bad[] = {"rss abc\n", "rss -5\n", "rss 5 6\n", "rss 99999999999999999999\n",
                                      "rss \n",    "rss 5x\n", "rss  5\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK_MSG(stats_parse_keyed(bad[i], "rss", &v) == -EINVAL, "\"%s\" was accepted", bad[i]);
    /* a key with no value at all is another key */
    CHECK(stats_parse_keyed("rss\n", "rss", &v) == -ENOENT);
    CHECK(stats_parse_keyed("", "rss", &v) == -ENOENT);
}

static void test_parse_psi(void)
{
    struct stats_psi p;
    CHECK_OK(stats_parse_psi("some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n"
                             "full avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
                             &p));
    CHECK(p.some.set && p.full.set);
    CHECK(p.some.avg10 > 1.49 && p.some.avg10 < 1.51);
    CHECK(p.some.avg60 > 0.24 && p.some.avg60 < 0.26);
    CHECK_EQ_U64(p.some.total_us, 123456);
    CHECK_EQ_U64(p.full.total_us, 42);
    /* cpu.pressure of old kernels has only "some" */
    CHECK_OK(stats_parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n", &p));
    CHECK(p.some.set && !p.full.set);
    /* one bad line leaves that line unset */
    CHECK_OK(stats_parse_psi("some avg10=x avg60=0.00 avg300=0.00 total=5\n"
                             "full avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
                             &p));
    CHECK(!p.some.set && p.full.set);
    static const char *const bad[] = {
        "",
        "garbage\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00\n",                 /* no total */
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",        /* negative */
        "some avg10=-1.0 avg60=0.00 avg300=0.00 total=1\n",         /* negative */
        "some avg10=nan avg60=0.00 avg300=0.00 total=1\n",          /* not a number */
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1 extra=1\n", /* unknown field */
        "some avg10=1e999 avg60=0.00 avg300=0.00 total=1\n",        /* absurd */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK_MSG(stats_parse_psi(bad[i], &p) == -EINVAL, "\"%s\" was accepted", bad[i]);
    char longline[600];
    memset(longline, 'a', sizeof(longline) - 1);
    memcpy(longline, "some ", 5);
    longline[sizeof(longline) - 1] = '\0';
    CHECK(stats_parse_psi(longline, &p) == -EINVAL);
}

static const char NETDEV[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
    "carrier compressed\n"
    "    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       "
    "0          0\n"
    "  eth0: 5678901    4321    2    3    0     0          0         7  1234567    2345    4    5    0     0       "
    "0          0\n"
    "  net1:       1       2    3    4    5     6          7         8        9      10   11   12   13    14      "
    "15         16\n";

static void test_parse_netdev(void)
{
    struct stats_net n;
    CHECK_OK(stats_parse_netdev(NETDEV, &n));
    CHECK_EQ_INT(n.n, 2); /* lo left out */
    CHECK_STREQ(n.ifaces[0].name, "eth0");
    CHECK_EQ_U64(n.ifaces[0].rx_bytes, 5678901);
    CHECK_EQ_U64(n.ifaces[0].rx_packets, 4321);
    CHECK_EQ_U64(n.ifaces[0].rx_errors, 2);
    CHECK_EQ_U64(n.ifaces[0].rx_dropped, 3);
    CHECK_EQ_U64(n.ifaces[0].tx_bytes, 1234567);
    CHECK_EQ_U64(n.ifaces[0].tx_packets, 2345);
    CHECK_EQ_U64(n.ifaces[0].tx_errors, 4);
    CHECK_EQ_U64(n.ifaces[0].tx_dropped, 5);
    CHECK_STREQ(n.ifaces[1].name, "net1");
    CHECK_EQ_U64(n.ifaces[1].tx_bytes, 9);
    CHECK_EQ_U64(n.ifaces[1].tx_dropped, 12);

    /* hostile lines are skipped, the good ones kept */
    char buf[8192];
    snprintf(buf, sizeof(buf),
             "%.*s"
             "  bad1: 1 2 3\n"                                     /* too few counters */
             "  bad2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n" /* too many */
             "  bad3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -16\n"   /* negative */
             "waytoolonginterfacename: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
             "  b d: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" /* space in name */
             ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"      /* no name */
             "  bad4 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" /* no colon */
             "  bad5: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 99999999999999999999\n"
             "  ok0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", /* no final newline */
             (int)(strstr(NETDEV, "    lo:") - NETDEV), NETDEV);
    CHECK_OK(stats_parse_netdev(buf, &n));
    CHECK_EQ_INT(n.n, 1);
    CHECK_STREQ(n.ifaces[0].name, "ok0");
    CHECK_EQ_U64(n.ifaces[0].tx_bytes, 9);

    /* no header: not /proc/net/dev */
    CHECK(stats_parse_netdev("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", &n) == -EINVAL);
    CHECK(stats_parse_netdev("", &n) == -EINVAL);
    CHECK(stats_parse_netdev(NULL, &n) == -EINVAL);

    /* more interfaces than kept: bounded */
    size_t len = 0, cap = 200 * 128;
    char *many = malloc(cap);
    len += (size_t)snprintf(many, cap, "h|\nh|\n");
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(many + len, cap - len, "if%d: %d 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", i, i);
    CHECK_OK(stats_parse_netdev(many, &n));
    CHECK_EQ_INT(n.n, STATS_MAX_IFACES);
    CHECK_STREQ(n.ifaces[STATS_MAX_IFACES - 1].name, "if63");
    free(many);
}

/* ---- memory derivations ----------------------------------------------------------- */

static void test_memory_v1(void)
{
    struct stats_memory m = {0};
    CHECK_OK(stats_memory_from_v1(V1_MEMORY_STAT, 400000000, &m));
    CHECK_EQ_U64(m.usage, 400000000);
    CHECK_EQ_U64(m.working_set, 400000000 - 355368960);
    CHECK_EQ_U64(m.rss, 67272704);
    CHECK_EQ_U64(m.cache, 698122240);
    CHECK_EQ_U64(m.mapped_file, 43282432);
    CHECK_EQ_U64(m.page_faults, 67853047);
    CHECK_EQ_U64(m.major_page_faults, 6814);
    CHECK_EQ_U64(m.own_page_faults, 197956);
    CHECK_EQ_U64(m.own_major_page_faults, 3);
    /* inactive file above the usage (racy reads): no negative working set */
    CHECK_OK(stats_memory_from_v1(V1_MEMORY_STAT, 1000, &m));
    CHECK_EQ_U64(m.working_set, 0);
    /* without the total_ keys (a kernel without hierarchy) */
    CHECK_OK(stats_memory_from_v1("rss 10\ninactive_file 4\npgfault 3\n", 100, &m));
    CHECK_EQ_U64(m.rss, 10);
    CHECK_EQ_U64(m.working_set, 96);
    CHECK_EQ_U64(m.page_faults, 3);
    CHECK(stats_memory_from_v1("total_rss 1x\n", 100, &m) == -EINVAL);
    CHECK(stats_memory_from_v1("total_inactive_file -3\n", 100, &m) == -EINVAL);
}

static void test_memory_v2(void)
{
    static const char st[] = "anon 1048576\nfile 4194304\nkernel 8192\nfile_mapped 65536\n"
                             "inactive_anon 0\nactive_anon 1048576\ninactive_file 3145728\nactive_file 1048576\n"
                             "pgfault 2000\npgmajfault 5\n";
    struct stats_memory m = {0};
    CHECK_OK(stats_memory_from_v2(st, 6000000, &m));
    CHECK_EQ_U64(m.working_set, 6000000 - 3145728);
    CHECK_EQ_U64(m.rss, 1048576);
    CHECK_EQ_U64(m.cache, 4194304);
    CHECK_EQ_U64(m.mapped_file, 65536);
    CHECK_EQ_U64(m.page_faults, 2000);
    CHECK_EQ_U64(m.major_page_faults, 5);
    CHECK_EQ_U64(m.own_page_faults, 2000);
    CHECK(stats_memory_from_v2("anon 12 34\n", 1, &m) == -EINVAL);
}

static void test_weight_to_shares(void)
{
    CHECK_EQ_U64(stats_weight_to_shares(1), 2);
    CHECK_EQ_U64(stats_weight_to_shares(10000), 262144);
    CHECK_EQ_U64(stats_weight_to_shares(0), 2);
    CHECK_EQ_U64(stats_weight_to_shares(99999), 262144);
    /* kubelet's 1024 shares → weight 39 (cgroup.c) → back near 1024 */
    uint64_t s = stats_weight_to_shares(39);
    CHECK_MSG(s > 990 && s < 1030, "weight 39 → %llu shares", (unsigned long long)s);
}

/* ---- cgroup trees ----------------------------------------------------------------------- */

static void v1_files(const char *root, const char *cg)
{
    static const char *const files[][3] = {
        {"cpu", "cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 5000000000\n"},
        {"cpu", "cpu.cfs_quota_us", "50000\n"},
        {"cpu", "cpu.cfs_period_us", "100000\n"},
        {"cpu", "cpu.shares", "512\n"},
        {"cpuacct", "cpuacct.usage", "123456789012\n"},
        {"cpuacct", "cpuacct.usage_user", "100000000000\n"},
        {"cpuacct", "cpuacct.usage_sys", "23456789012\n"},
        {"memory", "memory.usage_in_bytes", "400000000\n"},
        {"memory", "memory.limit_in_bytes", "536870912\n"},
        {"memory", "memory.max_usage_in_bytes", "450000000\n"},
        {"memory", "memory.failcnt", "7\n"},
        {"memory", "memory.memsw.usage_in_bytes", "410000000\n"},
        {"memory", "memory.memsw.limit_in_bytes", "1073741824\n"},
        {"memory", "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
        {"pids", "pids.current", "3\n"},
        {"pids", "pids.max", "max\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char rel[512];
        snprintf(rel, sizeof(rel), "%s%s/%s", files[i][0], cg, files[i][1]);
        put(root, rel, files[i][2]);
    }
    char rel[512];
    snprintf(rel, sizeof(rel), "memory%s/memory.stat", cg);
    put(root, rel, V1_MEMORY_STAT);
}

static void test_cgroup_v1(void)
{
    char *root = make_tmp();
    v1_files(root, "/pod/ctr");
    struct cgroup_manager *m = manager(CGROUP_V1, root);
    struct stats_cgroup s;
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    CHECK(s.cpu.valid && s.memory.valid && s.pids.valid);
    CHECK_EQ_U64(s.cpu.usage_ns, 123456789012ULL);
    CHECK_EQ_U64(s.cpu.user_ns, 100000000000ULL);
    CHECK_EQ_U64(s.cpu.system_ns, 23456789012ULL);
    CHECK(s.cpu.has_throttling);
    CHECK_EQ_U64(s.cpu.throttled_ns, 5000000000ULL);
    CHECK_EQ_U64(s.cpu.throttled_periods, 2);
    CHECK(!s.cpu.has_psi && !s.memory.has_psi && !s.has_io_psi);
    CHECK_EQ_U64(s.memory.usage, 400000000);
    CHECK_EQ_U64(s.memory.working_set, 400000000 - 355368960);
    CHECK_EQ_U64(s.memory.limit, 536870912);
    CHECK(s.memory.has_swap);
    CHECK_EQ_U64(s.memory.swap_usage, 10000000);
    CHECK_EQ_U64(s.memory.swap_limit, 1073741824 - 536870912);
    CHECK(s.memory.has_max_usage && s.memory.max_usage == 450000000);
    CHECK(s.memory.has_failcnt && s.memory.failcnt == 7);
    CHECK(s.memory.has_oom && s.memory.oom_kills == 2);
    CHECK_EQ_U64(s.pids.current, 3);
    CHECK(s.pids.limit == STATS_UNLIMITED);
    CHECK(s.spec.has_quota && s.spec.cpu_quota_us == 50000);
    CHECK(s.spec.has_period && s.spec.cpu_period_us == 100000);
    CHECK(s.spec.has_shares && s.spec.cpu_shares == 512);

    /* without STATS_READ_FULL the metrics-only files are not read */
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", 0, &s));
    CHECK(!s.cpu.has_throttling && !s.memory.has_oom && !s.memory.has_failcnt && !s.spec.has_quota);
    CHECK(s.cpu.valid && s.cpu.user_ns == 0 && !s.pids.valid);
    CHECK_EQ_U64(s.memory.swap_usage, 10000000);
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_PIDS, &s));
    CHECK(s.pids.valid && s.pids.current == 3 && s.pids.limit == STATS_UNLIMITED);
    /* no swap on the node: none used, whatever the (unread) files say */
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_SWAP_OFF, &s));
    CHECK(s.memory.has_swap && s.memory.swap_usage == 0 && s.memory.swap_limit == STATS_UNLIMITED);
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_SWAP_OFF | STATS_READ_FULL, &s));
    CHECK_EQ_U64(s.memory.swap_usage, 10000000);

    /* no limit (the kernel's rounded INT64_MAX), no quota (-1) */
    put(root, "memory/pod/ctr/memory.limit_in_bytes", "9223372036854771712\n");
    put(root, "memory/pod/ctr/memory.memsw.limit_in_bytes", "9223372036854771712\n");
    put(root, "cpu/pod/ctr/cpu.cfs_quota_us", "-1\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    CHECK(s.memory.limit == STATS_UNLIMITED && s.memory.swap_limit == STATS_UNLIMITED);
    CHECK(!s.spec.has_quota);

    /* cpuacct.stat in ticks when the ns files are missing */
    char p[4096];
    snprintf(p, sizeof(p), "%s/cpuacct/pod/ctr/cpuacct.usage_user", root);
    unlink(p);
    put(root, "cpuacct/pod/ctr/cpuacct.stat", "user 250\nsystem 50\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    long hz = sysconf(_SC_CLK_TCK);
    CHECK_EQ_U64(s.cpu.user_ns, 250ULL * 1000000000ULL / (uint64_t)hz);
    CHECK_EQ_U64(s.cpu.system_ns, 50ULL * 1000000000ULL / (uint64_t)hz);

    /* a garbled memory.stat: memory unknown, the rest still read */
    put(root, "memory/pod/ctr/memory.stat", "total_rss lots\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_PIDS, &s));
    CHECK(!s.memory.valid && s.cpu.valid && s.pids.valid);
    /* garbage usage files */
    put(root, "cpuacct/pod/ctr/cpuacct.usage", "\x01\x02\xff");
    put(root, "pids/pod/ctr/pids.current", "-3\n");
    CHECK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_PIDS, &s) == -EINVAL);
    CHECK(!s.cpu.valid && !s.memory.valid && !s.pids.valid);
    /* a NUL inside a file */
    snprintf(p, sizeof(p), "%s/cpuacct/pod/ctr/cpuacct.usage", root);
    int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
    CHECK(fd >= 0 && write(fd,
                           "12\0"
                           "34\n",
                           6) == 6);
    close(fd);
    CHECK(stats_read_cgroup(m, "/pod/ctr", 0, &s) == -EINVAL);
    /* a file too big to be a cgroup file */
    char *huge = malloc(64 * 1024);
    memset(huge, '1', 64 * 1024 - 1);
    huge[64 * 1024 - 1] = '\0';
    put(root, "memory/pod/ctr/memory.stat", huge);
    free(huge);
    put(root, "cpuacct/pod/ctr/cpuacct.usage", "5\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", 0, &s));
    CHECK(!s.memory.valid && s.cpu.valid);

    /* a cgroup that is gone; a hostile path */
    CHECK(stats_read_cgroup(m, "/pod/gone", 0, &s) == -ENOENT);
    CHECK(stats_read_cgroup(m, "/pod/../../etc", 0, &s) < 0);
    cgroup_manager_free(m);
    remove_tmp(root);
}

static void test_cgroup_v2(void)
{
    char *root = make_tmp();
    static const char *const files[][2] = {
        {"cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 4\n"
                     "throttled_usec 300000\n"},
        {"cpu.max", "25000 100000\n"},
        {"cpu.weight", "39\n"},
        {"cpu.pressure", "some avg10=2.00 avg60=1.00 avg300=0.50 total=777\nfull avg10=0.00 avg60=0.00 "
                         "avg300=0.00 total=11\n"},
        {"memory.current", "6000000\n"},
        {"memory.stat", "anon 1048576\nfile 4194304\nfile_mapped 65536\ninactive_file 3145728\npgfault 2000\n"
                        "pgmajfault 5\n"},
        {"memory.max", "8388608\n"},
        {"memory.peak", "7000000\n"},
        {"memory.swap.current", "4096\n"},
        {"memory.swap.max", "max\n"},
        {"memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"},
        {"memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"
                            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
        {"io.pressure", "some avg10=0.10 avg60=0.00 avg300=0.00 total=3\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=2\n"},
        {"pids.current", "2\n"},
        {"pids.max", "100\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "pod/ctr/%s", files[i][0]);
        put(root, rel, files[i][1]);
    }
    struct cgroup_manager *m = manager(CGROUP_V2, root);
    struct stats_cgroup s;
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    CHECK(s.cpu.valid && s.memory.valid && s.pids.valid);
    CHECK_EQ_U64(s.cpu.usage_ns, 2500000000ULL);
    CHECK_EQ_U64(s.cpu.user_ns, 2000000000ULL);
    CHECK_EQ_U64(s.cpu.system_ns, 500000000ULL);
    CHECK(s.cpu.has_throttling && s.cpu.throttled_ns == 300000000ULL && s.cpu.periods == 40);
    CHECK(s.cpu.has_psi && s.cpu.psi.some.total_us == 777 && s.cpu.psi.full.total_us == 11);
    CHECK_EQ_U64(s.memory.usage, 6000000);
    CHECK_EQ_U64(s.memory.working_set, 6000000 - 3145728);
    CHECK_EQ_U64(s.memory.rss, 1048576);
    CHECK_EQ_U64(s.memory.limit, 8388608);
    CHECK(s.memory.has_swap && s.memory.swap_usage == 4096 && s.memory.swap_limit == STATS_UNLIMITED);
    CHECK(s.memory.has_max_usage && s.memory.max_usage == 7000000);
    CHECK(s.memory.has_failcnt && s.memory.failcnt == 9);
    CHECK(s.memory.has_oom && s.memory.oom_kills == 1);
    CHECK(s.memory.has_psi && s.has_io_psi && s.io_psi.some.total_us == 3);
    CHECK_EQ_U64(s.pids.current, 2);
    CHECK_EQ_U64(s.pids.limit, 100);
    CHECK(s.spec.has_quota && s.spec.cpu_quota_us == 25000);
    CHECK(s.spec.has_period && s.spec.cpu_period_us == 100000);
    CHECK(s.spec.has_shares && s.spec.cpu_shares == stats_weight_to_shares(39));

    /* no limits; a cpu.stat without the cpu controller (no nr_periods) */
    put(root, "pod/ctr/memory.max", "max\n");
    put(root, "pod/ctr/cpu.max", "max 100000\n");
    put(root, "pod/ctr/cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    CHECK(s.memory.limit == STATS_UNLIMITED);
    CHECK(!s.spec.has_quota && s.spec.has_period);
    CHECK(!s.cpu.has_throttling && s.cpu.usage_ns == 10000);

    /* garbled: a cpu.stat overflowing in ns, a cpu.max that is nonsense */
    put(root, "pod/ctr/cpu.stat", "usage_usec 18446744073709551615\n");
    put(root, "pod/ctr/cpu.max", "lots of cpu\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", STATS_READ_FULL, &s));
    CHECK(!s.cpu.valid && !s.spec.has_quota && !s.spec.has_period && s.memory.valid);
    put(root, "pod/ctr/cpu.stat", "user_usec 1\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", 0, &s));
    CHECK(!s.cpu.valid);
    put(root, "pod/ctr/cpu.pressure", "some total=1\n");
    CHECK_OK(stats_read_cgroup(m, "/pod/ctr", 0, &s));
    CHECK(!s.cpu.has_psi);

    CHECK(stats_read_cgroup(m, "/nope", 0, &s) == -ENOENT);
    cgroup_manager_free(m);
    remove_tmp(root);
}

/* ---- network namespaces ------------------------------------------------------------------- */

static void test_netns(void)
{
    if (geteuid() != 0) {
        UNIT_FAIL("the netns test needs root (setns)");
        return;
    }
    /* our own namespace: by pid, then by a thread entering it */
    struct stats_net by_pid, by_thread;
    err_t err = ERR_INIT;
    pid_t self = getpid();
    CHECK_OK(stats_read_netns("/proc/self/ns/net", &self, 1, &by_pid, &err));
    CHECK_OK(stats_read_netns("/proc/self/ns/net", NULL, 0, &by_thread, &err));
    CHECK_EQ_INT(by_pid.n, by_thread.n);
    for (size_t i = 0; i < by_pid.n && i < by_thread.n; i++)
        CHECK_STREQ(by_pid.ifaces[i].name, by_thread.ifaces[i].name);
    /* a pid in another namespace is not believed: init's is the host's, so
     * only check that a dead pid falls back */
    pid_t gone[2] = {999999999, -1};
    CHECK_OK(stats_read_netns("/proc/self/ns/net", gone, 2, &by_thread, &err));
    CHECK_EQ_INT(by_pid.n, by_thread.n);
    /* not a namespace at all */
    CHECK(stats_read_netns("/etc/hostname", NULL, 0, &by_thread, &err) < 0);
    CHECK(err.msg != NULL);
    err_clear(&err);
    CHECK(stats_read_netns("/nonexistent/ns", NULL, 0, &by_thread, &err) < 0);
    CHECK_CONTAINS(err.msg, "/nonexistent/ns");
    err_clear(&err);
}

/* ---- disk usage ---------------------------------------------------------------------------- */

static uint64_t blocks_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static void test_dir_usage(void)
{
    char *root = make_tmp();
    char p[4096], q[4096 + 64];
    put(root, "a/b/file1", "hello");
    char *big = malloc(100000);
    memset(big, 'x', 99999);
    big[99999] = '\0';
    put(root, "a/big", big);
    free(big);
    snprintf(p, sizeof(p), "%s/a/big", root);
    snprintf(q, sizeof(q), "%s/a/b/hardlink", root);
    CHECK(link(p, q) == 0);
    snprintf(q, sizeof(q), "%s/a/symlink", root);
    CHECK(symlink("/usr", q) == 0); /* never followed */

    struct stats_du du;
    err_t err = ERR_INIT;
    CHECK_OK(stats_dir_usage(root, 16, &du, &err));
    /* root, a, a/b, file1, big (once for two links), symlink */
    CHECK_EQ_U64(du.inodes, 6);
    uint64_t want = 0;
    const char *rels[] = {"", "/a", "/a/b", "/a/b/file1", "/a/big", "/a/symlink"};
    for (size_t i = 0; i < ARRAY_SIZE(rels); i++) {
        snprintf(p, sizeof(p), "%s%s", root, rels[i]);
        want += blocks_of(p);
    }
    CHECK_EQ_U64(du.bytes, want);
    CHECK(du.bytes >= 100000);
    CHECK(!du.truncated);

    /* deeper than the directories the walk may hold open: 300 levels with
     * 3 open at most, files at several depths and siblings on the way back
     * up, so reopening must resume each directory where it stopped */
    size_t len = (size_t)snprintf(p, sizeof(p), "%s/deep", root);
    CHECK(mkdir(p, 0755) == 0);
    uint64_t deep_inodes = 1;
    for (int i = 0; i < 300; i++) {
        for (int k = 0; k < 3; k++) {
            snprintf(q, sizeof(q), "%s/f%d", p, k);
            int fd = open(q, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            CHECK(fd >= 0);
            close(fd);
            deep_inodes++;
        }
        len += (size_t)snprintf(p + len, sizeof(p) - len, "/d");
        if (len >= sizeof(p) - 8) {
            UNIT_FAIL("path too long");
            break;
        }
        CHECK(mkdir(p, 0755) == 0);
        deep_inodes++;
    }
    snprintf(p, sizeof(p), "%s/deep", root);
    struct stats_du few, many;
    CHECK_OK(stats_dir_usage(p, 3, &few, &err));
    CHECK_OK(stats_dir_usage(p, 1000, &many, &err));
    CHECK_EQ_U64(few.inodes, deep_inodes);
    CHECK_EQ_U64(many.inodes, deep_inodes);
    CHECK_EQ_U64(few.bytes, many.bytes);

    /* errors name the path */
    snprintf(p, sizeof(p), "%s/a/b/file1", root);
    CHECK(stats_dir_usage(p, 16, &du, &err) < 0);
    CHECK_CONTAINS(err.msg, "file1");
    err_clear(&err);
    CHECK(stats_dir_usage("/nonexistent-edgecri", 16, &du, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    remove_tmp(root);
}

/* ---- rates ---------------------------------------------------------------------------------- */

static void test_rate(void)
{
    struct stats_rate r = {0};
    uint64_t nc = 0;
    const int64_t S = 1000000000LL;
    CHECK(!stats_rate_update(&r, 10 * S, 1000, S, &nc));        /* first sample */
    CHECK(!stats_rate_update(&r, 10 * S + 5, 2000, S, &nc));    /* too soon, no rate yet */
    CHECK(stats_rate_update(&r, 12 * S, 1000 + 2 * S, S, &nc)); /* one core for 2 s */
    CHECK_EQ_U64(nc, 1000000000ULL);
    /* a second client right after gets the same rate, the baseline stays */
    nc = 0;
    CHECK(stats_rate_update(&r, 12 * S + 100, 1000 + 2 * S + 100, S, &nc));
    CHECK_EQ_U64(nc, 1000000000ULL);
    CHECK(stats_rate_update(&r, 14 * S, 1000 + 3 * S, S, &nc)); /* half a core */
    CHECK_EQ_U64(nc, 500000000ULL);
    /* the counter went back (a new cgroup): start over */
    CHECK(!stats_rate_update(&r, 15 * S, 10, S, &nc));
    CHECK(!stats_rate_update(&r, 15 * S + 1, 20, S, &nc));
    CHECK(stats_rate_update(&r, 17 * S, 10 + 4 * S, S, &nc));
    CHECK_EQ_U64(nc, 2000000000ULL);
    /* absurd values do not overflow */
    CHECK(stats_rate_update(&r, 100 * S, UINT64_MAX - 1, S, &nc));
    CHECK(nc > 0);
}

int main(void)
{
    RUN(test_parse_value);
    RUN(test_parse_keyed);
    RUN(test_parse_psi);
    RUN(test_parse_netdev);
    RUN(test_memory_v1);
    RUN(test_memory_v2);
    RUN(test_weight_to_shares);
    RUN(test_cgroup_v1);
    RUN(test_cgroup_v2);
    RUN(test_netns);
    RUN(test_dir_usage);
    RUN(test_rate);
    return unit_summary();
}
