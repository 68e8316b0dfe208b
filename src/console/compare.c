/*
 * compare.c - the prompt pane's state: sends one prompt to 2-4 targets at once as direct
 * target calls (the backend's chat: no fallback, drain and breaker ignored: the operator
 * decides), collects each answer in its column, records votes (win rate per target)
 * and saves a comparison as Markdown.
 *
 * Threads: the sinks run on the backend's thread (the router thread, or the remote worker). They
 * touch only their struct cmp_col, under its mutex, and never block. The UI copies a column
 * (compare_copy) to draw or save it. A column has two owners, the UI and the call (until on_done);
 * the last to let go frees it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- columns (shared with the router thread) ------------------------------------------------ */

static struct cmp_col *col_new(const char *target)
{
    struct cmp_col *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->refs = 2; /* the UI and the call */
    str_copy(c->target, sizeof c->target, target);
    c->state = CMP_WAITING;
    buf_init(&c->text);
    c->latency_us = c->ttft_us = -1;
    c->started_us = clock_mono_us();
    return c;
}

static void col_put(struct cmp_col *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    buf_cleanup(&c->text);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void sink_commit(void *ctx, const struct router_commit *cm)
{
    struct cmp_col *c = ctx;
    pthread_mutex_lock(&c->mu);
    str_copy(c->model, sizeof c->model, cm->model);
    pthread_mutex_unlock(&c->mu);
}

static int sink_event(void *ctx, const struct llm_event *ev)
{
    struct cmp_col *c = ctx;
    int stop = 0;
    pthread_mutex_lock(&c->mu);
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (c->first_us == 0)
            c->first_us = clock_mono_us();
        c->state = CMP_STREAMING;
        if (ev->kind == LLM_TEXT_REASONING || ev->kind == LLM_TEXT_REASONING_CONTENT)
            break; /* the answer only */
        if (c->text.len + ev->len > CMP_ANSWER_CAP) {
            c->capped = true;
            stop = 1;
        } else {
            buf_append(&c->text, ev->text, ev->len);
        }
        break;
    case LLM_EV_TOOL_CALL:
        buf_printf(&c->text, "\n[tool call: %s]\n", ev->name ? ev->name : "?");
        break;
    case LLM_EV_TOOL_ARGS:
    case LLM_EV_USAGE:
    case LLM_EV_FINISH:
        break;
    case LLM_EV_ERROR:
        c->state = CMP_FAILED;
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static void sink_done(void *ctx, const struct router_result *r)
{
    struct cmp_col *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->err = c->capped ? LLM_ERR_NONE : r->err;
    c->state = c->err == LLM_ERR_NONE ? CMP_DONE : CMP_FAILED;
    str_copy(c->error, sizeof c->error, r->message);
    c->usage = r->usage;
    c->cost_usd = r->cost_usd;
    c->latency_us = r->latency_us;
    c->ttft_us = r->ttft_us;
    c->finish = r->finish;
    if (r->model && *r->model && !c->model[0])
        str_copy(c->model, sizeof c->model, r->model);
    pthread_mutex_unlock(&c->mu);
    col_put(c); /* the call lets go */
}

/* ---- state ---------------------------------------------------------------------------------- */

void compare_init(struct compare *c)
{
    memset(c, 0, sizeof *c);
    text_edit_init(&c->prompt);
    line_edit_set(&c->max_tokens, "512");
    c->vote = -1;
}

static void drop_columns(struct ui *ui, struct compare *c)
{
    for (size_t i = 0; i < c->n_cols; i++) {
        struct cmp_col *col = c->cols[i];
        pthread_mutex_lock(&col->mu);
        bool running = col->state == CMP_WAITING || col->state == CMP_STREAMING;
        uint64_t id = col->call_id;
        pthread_mutex_unlock(&col->mu);
        if (running && id)
            ui->be->ops->cancel(ui->be->self, id);
        col_put(col);
        c->cols[i] = NULL;
    }
    c->n_cols = 0;
    free(c->sent_prompt);
    free(c->sent_system);
    c->sent_prompt = c->sent_system = NULL;
    c->vote = -1;
    c->scroll = 0;
    c->saved_path[0] = '\0';
}

void compare_cleanup(struct ui *ui, struct compare *c)
{
    drop_columns(ui, c);
    text_edit_cleanup(&c->prompt);
    for (size_t i = 0; i < c->n_history; i++)
        free(c->history[i]);
    c->n_history = 0;
}

bool compare_is_picked(const struct compare *c, const char *name)
{
    for (size_t i = 0; i < c->n_picked; i++) {
        if (str_eq(c->picked[i], name))
            return true;
    }
    return false;
}

void compare_toggle_target(struct ui *ui, const char *name)
{
    struct compare *c = &ui->cmp;
    for (size_t i = 0; i < c->n_picked; i++) {
        if (str_eq(c->picked[i], name)) {
            memmove(&c->picked[i], &c->picked[i + 1], (c->n_picked - i - 1) * sizeof c->picked[0]);
            c->n_picked--;
            return;
        }
    }
    if (c->n_picked == CMP_MAX) {
        ui_message(ui, THEME_ERROR, "at most %d targets: unpick one first", CMP_MAX);
        return;
    }
    str_copy(c->picked[c->n_picked++], sizeof c->picked[0], name);
}

/* The first time the pane opens: the selected target and the next ones, enabled first. */
void compare_open(struct ui *ui)
{
    struct compare *c = &ui->cmp;
    ui->view = VIEW_COMPARE;
    if (c->picked_init || !ui->have_snap)
        return;
    c->picked_init = true;
    const struct router_target_snap *sel = ui_selected_target(ui);
    if (sel && sel->enabled)
        compare_toggle_target(ui, sel->name);
    for (size_t i = 0; i < ui->snap->n_targets && c->n_picked < 2; i++) {
        const struct router_target_snap *t = &ui->snap->targets[i];
        if (t->enabled && !compare_is_picked(c, t->name))
            compare_toggle_target(ui, t->name);
    }
}

bool compare_busy(const struct compare *c)
{
    for (size_t i = 0; i < c->n_cols; i++) {
        struct cmp_col *col = c->cols[i];
        pthread_mutex_lock(&col->mu);
        bool running = col->state == CMP_WAITING || col->state == CMP_STREAMING;
        pthread_mutex_unlock(&col->mu);
        if (running)
            return true;
    }
    return false;
}

static void remember(struct compare *c, const char *prompt)
{
    if (c->n_history && str_eq(c->history[c->n_history - 1], prompt)) {
        c->hist_pos = c->n_history;
        return;
    }
    if (c->n_history == CMP_HISTORY_MAX) {
        free(c->history[0]);
        memmove(&c->history[0], &c->history[1], (CMP_HISTORY_MAX - 1) * sizeof c->history[0]);
        c->n_history--;
    }
    c->history[c->n_history++] = xstrdup(prompt);
    c->hist_pos = c->n_history;
}

void compare_history(struct ui *ui, int dir)
{
    struct compare *c = &ui->cmp;
    if (c->n_history == 0)
        return;
    if (dir < 0 && c->hist_pos > 0)
        c->hist_pos--;
    else if (dir > 0 && c->hist_pos < c->n_history)
        c->hist_pos++;
    text_edit_set(&c->prompt, c->hist_pos < c->n_history ? c->history[c->hist_pos] : "");
}

static struct llm_request *build_request(const struct compare *c, const char *target)
{
    struct llm_request *req = xmalloc(sizeof *req);
    llm_request_init(req);
    req->model = xstrdup(target);
    req->stream = true;
    req->include_usage = true;
    req->max_tokens = c->sent_max_tokens;
    if (c->sent_system && *c->sent_system)
        llm_request_add_message(req, LLM_ROLE_SYSTEM, c->sent_system);
    llm_request_add_message(req, LLM_ROLE_USER, c->sent_prompt);
    return req;
}

void compare_send(struct ui *ui)
{
    struct compare *c = &ui->cmp;
    const char *prompt = buf_str(&c->prompt.text);
    if (!*prompt) {
        ui_message(ui, THEME_ERROR, "the prompt is empty: type one first");
        return;
    }
    if (c->n_picked < 2) {
        ui_message(ui, THEME_ERROR, "pick 2 to %d targets (Tab to Targets, Space)", CMP_MAX);
        return;
    }
    long max_tokens = 0;
    if (c->max_tokens.len &&
        (!str_to_long(c->max_tokens.text, &max_tokens) || max_tokens < 1 || max_tokens > 1000000)) {
        ui_message(ui, THEME_ERROR, "max tokens: expected a number from 1 to 1000000");
        return;
    }
    drop_columns(ui, c);
    c->sent_prompt = xstrdup(prompt);
    c->sent_system = xstrdup(c->system.text);
    c->sent_max_tokens = max_tokens;
    c->sent_wall_ms = clock_wall_ms();
    remember(c, prompt);
    c->sends++;
    for (size_t i = 0; i < c->n_picked; i++) {
        struct cmp_col *col = col_new(c->picked[i]);
        /* each call its own id: "console-compare-<send time ms>-<send>-<column>" */
        snprintf(col->request_id, sizeof col->request_id, "console-compare-%lld-%u-%zu",
                 (long long)c->sent_wall_ms, c->sends, i + 1);
        c->cols[c->n_cols++] = col;
        struct router_sink sink = {sink_commit, sink_event, sink_done, col, NULL, false};
        uint64_t id = ui->be->ops->chat(ui->be->self, c->picked[i], col->request_id,
                                        build_request(c, c->picked[i]), &sink);
        pthread_mutex_lock(&col->mu);
        col->call_id = id;
        pthread_mutex_unlock(&col->mu);
    }
    c->focus = CMP_FOCUS_ANSWERS;
    ui_message(ui, THEME_OK, "sent to %zu targets", c->n_cols);
}

void compare_copy(struct compare *c, size_t i, struct cmp_view *out, int64_t now_us)
{
    struct cmp_col *col = c->cols[i];
    buf_init(&out->text);
    pthread_mutex_lock(&col->mu);
    str_copy(out->target, sizeof out->target, col->target);
    str_copy(out->model, sizeof out->model, col->model);
    str_copy(out->request_id, sizeof out->request_id, col->request_id);
    out->state = col->state;
    buf_append(&out->text, buf_str(&col->text), col->text.len);
    out->capped = col->capped;
    out->err = col->err;
    str_copy(out->error, sizeof out->error, col->error);
    out->usage = col->usage;
    out->cost_usd = col->cost_usd;
    out->latency_us = col->latency_us;
    out->ttft_us = col->ttft_us;
    out->finish = col->finish;
    out->elapsed_us = now_us - col->started_us;
    if (out->ttft_us < 0 && col->first_us)
        out->ttft_us = col->first_us - col->started_us;
    pthread_mutex_unlock(&col->mu);
}

void compare_view_cleanup(struct cmp_view *v)
{
    buf_cleanup(&v->text);
}

/* ---- votes ---------------------------------------------------------------------------------- */

static struct ui_vote *vote_rec(struct ui *ui, const char *name)
{
    for (size_t i = 0; i < ui->n_votes; i++) {
        if (str_eq(ui->votes[i].name, name))
            return &ui->votes[i];
    }
    if (ui->n_votes == SB_ARRAY_LEN(ui->votes))
        return NULL;
    struct ui_vote *v = &ui->votes[ui->n_votes++];
    memset(v, 0, sizeof *v);
    str_copy(v->name, sizeof v->name, name);
    return v;
}

/* The win rates (ui->votes) from the votes by prompt: each prompt counts once. */
static void recount(struct ui *ui)
{
    const struct compare *c = &ui->cmp;
    ui->n_votes = 0;
    for (size_t k = 0; k < c->n_votes; k++) {
        const struct cmp_vote_rec *r = &c->votes[k];
        for (size_t i = 0; i < r->n; i++) {
            struct ui_vote *v = vote_rec(ui, r->names[i]);
            if (!v)
                continue;
            v->comparisons++;
            if ((int)i == r->winner)
                v->wins++;
        }
    }
}

/* The record for this prompt: the earlier one (replaced), or a new one. */
static struct cmp_vote_rec *vote_slot(struct compare *c, uint64_t hash)
{
    for (size_t k = 0; k < c->n_votes; k++) {
        if (c->votes[k].hash == hash)
            return &c->votes[k];
    }
    if (c->n_votes == CMP_VOTES_MAX) {
        memmove(&c->votes[0], &c->votes[1], sizeof c->votes[0] * (CMP_VOTES_MAX - 1));
        c->n_votes--;
    }
    return &c->votes[c->n_votes++];
}

uint64_t compare_prompt_hash(const char *prompt)
{
    return prompt ? hash_fnv1a(prompt, strlen(prompt)) : 0; /* as router_record_vote */
}

void compare_vote(struct ui *ui, int col)
{
    struct compare *c = &ui->cmp;
    if (col < 0 || (size_t)col >= c->n_cols || col >= CMP_MAX) {
        ui_message(ui, THEME_ERROR, "no answer %d to mark", col + 1);
        return;
    }
    const char *names[CMP_MAX];
    size_t n = c->n_cols < CMP_MAX ? c->n_cols : CMP_MAX;
    for (size_t i = 0; i < n; i++)
        names[i] = c->cols[i]->target; /* immutable after col_new */
    struct cmp_vote_rec *r = vote_slot(c, compare_prompt_hash(c->sent_prompt));
    r->hash = compare_prompt_hash(c->sent_prompt);
    r->n = n;
    r->winner = col;
    for (size_t i = 0; i < n; i++)
        str_copy(r->names[i], sizeof r->names[i], names[i]);
    c->vote = col;
    recount(ui);
    const char *losers[CMP_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)i != col)
            losers[k++] = names[i];
    }
    ui->be->ops->vote(ui->be->self, names[col], losers, k, c->sent_prompt);
    ui_message(ui, THEME_OK, "marked %s's answer as the better one (prompt %016llx)", names[col],
               (unsigned long long)r->hash);
}

