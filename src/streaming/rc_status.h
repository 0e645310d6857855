/* How a remote command ends, as kubelet's streaming server reports it on
 * the error stream: protocol v4 and v5 send a JSON Status object (client-go
 * turns a NonZeroExitCode failure back into the exit code); v1 to v3 send
 * the failure message as plain text and nothing on success. */
#pragma once

#include <stddef.h>

enum rc_outcome {
    RC_SUCCESS,
    RC_EXIT_CODE, /* the command ended with a non-zero code */
    RC_INTERNAL,  /* it could not run, or the session broke */
};

/* The bytes to write on the error stream (caller frees; *len may be 0 for
 * v1-v3 success). `message`: the detail for RC_EXIT_CODE and RC_INTERNAL. */
char *rc_status_encode(int protocol_version, enum rc_outcome outcome, int exit_code, const char *message, size_t *len);
