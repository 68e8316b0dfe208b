/*
 * worker.c - the console's command worker: one thread that takes operator commands and
 * explain requests from the UI, waits for the router's verdict (router_command /
 * router_explain block up to UI_CMD_TIMEOUT_MS) and queues the result for the UI. The UI
 * posts and polls and so never waits on the router, however slow it is.
 *
 * Threads: the main thread posts and takes; the worker thread runs jobs. Both queues are
 * guarded by w->mu; no lock is held while calling the router.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct job {
    struct job *next;
    enum worker_job_type type;
    struct router_cmd cmd;
    char model[64], tag[64];
    long tokens;
    char label[128];
};

struct worker {
    struct router *rt;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;                    /* under mu */
    struct job *jobs, *jobs_tail; /* under mu */
    struct worker_result *done;   /* under mu; newest first */
};

static struct worker_result *run(struct worker *w, const struct job *j)
{
    struct worker_result *r = xcalloc(1, sizeof *r);
    r->type = j->type;
    str_copy(r->label, sizeof r->label, j->label);
    switch (j->type) {
    case WORKER_COMMAND:
        r->status = router_command(w->rt, &j->cmd, r->msg, sizeof r->msg, UI_CMD_TIMEOUT_MS);
        break;
    case WORKER_EXPLAIN: {
        struct buf out;
        buf_init(&out);
        r->status = router_explain(w->rt, j->model, j->tag[0] ? j->tag : NULL, j->tokens, &out,
                                   UI_CMD_TIMEOUT_MS);
        r->text = buf_take(&out);
        break;
    }
    }
    return r;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->jobs)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        struct job *j = w->jobs;
        w->jobs = j->next;
        if (!w->jobs)
            w->jobs_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        struct worker_result *r = run(w, j);
        free(j);
        pthread_mutex_lock(&w->mu);
        r->next = w->done;
        w->done = r;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct worker *worker_new(struct router *rt)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->rt = rt;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->jobs) {
        struct job *j = w->jobs;
        w->jobs = j->next;
        free(j);
    }
    worker_result_free(w->done);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void post(struct worker *w, struct job *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->jobs_tail)
        w->jobs_tail->next = j;
    else
        w->jobs = j;
    w->jobs_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_post_command(struct worker *w, const struct router_cmd *cmd, const char *label)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->type = WORKER_COMMAND;
    j->cmd = *cmd;
    str_copy(j->label, sizeof j->label, label);
    post(w, j);
}

void worker_post_explain(struct worker *w, const char *model, const char *tag, long tokens,
                         const char *label)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->type = WORKER_EXPLAIN;
    str_copy(j->model, sizeof j->model, model);
    str_copy(j->tag, sizeof j->tag, tag ? tag : "");
    j->tokens = tokens;
    str_copy(j->label, sizeof j->label, label);
    post(w, j);
}

struct worker_result *worker_take(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    struct worker_result *r = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    /* Oldest first. */
    struct worker_result *rev = NULL;
    while (r) {
        struct worker_result *next = r->next;
        r->next = rev;
        rev = r;
        r = next;
    }
    return rev;
}

void worker_result_free(struct worker_result *r)
{
    while (r) {
        struct worker_result *next = r->next;
        free(r->text);
        free(r);
        r = next;
    }
}
