#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>

struct work_item {
    uv_work_t req;
    void (*work)(void *);
    void (*done)(void *, int);
    void *data;
};

uv_loop_t *loop_get(void)
{
    return uv_default_loop();
}

static void run_work(uv_work_t *req)
{
    struct work_item *w = req->data;
    w->work(w->data);
}

static void after_work(uv_work_t *req, int status)
{
    struct work_item *w = req->data;
    w->done(w->data, status);
    free(w);
}

int loop_queue_work(void (*work)(void *), void (*done)(void *, int), void *data)
{
    struct work_item *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct work_item){.work = work, .done = done, .data = data};
    w->req.data = w;
    int r = uv_queue_work(loop_get(), &w->req, run_work, after_work);
    if (r < 0)
        free(w);
    return r;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int loop_close(void)
{
    uv_loop_t *loop = loop_get();
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop);
}
