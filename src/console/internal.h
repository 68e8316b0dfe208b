/*
 * internal.h - the console's private state, shared by its files:
 *   console.c   lifecycle, main loop, signals, snapshot intake, messages
 *   term.c      terminal start/stop, restore on every exit path, theme -> curses attributes
 *   keys.c      the key table, UI actions, dispatch, the key bar
 *   help.c      the help overlay and --keys Markdown, generated from the tables
 *   board.c     header, target table, info line, status bar
 *   columns.c   the board's column table (title, width, priority, render, sort)
 *   sort.c      the board's order (problems first, one key per column) and mouse clicks
 *   watch.c     what the console follows over time: per-target trends, an operator's probe
 *   events.c    incident timeline store, pane, export
 *   detail.c    one target in depth
 *   cmdline.c   ':' line with completion, '/' filter, 'w' weight field, y/n confirmation
 *   editor.c    single- and multi-line UTF-8 text editing
 *   compare.c   prompt pane state: calls, sinks (router thread), save, votes
 *   compare_view.c  prompt pane drawing and keys
 *   draw.c      drawing helpers (UTF-8 -> wide chars, widths, wrapping, formatting)
 *   backend_local.c   the console backend over the in-process router
 *   backend_remote.c  the console backend over `serve` instances (libcurl worker thread)
 *   remote_state.c    /admin/state JSON -> snapshot; merging instance snapshots
 *
 * Threads: everything in struct ui belongs to the main thread. struct cmp_col (compare.c) is
 * shared with the backend's thread (the router thread, or the remote worker) under its own
 * mutex. The backend (console_backend.h) is called from the main thread only.
 */
#ifndef SWITCHBOARD_CONSOLE_INTERNAL_H
#define SWITCHBOARD_CONSOLE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <wchar.h>

#include <curses.h>

#include "switchboard/command.h"
#include "switchboard/console.h"
#include "switchboard/console_backend.h"
#include "switchboard/router.h"
#include "switchboard/theme.h"
#include "switchboard/timeline.h"

#define UI_MAX_THEMES     16
#define UI_SPEND_SAMPLES  600 /* one a second: 10 minutes */
#define UI_FLASH_MS       3000
#define UI_MESSAGE_MS     8000
#define UI_CMD_TIMEOUT_MS 5000
#define UI_TREND_N        120  /* samples per target: 10 minutes... */
#define UI_TREND_STEP_MS  5000 /* ...one every 5 s */
#define CMP_MAX           4
#define CMP_ANSWER_CAP    ((size_t)256 * 1024)
#define CMP_HISTORY_MAX   50
#define CMP_VOTES_MAX     256 /* prompts whose vote the win rates count (oldest dropped) */

/* the console's timeline (events.c): both rings bounded, churn never evicts a key event */
#define UI_EVENTS_KEY_KEEP   1000 /* breaker, operator, config, budget, guard, probe events */
#define UI_EVENTS_CHURN_KEEP 4000 /* per-call churn lines (aggregated, updated in place) */

/* ---- keys ----------------------------------------------------------------------------------- */

/* Where a key applies. */
enum {
    CTX_BOARD = 1u << 0,   /* board, targets focused */
    CTX_EVENTS = 1u << 1,  /* board, events focused */
    CTX_DETAIL = 1u << 2,  /* detail view */
    CTX_COMPARE = 1u << 3, /* prompt pane, any field */
    CTX_ANSWERS = 1u << 4, /* prompt pane, answers focused (letters are keys, not text) */
};
#define CTX_VIEWS (CTX_BOARD | CTX_EVENTS | CTX_DETAIL)
#define CTX_ALL   (CTX_VIEWS | CTX_COMPARE | CTX_ANSWERS)

struct key_binding {
    wint_t code;
    bool fn;
    const char *label;
    const char *action; /* a console action (keys.c) or a command name (command.h) */
    unsigned ctx;
    const char *bar; /* label in the key bar; NULL: help only */
};

struct ui_key {
    bool fn;     /* a KEY_* code (get_wch returned KEY_CODE_YES) */
    wint_t code; /* character or KEY_* */
};

/* ---- editing -------------------------------------------------------------------------------- */

struct line_edit {
    char text[512];  /* UTF-8 */
    size_t len, cur; /* bytes; cur on a character boundary */
};

struct text_edit {
    struct buf text; /* UTF-8, '\n' between lines */
    size_t cur;      /* byte offset */
    int top;         /* first visible line */
};

/* ---- the prompt pane ------------------------------------------------------------------------ */

