#include "streaming/rc_status.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* json_object keeps insertion order, so the fields come out in the order
 * Go's encoding/json writes metav1.Status: metadata, status, message,
 * reason, details, code. */
static char *status_json(enum rc_outcome outcome, int exit_code, const char *message)
{
    json_t *o = json_object();
    json_object_set_new(o, "metadata", json_object());
    if (outcome == RC_SUCCESS) {
        json_object_set_new(o, "status", json_string("Success"));
    } else if (outcome == RC_EXIT_CODE) {
        char code[16], msg[1024];
        snprintf(code, sizeof(code), "%d", exit_code);
        snprintf(msg, sizeof(msg), "command terminated with non-zero exit code: %s", message ? message : code);
        json_t *cause = json_pack("{s:s, s:s}", "reason", "ExitCode", "message", code);
        json_object_set_new(o, "status", json_string("Failure"));
        json_object_set_new(o, "message", json_string(msg));
        json_object_set_new(o, "reason", json_string("NonZeroExitCode"));
        json_object_set_new(o, "details", json_pack("{s:[o]}", "causes", cause));
    } else {
        char msg[1024];
        snprintf(msg, sizeof(msg), "Internal error occurred: %s", message ? message : "unknown error");
        json_object_set_new(o, "status", json_string("Failure"));
        json_object_set_new(o, "message", json_string(msg));
        json_object_set_new(o, "reason", json_string("InternalError"));
        json_object_set_new(o, "details",
                            json_pack("{s:[{s:s}]}", "causes", "message", message ? message : "unknown error"));
        json_object_set_new(o, "code", json_integer(500));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

char *rc_status_encode(int protocol_version, enum rc_outcome outcome, int exit_code, const char *message, size_t *len)
{
    char *s = NULL;
    if (protocol_version >= 4) {
        s = status_json(outcome, exit_code, message);
    } else if (outcome == RC_SUCCESS) {
        s = strdup("");
    } else if (outcome == RC_EXIT_CODE) {
        if (asprintf(&s, "command terminated with non-zero exit code: %s", message ? message : "") < 0)
            s = NULL;
    } else {
        if (asprintf(&s, "Internal error occurred: %s", message ? message : "unknown error") < 0)
            s = NULL;
    }
    *len = s ? strlen(s) : 0;
    return s;
}
