/* edgecri.admin.v1.Images/Import: `edgecri import FILE.tar`. */
#include <stdlib.h>

#include "admin/admin_service.h"
#include "daemon/daemon.h"
#include "image/import.h"

static void import_progress(void *data, const char *line)
{
    Edgecri__Admin__V1__ImportProgress msg = EDGECRI__ADMIN__V1__IMPORT_PROGRESS__INIT;
    msg.message = (char *)line;
    grpc_call_send(data, &msg.base);
}

static void import_done(void *data, const struct imported_image *images, size_t n, const err_t *err)
{
    struct grpc_call *call = data;
    if (!err && n) {
        Edgecri__Admin__V1__ImportedImage *imgs = calloc(n, sizeof(*imgs));
        Edgecri__Admin__V1__ImportedImage **ptrs = calloc(n, sizeof(*ptrs));
        if (imgs && ptrs) {
            for (size_t i = 0; i < n; i++) {
                Edgecri__Admin__V1__ImportedImage im = EDGECRI__ADMIN__V1__IMPORTED_IMAGE__INIT;
                im.id = (char *)images[i].id;
                im.n_repo_tags = images[i].n_repo_tags;
                im.repo_tags = (char **)images[i].repo_tags;
                imgs[i] = im;
                ptrs[i] = &imgs[i];
            }
            Edgecri__Admin__V1__ImportProgress msg = EDGECRI__ADMIN__V1__IMPORT_PROGRESS__INIT;
            msg.n_images = n;
            msg.images = ptrs;
            grpc_call_send(call, &msg.base);
        }
        free(imgs);
        free(ptrs);
    }
    grpc_call_finish(call, NULL, err);
}

static void import_cancelled(struct grpc_call *call, void *data)
{
    image_import_detach(data);
    grpc_call_finish(call, NULL, NULL);
}

void admin_import(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Edgecri__Admin__V1__ImportRequest *req = (const Edgecri__Admin__V1__ImportRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);
    err_t err = ERR_INIT;
    struct image_import *imp = image_import_start(d->images, req->path, import_progress, import_done, call, &err);
    if (!imp) {
        grpc_call_finish(call, NULL, &err);
        err_clear(&err);
        return;
    }
    grpc_call_on_cancel(call, import_cancelled, imp);
}