enum cmp_col_state { CMP_WAITING, CMP_STREAMING, CMP_DONE, CMP_FAILED };

/* One answer column. Shared with the router thread (the call's sink): every field below
 * `mu` is guarded by it. Freed when both owners (the UI and the call) let go. */
struct cmp_col {
    pthread_mutex_t mu;
    int refs;
    char target[64];
    char model[96];
    char request_id[64]; /* the call's own x-request-id; set before the call, never changed */
    enum cmp_col_state state;
    struct buf text;
    bool capped; /* answer passed CMP_ANSWER_CAP: cut */
    uint64_t call_id;
    int64_t started_us, first_us;
    /* from on_done */
    enum llm_errclass err;
    char error[256];
    struct llm_usage usage;
    double cost_usd;
    int64_t latency_us, ttft_us;
    enum llm_finish finish;
};

/* A copy of a column for drawing and saving (main thread only). */
struct cmp_view {
    char target[64];
    char model[96];
    char request_id[64];
    enum cmp_col_state state;
    struct buf text;
    bool capped;
    enum llm_errclass err;
    char error[256];
    struct llm_usage usage;
    double cost_usd;
    int64_t latency_us, ttft_us, elapsed_us;
    enum llm_finish finish;
};

enum cmp_focus {
    CMP_FOCUS_PROMPT,
    CMP_FOCUS_SYSTEM,
    CMP_FOCUS_MAXTOK,
    CMP_FOCUS_TARGETS,
    CMP_FOCUS_ANSWERS
};

/* The vote on one prompt (by its hash, as the ledger stores it): a later vote on the same
 * prompt replaces it, so win rates count each prompt once. */
struct cmp_vote_rec {
    uint64_t hash;
    char names[CMP_MAX][64];
    size_t n;
    int winner; /* index into names */
};

struct compare {
    enum cmp_focus focus;
    struct text_edit prompt;
    struct line_edit system;
    struct line_edit max_tokens;
    char picked[CMP_MAX][64]; /* targets chosen for the next send */
    size_t n_picked;
    bool picked_init;
    int target_cursor;
    /* the comparison on screen */
    struct cmp_col *cols[CMP_MAX];
    size_t n_cols;
    char *sent_prompt, *sent_system;
    long sent_max_tokens;
    int64_t sent_wall_ms;
    int vote; /* -1 none; else the column */
    int scroll;
    char saved_path[512];
    /* history of sent prompts, oldest first */
    char *history[CMP_HISTORY_MAX];
    size_t n_history;
    size_t hist_pos;                          /* == n_history when not browsing */
    unsigned sends;                           /* comparisons sent: part of each call's request id */
    struct cmp_vote_rec votes[CMP_VOTES_MAX]; /* oldest first */
    size_t n_votes;
};

/* ---- the console ---------------------------------------------------------------------------- */

enum ui_view { VIEW_BOARD, VIEW_DETAIL, VIEW_COMPARE };
enum ui_modal { MODAL_NONE, MODAL_HELP, MODAL_CONFIRM, MODAL_INPUT, MODAL_POPUP };
enum ui_input { INPUT_COMMAND, INPUT_FILTER, INPUT_WEIGHT, INPUT_EVENT_SEARCH };
enum ui_focus { FOCUS_TARGETS, FOCUS_EVENTS };

struct ui_row_mem { /* change highlighting (htop) */
    char name[64];
    char state[32];
    int64_t flash_until; /* monotonic ms */
};

struct ui_trend { /* watch.c: a target's recent error rate and p95, a ring */
    char name[64];
    double err[UI_TREND_N]; /* % over 10 s */
    double p95[UI_TREND_N]; /* ms over 1 minute; 0 without traffic */
    size_t n, next;
};

struct ui_probe_watch { /* watch.c: an operator's probe, until its result shows */
    bool sent;          /* asked; the verdict has not come back yet */
    bool active;        /* the router took it: waiting for the probe count to move */
    char target[64];
    uint64_t probes; /* the target's probe count when it was asked */
    enum breaker_state breaker;
    int64_t until_ms;
};

struct ui_vote {
    char name[64];
    unsigned wins, comparisons;
};

#define EVENTS_ALL (-1) /* ui_events.kind: every kind */
#define EVENTS_KEY (-2) /* ui_events.kind: key events only (not per-call churn) */

struct ui_events {
    struct timeline tl; /* UI_EVENTS_KEY_KEEP key + UI_EVENTS_CHURN_KEEP churn (owned) */
    uint64_t last_seq;
    int scroll;      /* matching lines up from the newest; 0: following */
    int kind;        /* EVENTS_ALL, EVENTS_KEY or an enum router_event_kind shown alone */
    char target[64]; /* "" every target */
    char search[64]; /* "" none; else lines containing it (case-insensitive) */
};

