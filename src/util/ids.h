/* Object IDs and timestamps shared by pods and containers. */
#pragma once

#include <stdint.h>

/* CLOCK_REALTIME in Unix nanoseconds, the unit of every CRI timestamp. */
int64_t time_now_ns(void);

/* 64 lowercase hex digits from 32 random bytes (the form of containerd's
 * and CRI-O's IDs, which kubelet and crictl print and prefix-match). */
void random_hex_id(char out[65]);
