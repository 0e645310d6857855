/* Parsers for the small value syntaxes people type into config files and
 * flags. Each accepts exactly its syntax (no trailing junk, no silent
 * wrap-around) and returns 0 or -EINVAL / -ERANGE. */
#pragma once

#include <stdint.h>

/* Decimal integer without sign or junk. */
int parse_u64(const char *s, uint64_t *out);

/* "1048576", "512KiB", "16MiB", "1GiB" (also K/M/G and Ki/Mi/Gi, binary),
 * "1kB"/"1MB"/"1GB" (decimal), optional "B". */
int parse_size(const char *s, uint64_t *out);

/* Go-style durations as Kubernetes writes them: "500ms", "10s", "2m",
 * "1h30m", "1.5s"; a bare "0" is zero. Result in milliseconds. */
int parse_duration_ms(const char *s, uint64_t *out);