/* ---- save ----------------------------------------------------------------------------------- */

static void md_figures(struct buf *b, const struct cmp_view *v)
{
    char ttft[32], lat[32], cost[32];
    fmt_us(v->ttft_us, ttft, sizeof ttft);
    fmt_us(v->latency_us, lat, sizeof lat);
    if (v->cost_usd >= 0)
        fmt_usd_exact(v->cost_usd, cost, sizeof cost);
    else
        str_copy(cost, sizeof cost, "unknown (attached)");
    double gen_s = (double)(v->latency_us - (v->ttft_us > 0 ? v->ttft_us : 0)) / 1e6;
    buf_printf(b, "| TTFT | latency | tokens in | tokens out | tokens/s | cost |\n");
    buf_printf(b, "| --- | --- | --- | --- | --- | --- |\n");
    if (v->usage.present)
        buf_printf(b, "| %s | %s | %ld | %ld | %.1f | %s |\n", ttft, lat, v->usage.input_tokens,
                   v->usage.output_tokens, gen_s > 0 ? (double)v->usage.output_tokens / gen_s : 0.0,
                   cost);
    else
        buf_printf(b, "| %s | %s | ? | ? | ? | unknown (no usage reported) |\n", ttft, lat);
}

static void md_comparison(struct ui *ui, struct buf *b)
{
    struct compare *c = &ui->cmp;
    char when[32];
    fmt_clock(c->sent_wall_ms, when, sizeof when, true);
    buf_printf(b, "# switchboard comparison, %s\n\n", when);
    buf_printf(b, "- targets: ");
    for (size_t i = 0; i < c->n_cols; i++)
        buf_printf(b, "%s`%s`", i ? ", " : "", c->cols[i]->target);
    buf_printf(b, "\n- max tokens: %ld\n", c->sent_max_tokens);
    buf_printf(b, "- prompt hash: %016llx (votes in the ledger carry it)\n",
               (unsigned long long)compare_prompt_hash(c->sent_prompt));
    if (c->sent_system && *c->sent_system)
        buf_printf(b, "- system prompt:\n\n```text\n%s\n```\n", c->sent_system);
    buf_printf(b, "\n## Prompt\n\n```text\n%s\n```\n", c->sent_prompt ? c->sent_prompt : "");
    int64_t now = clock_mono_us();
    for (size_t i = 0; i < c->n_cols; i++) {
        struct cmp_view v;
        compare_copy(c, i, &v, now);
        buf_printf(b, "\n## %zu. %s (%s)%s\n\n", i + 1, v.target, v.model[0] ? v.model : "?",
                   c->vote == (int)i ? " - marked better" : "");
        buf_printf(b, "request id: `%s`\n\n%s\n", v.request_id, buf_str(&v.text));
        if (v.state == CMP_FAILED)
            buf_printf(b, "\n**error:** %s: %s\n", llm_errclass_name(v.err), v.error);
        if (v.state == CMP_WAITING || v.state == CMP_STREAMING)
            buf_printf(b, "\n*(still streaming when saved)*\n");
        buf_puts(b, "\n");
        md_figures(b, &v);
        compare_view_cleanup(&v);
    }
    buf_printf(b, "\n## Vote\n\n");
    if (c->vote >= 0)
        buf_printf(b, "Better answer: **%s** (%d)\n", c->cols[c->vote]->target, c->vote + 1);
    else
        buf_printf(b, "No answer marked.\n");
}

void compare_save(struct ui *ui)
{
    struct compare *c = &ui->cmp;
    if (c->n_cols == 0) {
        ui_message(ui, THEME_ERROR, "nothing to save: send a prompt first");
        return;
    }
    char path[256];
    time_t t = (time_t)(c->sent_wall_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(path, sizeof path, "switchboard-compare-%Y%m%d-%H%M%S.md", &tm);
    struct buf b;
    buf_init(&b);
    md_comparison(ui, &b);
    FILE *f = fopen(path, "w");
    bool ok = f && fwrite(buf_str(&b), 1, b.len, f) == b.len;
    int e = errno;
    if (f && fclose(f) != 0)
        ok = false;
    buf_cleanup(&b);
    if (!ok) {
        ui_message(ui, THEME_ERROR, "cannot write %s: %s", path, strerror(e));
        return;
    }
    char cwd[512], full[800];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    snprintf(full, sizeof full, "%s%s%s", cwd, cwd[0] ? "/" : "", path);
    str_copy(c->saved_path, sizeof c->saved_path, full);
    ui_message(ui, THEME_OK, "saved %s", c->saved_path);
}
