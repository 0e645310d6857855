/* Handlers of edgecri.admin.v1 (src/admin/admin.proto). */
#pragma once

#include "admin.pb-c.h"
#include "cri/grpc.h"

void admin_pull(struct grpc_call *call, const ProtobufCMessage *request);
void admin_import(struct grpc_call *call, const ProtobufCMessage *request);
