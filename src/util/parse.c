#include "util/parse.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*s)
        return -EINVAL;
    *out = v;
    return 0;
}

static const struct {
    const char *suffix;
    uint64_t factor;
} size_units[] = {
    {"", 1},           {"b", 1},           {"k", 1ULL << 10},   {"ki", 1ULL << 10},    {"kib", 1ULL << 10},
    {"kb", 1000ULL},   {"m", 1ULL << 20},  {"mi", 1ULL << 20},  {"mib", 1ULL << 20},   {"mb", 1000000ULL},
    {"g", 1ULL << 30}, {"gi", 1ULL << 30}, {"gib", 1ULL << 30}, {"gb", 1000000000ULL},
};

int parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    while (*s == ' ')
        s++;
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcasecmp(s, size_units[i].suffix) == 0) {
            if (v > UINT64_MAX / size_units[i].factor)
                return -ERANGE;
            *out = v * size_units[i].factor;
            return 0;
        }
    }
    return -EINVAL;
}

int parse_duration_ms(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    /* Work in microseconds so "1.5ms" and "0.25s" stay exact enough. */
    uint64_t total_us = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s) && *s != '.')
            return -EINVAL;
        uint64_t whole = 0, frac = 0, frac_scale = 1;
        int digits = 0;
        for (; isdigit((unsigned char)*s); s++, digits++) {
            if (whole > (UINT64_MAX - 9) / 10)
                return -ERANGE;
            whole = whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
            s++;
            for (; isdigit((unsigned char)*s); s++, digits++) {
                if (frac_scale < 1000000000ULL) {
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    frac_scale *= 10;
                }
            }
        }
        if (digits == 0)
            return -EINVAL;
        uint64_t unit_us;
        if (strncmp(s, "ms", 2) == 0) {
            unit_us = 1000;
            s += 2;
        } else if (strncmp(s, "us", 2) == 0) {
            unit_us = 1;
            s += 2;
        } else if (*s == 's') {
            unit_us = 1000000;
            s++;
        } else if (*s == 'm') {
            unit_us = 60ULL * 1000000;
            s++;
        } else if (*s == 'h') {
            unit_us = 3600ULL * 1000000;
            s++;
        } else {
            return -EINVAL; /* a unit is required: "10" could mean anything */
        }
        if (whole > UINT64_MAX / unit_us)
            return -ERANGE;
        uint64_t part = whole * unit_us + frac * unit_us / frac_scale;
        if (total_us > UINT64_MAX - part)
            return -ERANGE;
        total_us += part;
    }
    *out = total_us / 1000;
    return 0;
}
