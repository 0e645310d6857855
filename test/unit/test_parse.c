#include <errno.h>
#include <stdint.h>

#include "util/parse.h"
#include "unit.h"

#define SENTINEL 0x5a5a5a5aULL

typedef int (*parse_fn)(const char *, uint64_t *);

static void expect_val(parse_fn fn, const char *fn_name, const char *in, uint64_t want)
{
    uint64_t v = SENTINEL;
    int r = fn(in, &v);
    CHECK_MSG(r == 0, "%s(\"%s\") = %d, want 0", fn_name, in, r);
    CHECK_MSG(v == want, "%s(\"%s\") gave %llu, want %llu", fn_name, in, (unsigned long long)v,
              (unsigned long long)want);
}

/* Fails with `want_r` and leaves the output alone. */
static void expect_fail(parse_fn fn, const char *fn_name, const char *in, int want_r)
{
    uint64_t v = SENTINEL;
    int r = fn(in, &v);
    CHECK_MSG(r == want_r, "%s(\"%s\") = %d, want %d", fn_name, in ? in : "NULL", r, want_r);
    CHECK_MSG(v == SENTINEL, "%s(\"%s\") wrote %llu on failure", fn_name, in ? in : "NULL", (unsigned long long)v);
}

#define OK(fn, in, want)  expect_val(fn, #fn, in, want)
#define BAD(fn, in, want) expect_fail(fn, #fn, in, want)

static void test_parse_u64(void)
{
    OK(parse_u64, "0", 0);
    OK(parse_u64, "7", 7);
    OK(parse_u64, "007", 7);
    OK(parse_u64, "1234567890", 1234567890ULL);
    OK(parse_u64, "18446744073709551615", UINT64_MAX);
    OK(parse_u64, "18446744073709551610", UINT64_MAX - 5);
    BAD(parse_u64, "18446744073709551616", -ERANGE);
    BAD(parse_u64, "18446744073709551620", -ERANGE);
    BAD(parse_u64, "99999999999999999999", -ERANGE);
    BAD(parse_u64, "184467440737095516150", -ERANGE);
    BAD(parse_u64, "", -EINVAL);
    BAD(parse_u64, NULL, -EINVAL);
    BAD(parse_u64, "12a", -EINVAL);
    BAD(parse_u64, "a12", -EINVAL);
    BAD(parse_u64, "-1", -EINVAL);
    BAD(parse_u64, "+1", -EINVAL);
    BAD(parse_u64, " 1", -EINVAL);
    BAD(parse_u64, "1 ", -EINVAL);
    BAD(parse_u64, "1.0", -EINVAL);
    BAD(parse_u64, "0x10", -EINVAL);
}

static void test_parse_size(void)
{
    /* Every suffix of the table, in several cases. */
    OK(parse_size, "1048576", 1048576);
    OK(parse_size, "0", 0);
    OK(parse_size, "5b", 5);
    OK(parse_size, "5B", 5);
    OK(parse_size, "2k", 2048);
    OK(parse_size, "2K", 2048);
    OK(parse_size, "2Ki", 2048);
    OK(parse_size, "2ki", 2048);
    OK(parse_size, "512KiB", 512 * 1024);
    OK(parse_size, "512kib", 512 * 1024);
    OK(parse_size, "512KIB", 512 * 1024);
    OK(parse_size, "1kB", 1000);
    OK(parse_size, "1KB", 1000);
    OK(parse_size, "1kb", 1000);
    OK(parse_size, "3m", 3ULL << 20);
    OK(parse_size, "3M", 3ULL << 20);
    OK(parse_size, "3Mi", 3ULL << 20);
    OK(parse_size, "16MiB", 16777216);
    OK(parse_size, "16mib", 16777216);
    OK(parse_size, "16MIB", 16777216);
    OK(parse_size, "16 MiB", 16777216);
    OK(parse_size, "1MB", 1000000);
    OK(parse_size, "1mb", 1000000);
    OK(parse_size, "4g", 4ULL << 30);
    OK(parse_size, "4G", 4ULL << 30);
    OK(parse_size, "4Gi", 4ULL << 30);
    OK(parse_size, "1GiB", 1ULL << 30);
    OK(parse_size, "1gib", 1ULL << 30);
    OK(parse_size, "2GB", 2000000000ULL);
    OK(parse_size, "2gb", 2000000000ULL);
    OK(parse_size, "18446744073709551615", UINT64_MAX);
    /* The largest multiple of a unit that fits. */
    OK(parse_size, "17179869183GiB", UINT64_MAX - (1ULL << 30) + 1);
    OK(parse_size, "18446744073GB", 18446744073000000000ULL);

    /* Overflow, in the number and in the multiplication. */
    BAD(parse_size, "18446744073709551616", -ERANGE);
    BAD(parse_size, "99999999999999999999MiB", -ERANGE);
    BAD(parse_size, "17179869184GiB", -ERANGE);
    BAD(parse_size, "17179869184G", -ERANGE);
    BAD(parse_size, "18446744074GB", -ERANGE);
    BAD(parse_size, "18014398509481984KiB", -ERANGE);

    /* Junk. */
    BAD(parse_size, "", -EINVAL);
    BAD(parse_size, NULL, -EINVAL);
    BAD(parse_size, "MiB", -EINVAL);
    BAD(parse_size, "-1", -EINVAL);
    BAD(parse_size, "-1MiB", -EINVAL);
    BAD(parse_size, "+1", -EINVAL);
    BAD(parse_size, "1.5MiB", -EINVAL);
    BAD(parse_size, "16XiB", -EINVAL);
    BAD(parse_size, "16MiBs", -EINVAL);
    BAD(parse_size, "16MiB ", -EINVAL);
    BAD(parse_size, "16 megabytes", -EINVAL);
    BAD(parse_size, "16T", -EINVAL);
    BAD(parse_size, "16TiB", -EINVAL);
    BAD(parse_size, "16iB", -EINVAL);
    BAD(parse_size, "16bb", -EINVAL);
    BAD(parse_size, " 16", -EINVAL);
}

