/* PID 1 of a pod-shared PID namespace (see pod_init.c). */
#pragma once

int pod_init_main(void);
