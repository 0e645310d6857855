#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/pod_cidr.h"
#include "unit.h"

/* Normalizes `in`; checks success and the canonical form. */
static void expect_ok(const char *in, const char *want)
{
    char *out = NULL;
    err_t err = ERR_INIT;
    int r = pod_cidr_normalize(in, &out, &err);
    CHECK_MSG(r == 0, "pod_cidr_normalize(\"%s\") = %d (%s), want 0", in, r, err.msg ? err.msg : "");
    CHECK_MSG(out && strcmp(out, want) == 0, "pod_cidr_normalize(\"%s\") gave \"%s\", want \"%s\"", in,
              out ? out : "(null)", want);
    CHECK(err.msg == NULL);
    free(out);
    err_clear(&err);
}

/* Normalization fails with INVALID_ARGUMENT and a message that quotes
 * `mention` and contains `why`. */
static void expect_err(const char *in, const char *mention, const char *why)
{
    char *out = NULL;
    err_t err = ERR_INIT;
    int r = pod_cidr_normalize(in, &out, &err);
    CHECK_MSG(r == -EINVAL, "pod_cidr_normalize(\"%s\") = %d (\"%s\"), want -EINVAL", in, r, out ? out : "");
    CHECK_MSG(out == NULL, "pod_cidr_normalize(\"%s\") set out", in);
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "pod_cidr_normalize(\"%s\"): code %d", in, err.code);
    CHECK_MSG(err.msg && strstr(err.msg, mention), "pod_cidr_normalize(\"%s\"): message \"%s\" lacks \"%s\"", in,
              err.msg ? err.msg : "(null)", mention);
    CHECK_MSG(err.msg && strstr(err.msg, why), "pod_cidr_normalize(\"%s\"): message \"%s\" lacks \"%s\"", in,
              err.msg ? err.msg : "(null)", why);
    free(out);
    err_clear(&err);
}

static void test_valid(void)
{
    expect_ok("10.244.1.0/24", "10.244.1.0/24");
    expect_ok("fd00:10:244:1::/64", "fd00:10:244:1::/64");
    expect_ok(" 10.244.1.0/24 , fd00:10:244:1::/64 ", "10.244.1.0/24,fd00:10:244:1::/64");
    expect_ok("fd00:10:244:1::/64,10.244.1.0/24", "fd00:10:244:1::/64,10.244.1.0/24"); /* order kept */
    expect_ok("FD00::/64", "fd00::/64");
    expect_ok("fd00:0:0:0:0:0:0:0/64", "fd00::/64");
    expect_ok("0.0.0.0/0", "0.0.0.0/0");
    expect_ok("::/0", "::/0");
    expect_ok("10.1.2.3/32", "10.1.2.3/32");
    expect_ok("fd00::1/128", "fd00::1/128");
    expect_ok("10.0.0.0/8", "10.0.0.0/8");
    expect_ok("", "");
    expect_ok("   ", "");
}

static void test_invalid(void)
{
    /* Host bits. */
    expect_err("10.244.1.1/24", "10.244.1.1/24", "host bits");
    expect_err("10.244.1.0/23", "10.244.1.0/23", "host bits");
    expect_err("fd00::1/64", "fd00::1/64", "host bits");
    /* Prefix longer than the address. */
    expect_err("10.0.0.0/33", "10.0.0.0/33", "/33");
    expect_err("fd00::/129", "fd00::/129", "/129");
    /* Two networks of one family. */
    expect_err("10.0.0.0/8,192.168.0.0/16", "10.0.0.0/8,192.168.0.0/16", "two IPv4");
    expect_err("fd00::/64, fd01::/64", "fd00::/64, fd01::/64", "two IPv6");
    expect_err("10.0.0.0/8,fd00::/64,10.0.0.0/8", "10.0.0.0/8,fd00::/64,10.0.0.0/8", "two IPv4");
    /* Not address/prefix. */
    expect_err("garbage", "garbage", "address/prefix");
    expect_err("garbage/24", "garbage", "not an IP address");
    expect_err("10.0.0.0", "10.0.0.0", "address/prefix");
    expect_err("/24", "/24", "not an IP address");
    expect_err("10.0.0.0/", "10.0.0.0/", "bad prefix");
    expect_err("10.0.0.0/-1", "10.0.0.0/-1", "bad prefix");
    expect_err("10.0.0.0/24abc", "10.0.0.0/24abc", "bad prefix");
    expect_err("10.0.0.0/24/24", "10.0.0.0/24/24", "bad prefix");
    expect_err("10.0.0.0/+24", "10.0.0.0/+24", "bad prefix");
    expect_err("10.0.0.0/ 24", "10.0.0.0/ 24", "bad prefix");
    expect_err("10.0.0.0/024", "10.0.0.0/024", "bad prefix");
    expect_err("10.0.0/24", "10.0.0/24", "not an IP address");
    expect_err("10.0.0.0 /24", "10.0.0.0 /24", "not an IP address");
    expect_err("10.0.0.0/99999999999999999999", "99999999999999999999", "bad prefix");
    /* Empty entries. */
    expect_err(" , ", " , ", "empty entry");
    expect_err("10.0.0.0/8, ,fd00::/64", "10.0.0.0/8, ,fd00::/64", "empty entry");
    expect_err(",", ",", "empty entry");
    expect_err("10.0.0.0/8,,fd00::/64", "10.0.0.0/8,,fd00::/64", "empty entry");
    expect_err("10.0.0.0/8,", "10.0.0.0/8,", "empty entry");
    expect_err(",10.0.0.0/8", ",10.0.0.0/8", "empty entry");
    /* Too long. */
    char big[400];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "10.0.0.0/8", 10);
    expect_err(big, "pod CIDR list", "too long");
}

int main(void)
{
    RUN(test_valid);
    RUN(test_invalid);
    return unit_summary();
}