struct ui {
    struct console_backend *be;
    const struct console_opts *opts;
    struct router_snapshot *snap;   /* newest copy */
    bool stale[ROUTER_MAX_TARGETS]; /* per snapshot target: every instance with it unreachable */
    bool have_snap;
    struct console_instance inst[CONSOLE_MAX_INSTANCES]; /* refreshed every turn */
    size_t n_inst;
    bool attached;  /* the backend is not this process's router: q only detaches */
    int64_t now_ms; /* monotonic */
    bool utf8;
    bool quit;
    bool dirty;
    int cur_y, cur_x; /* where the terminal cursor goes after drawing; cur_y < 0: hidden */
    enum ui_view view;
    enum ui_modal modal;
    enum ui_focus focus;
    /* board */
    char selected[64];
    size_t visible[ROUTER_MAX_TARGETS]; /* snapshot indices in display order */
    size_t n_visible;
    int sel, top;
    int mouse_x, mouse_y; /* the last click, 0-based cells */
    int sort_col;         /* column id, -1 = problems first (or config order) */
    bool sort_desc;
    bool config_order; /* with sort_col -1: config order instead of problems first */
    bool faults_only;
    char filter[64];
    struct ui_row_mem mem[ROUTER_MAX_TARGETS];
    size_t n_mem;
    struct ui_events events;
    /* message line */
    char message[256];
    enum theme_elem message_elem;
    int64_t message_until;
    size_t pending;
    /* input line */
    enum ui_input input_kind;
    struct line_edit input;
    char input_prompt[160];
    char input_target[64];
    char hint[256];
    /* confirmation */
    struct router_cmd confirm_cmd;
    bool confirm_quit;       /* the y/n is the embedded console's quit question */
    char confirm_text[1024]; /* first line (ends "y/n") on the message line, the rest boxed */
    /* popup and help */
    char popup_title[96];
    char help_query[48]; /* the help's search ("" none) */
    bool help_typing;    /* typing the search */
    bool help_full;      /* the full reference instead of the cheat-sheet */
    struct buf popup_text;
    int popup_scroll;
    int detail_scroll;
    /* themes */
    struct theme themes[UI_MAX_THEMES];
    size_t n_themes, theme_idx;
    attr_t attr[THEME_ELEM_COUNT];
    /* spend, burn */
    struct {
        int64_t ms;
        double usd;
    } spend[UI_SPEND_SAMPLES];
    size_t spend_n, spend_next;
    int64_t spend_last_ms;
    /* watch.c */
    struct ui_trend trends[ROUTER_MAX_TARGETS];
    size_t n_trends;
    int64_t trend_last_ms;
    struct ui_probe_watch probe_watch;
    /* votes */
    struct ui_vote votes[ROUTER_MAX_TARGETS];
    size_t n_votes;
    struct compare cmp;
};

/* console.c */
void ui_message(struct ui *ui, enum theme_elem e, const char *fmt, ...) SB_PRINTF(3, 4);
const struct router_target_snap *ui_selected_target(const struct ui *ui);
void ui_rebuild_visible(struct ui *ui);
void ui_quit(struct ui *ui);

/* term.c */
enum sb_status term_start(char *msg, size_t msglen);
void term_stop(void);
void term_apply_theme(struct ui *ui);
/* NO_COLOR (set, not empty) leaves the mono theme only, unless the theme was asked for by
 * name on the command line (explicit): an explicit --theme wins. */
void term_load_themes(struct ui *ui, const char *wanted, bool explicit);

/* keys.c */
void keys_dispatch(struct ui *ui, struct ui_key k);
unsigned keys_context(const struct ui *ui);
void keys_draw_status(struct ui *ui, int y);
const struct key_binding *keys_bindings(size_t *n);
const char *keys_action_help(const char *name);

/* help.c */
void keys_help_text(struct buf *out);
void help_open(struct ui *ui);
bool help_key(struct ui *ui, struct ui_key k); /* false: close the help */
bool help_is_full(const struct ui *ui);
void help_draw(struct ui *ui); /* the cheat-sheet (console.c draws the full reference) */
void keys_run_action(struct ui *ui, const char *name);
void keys_router_command(struct ui *ui, const struct command_def *d, const char *target,
                         bool from_key);
/* Applies a parsed command: refused when read-only; from a key, y/n first if the command
 * asks for it; else handed to the worker (the verdict shows on the message line). */