static void test_parse_duration(void)
{
    OK(parse_duration_ms, "500ms", 500);
    OK(parse_duration_ms, "10s", 10000);
    OK(parse_duration_ms, "2m", 120000);
    OK(parse_duration_ms, "3h", 3ULL * 3600 * 1000);
    OK(parse_duration_ms, "1h30m", 5400000);
    OK(parse_duration_ms, "1m30s", 90000);
    OK(parse_duration_ms, "1h1m1s1ms", 3661001);
    OK(parse_duration_ms, "1.5s", 1500);
    OK(parse_duration_ms, "0.25s", 250);
    OK(parse_duration_ms, ".5s", 500);
    OK(parse_duration_ms, "1.5h", 5400000);
    OK(parse_duration_ms, "2.5ms", 2);
    OK(parse_duration_ms, "1500us", 1);
    OK(parse_duration_ms, "999us", 0);
    OK(parse_duration_ms, "0", 0);
    OK(parse_duration_ms, "0s", 0);
    OK(parse_duration_ms, "0ms", 0);
    OK(parse_duration_ms, "1.0000000001s", 1000);                      /* excess fraction digits ignored */
    OK(parse_duration_ms, "5124095576h", 5124095576ULL * 3600 * 1000); /* large but fits in us */

    BAD(parse_duration_ms, "10", -EINVAL);
    BAD(parse_duration_ms, "1.5", -EINVAL);
    BAD(parse_duration_ms, "00", -EINVAL);
    BAD(parse_duration_ms, "", -EINVAL);
    BAD(parse_duration_ms, NULL, -EINVAL);
    BAD(parse_duration_ms, "s", -EINVAL);
    BAD(parse_duration_ms, "ms", -EINVAL);
    BAD(parse_duration_ms, ".s", -EINVAL);
    BAD(parse_duration_ms, "-1s", -EINVAL);
    BAD(parse_duration_ms, "+1s", -EINVAL);
    BAD(parse_duration_ms, "1d", -EINVAL);
    BAD(parse_duration_ms, "1ns", -EINVAL);
    BAD(parse_duration_ms, "1S", -EINVAL);
    BAD(parse_duration_ms, "10s ", -EINVAL);
    BAD(parse_duration_ms, " 10s", -EINVAL);
    BAD(parse_duration_ms, "1h30", -EINVAL);
    BAD(parse_duration_ms, "1ss", -EINVAL);
    BAD(parse_duration_ms, "1..5s", -EINVAL);

    /* Overflow: the number, the number times its unit, and the sum. */
    BAD(parse_duration_ms, "99999999999999999999s", -ERANGE);
    BAD(parse_duration_ms, "18446744073709551615h", -ERANGE);
    BAD(parse_duration_ms, "5124095577h", -ERANGE);
    BAD(parse_duration_ms, "18446744073709552s", -ERANGE);
    BAD(parse_duration_ms, "2562047788h2562047788h2562047788h", -ERANGE);
}

int main(void)
{
    RUN(test_parse_u64);
    RUN(test_parse_size);
    RUN(test_parse_duration);
    return unit_summary();
}