void keys_submit(struct ui *ui, const struct command_def *d, const struct router_cmd *cmd,
                 bool from_key);
bool keys_may_change(struct ui *ui, const char *what);
bool keys_is_enter(struct ui_key k);
bool keys_is_escape(struct ui_key k);

/* board.c */
void board_draw(struct ui *ui);
bool board_unreachable_text(const struct ui *ui, char *out, size_t outlen);
void board_header(struct ui *ui, int y);
void board_move(struct ui *ui, int delta);
int board_table_rows(const struct ui *ui);
const char *board_state_text(const struct router_target_snap *t, char *out, size_t outlen,
                             enum theme_elem *elem);
bool board_is_fault(const struct router_target_snap *t);
/* No call started or in flight over the last minute: its ERR% and percentiles mean nothing. */
bool board_no_traffic(const struct router_target_snap *t);
double board_rate_10s(const double *series); /* mean of the last 10 of STATS_RATE_SECONDS */
int board_problem_rank(const struct router_target_snap *t); /* problems-first order */
void board_spend(struct ui *ui, struct console_spend *out);
double board_burn_per_hour(const struct ui *ui);
void board_note_spend(struct ui *ui);
const struct ui_vote *board_vote(const struct ui *ui, const char *name);

/* columns.c */
enum col_id {
    COL_NAME,
    COL_STATE,
    COL_OVR,
    COL_MODEL,
    COL_WEIGHT,
    COL_SHARE,
    COL_RPS,
    COL_RPS10, /* req/s over the last 10 s */
    COL_CALLS,
    COL_ERRS,
    COL_ERRPCT,
    COL_P50,
    COL_P95,
    COL_P99,
    COL_TTFT,
    COL_INFL,
    COL_TOKENS,
    COL_SPEND,
    COL_TRHG, /* truncated streams / hedges */
    COL_PROBE,
    COL_WIN,
    COL_SPARK,
    COL_NOTE,
};
#define COL_COUNT (COL_NOTE + 1)
const char *columns_title(enum col_id c);
bool columns_sortable(enum col_id c);
enum col_id columns_id(size_t place_col); /* console_place.col -> the column's id */
size_t columns_layout(const struct ui *ui, int width, struct console_place *out);
void columns_draw_titles(struct ui *ui, int y, const struct console_place *pl, size_t n);
void columns_draw_row(struct ui *ui, int y, const struct router_target_snap *t,
                      const struct console_place *pl, size_t n, attr_t base, attr_t name_attr,
                      bool dim);
int columns_compare(const struct ui *ui, enum col_id c, const struct router_target_snap *a,
                    const struct router_target_snap *b);

/* watch.c */
void watch_intake(struct ui *ui); /* every turn: probe results, trend samples */
void watch_probe_sent(struct ui *ui, const char *target);  /* P pressed (keys.c) */
void watch_probe_begin(struct ui *ui, const char *target); /* the router took it */
void watch_trend(const struct ui *ui, const char *name, bool p95, double *out); /* UI_TREND_N */
void watch_spark_text(const struct ui *ui, const double *series, size_t n, size_t cells, char *out,
                      size_t outlen);

/* sort.c */
/* < 0: a before b in the board's current order. */
int sort_compare(const struct ui *ui, const struct router_target_snap *a,
                 const struct router_target_snap *b);
void sort_label(const struct ui *ui, char *out, size_t n); /* "problems first", "sort ERR% v" */
void sort_by_column(struct ui *ui, enum col_id c);
void sort_toggle_problems(struct ui *ui);
void sort_announce(struct ui *ui); /* the order, on the message line */
/* After an ESC key: reads an SGR mouse report that follows (bounded wait) and acts on a
 * click; false (the keys handed back) when none follows. */
bool sort_mouse_report(struct ui *ui);
/* The actions of the keys below ("order", "sort-by-err", "mouse"): false when name is not
 * one of them. */
bool sort_action(struct ui *ui, const char *name);
const char *sort_action_help(const char *name); /* NULL when not one of them */

/* events.c */
void events_init(struct ui_events *ev);
void events_cleanup(struct ui_events *ev);
void events_intake(struct ui *ui, const struct router_snapshot *s);
void events_draw(struct ui *ui, int y, int h, const char *only_target);
void events_scroll(struct ui *ui, int delta);
bool events_match(const struct ui_events *ev, const struct router_event *e,
                  const char *only_target);
void events_follow(struct ui *ui);
void events_cycle_kind(struct ui *ui);
void events_key_only(struct ui *ui);
void events_toggle_target(struct ui *ui);
void events_set_search(struct ui *ui, const char *text);
void events_open_request(struct ui *ui); /* :req of the request id the pane's top line names */
enum sb_status events_export(struct ui *ui, char *path, size_t pathlen, char *err, size_t errlen);
enum theme_elem events_elem(enum router_event_kind k);

/* detail.c */
void detail_draw(struct ui *ui);

/* cmdline.c */
void cmdline_open(struct ui *ui, enum ui_input kind, const char *initial);
void cmdline_key(struct ui *ui, struct ui_key k);
void cmdline_draw(struct ui *ui, int y);
void cmdline_run(struct ui *ui, const char *line);
void confirm_open(struct ui *ui, const struct router_cmd *cmd, const char *question);
void confirm_key(struct ui *ui, struct ui_key k);

/* confirm.c: the y/n question of a key's command (force-live and reset name the breaker and
 * the probe, pin the routes that move and the cost, undo what it restores), and its drawing. */
void confirm_command(struct ui *ui, const struct command_def *d, const struct router_cmd *cmd);
void confirm_draw(struct ui *ui, int y);

/* editor.c */
void line_edit_set(struct line_edit *e, const char *s);
bool line_edit_key(struct line_edit *e, struct ui_key k); /* true when it used the key */
int line_edit_draw(struct ui *ui, const struct line_edit *e, int y, int x, int w, attr_t a);
void text_edit_init(struct text_edit *e);
void text_edit_cleanup(struct text_edit *e);
void text_edit_set(struct text_edit *e, const char *s);
bool text_edit_key(struct text_edit *e, struct ui_key k);
/* Draws the editor; when focused, *cy / *cx get the cursor's screen position. */
void text_edit_draw(struct ui *ui, struct text_edit *e, int y, int x, int h, int w, attr_t a,
                    bool focused, int *cy, int *cx);

/* compare.c */
void compare_init(struct compare *c);
void compare_cleanup(struct ui *ui, struct compare *c);
void compare_open(struct ui *ui);
void compare_send(struct ui *ui);
void compare_copy(struct compare *c, size_t i, struct cmp_view *out, int64_t now_us);
void compare_view_cleanup(struct cmp_view *v);
bool compare_busy(const struct compare *c);
void compare_vote(struct ui *ui, int col);
uint64_t compare_prompt_hash(const char *prompt); /* the hash votes are stored with */
void compare_save(struct ui *ui);
void compare_toggle_target(struct ui *ui, const char *name);
bool compare_is_picked(const struct compare *c, const char *name);
void compare_history(struct ui *ui, int dir);

/* compare_view.c */
void compare_draw(struct ui *ui);
bool compare_key(struct ui *ui, struct ui_key k); /* true when the pane used the key */

/* draw.c */
int draw_text(const struct ui *ui, int y, int x, int maxw, const char *s, attr_t a);
int draw_textn(const struct ui *ui, int y, int x, int maxw, const char *s, size_t len, attr_t a);
int draw_text_right(const struct ui *ui, int y, int x, int w, const char *s, attr_t a);
int draw_text_cut(const struct ui *ui, int y, int x, int maxw, const char *s, attr_t a);
void draw_fill(int y, int x, int w, attr_t a);
void draw_box(const struct ui *ui, int y, int x, int h, int w, attr_t a, const char *title);
int text_width(const char *s, size_t len);
size_t text_fit(const char *s, size_t len, int maxw, int *width); /* bytes that fit */
struct wrap_line {
    size_t start, len;
};
size_t text_wrap(const char *s, size_t len, int width, struct wrap_line *out, size_t max);
void fmt_ms(double ms, char *out, size_t n);
void fmt_us(int64_t us, char *out, size_t n);
void fmt_count(uint64_t v, char *out, size_t n);
/* The most precise form of v in at most maxw cells that keeps its unit: "528.9k", "529k". */
void fmt_count_fit(uint64_t v, int maxw, char *out, size_t n);
/* Calls per second in at most maxw cells: "0.4", "7012", "12.3k". */
void fmt_rate(double per_s, int maxw, char *out, size_t n);
void fmt_usd(double usd, char *out, size_t n);       /* short, for cells */
void fmt_usd_exact(double usd, char *out, size_t n); /* one call's cost */
void fmt_age(int64_t ms, char *out, size_t n);
void fmt_clock(int64_t wall_ms, char *out, size_t n, bool with_date);
void draw_spark(const struct ui *ui, int y, int x, int w, const double *series, size_t n, attr_t a);

#endif
