/*
 * test_undo.c - undo and the audit trail on a running router (real thread, real clock, short
 * expiries): undo previews what it restores; undo of a change that already expired says so
 * and does nothing; undo never brings back an override that lapsed meanwhile; a repeated
 * undo of one previewed change does nothing the second time; and every audit row in the
 * ledger (commands, undo, lapses of overrides and pins) has who, target, action, before ->
 * after and expiry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_tmp.h"
#include "switchboard/log.h"
#include "switchboard/router.h"

struct fixture {
    struct tmp_dir tmp; /* its path is the ledger file */
    struct router *rt;
    struct router_snapshot *snap;
};

static struct router *make_router(const char *ledger)
{
    char cfg_json[1024];
    snprintf(
        cfg_json, sizeof cfg_json,
        "{\"providers\":["
        " {\"name\":\"a\",\"kind\":\"openai-compatible\",\"base_url\":\"http://127.0.0.1:1/v1\","
        "  \"model\":\"m\",\"weight\":3,\"probe\":{\"enabled\":false}},"
        " {\"name\":\"b\",\"kind\":\"openai-compatible\",\"base_url\":\"http://127.0.0.1:1/v1\","
        "  \"model\":\"m\",\"probe\":{\"enabled\":false}}],"
        " \"routes\":[{\"name\":\"chat\",\"targets\":[\"a\",\"b\"]}],"
        " \"ledger\":{\"path\":\"%s\",\"batch_ms\":20}, \"guard\":{\"enabled\":false}}",
        ledger);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_parse(cfg_json, strlen(cfg_json), NULL, NULL, NULL, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "config: %s\n", errs.items[i]);
    assert_non_null(cfg);
    config_diag_cleanup(&errs);
    char msg[256];
    struct router *rt = router_new(cfg, msg, sizeof msg);
    assert_non_null(rt);
    assert_int_equal(router_start(rt, msg, sizeof msg), SB_OK);
    return rt;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    tmp_dir_make(&f->tmp);
    f->rt = make_router(f->tmp.path);
    f->snap = xcalloc(1, sizeof *f->snap);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->rt)
        router_free(f->rt);
    free(f->snap);
    tmp_dir_remove(&f->tmp);
    free(f);
    return 0;
}

static enum sb_status command(struct fixture *f, enum router_cmd_type type, const char *target,
                              double weight, int64_t expires_ms, uint64_t undo_id, char *msg)
{
    struct router_cmd cmd = {
        .type = type, .weight = weight, .expires_ms = expires_ms, .undo_id = undo_id};
    str_copy(cmd.target, sizeof cmd.target, target);
    str_copy(cmd.user, sizeof cmd.user, "oncall:alice");
    return router_command(f->rt, &cmd, msg, 256, 2000);
}

static const struct router_target_snap *snap_a(struct fixture *f)
{
    router_snapshot_read(f->rt, f->snap, 0);
    return &f->snap->targets[0];
}

/* Waits (bounded) until a's weight override lapsed. */
static void wait_weight_lapse(struct fixture *f)
{
    for (int i = 0; i < 100 && snap_a(f)->weight != 3; i++)
        clock_sleep_ms(20);
    assert_true(snap_a(f)->weight == 3);
}

static void test_undo_previews_what_it_restores(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(command(f, ROUTER_CMD_DRAIN, "a", 0, 0, 0, msg), SB_OK);
    router_snapshot_read(f->rt, f->snap, 0);
    const struct router_undo_snap *u = &f->snap->undo;
    assert_true(u->id != 0);
    assert_string_equal(u->target, "a");
    assert_string_equal(u->action, "drain");
    assert_string_equal(u->user, "oncall:alice");
    assert_false(u->lapsed);
    assert_string_equal(u->restores, "weight 3");
    assert_int_equal(u->depth, 1);
    uint64_t id = u->id;
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, id, msg), SB_OK);
    assert_false(snap_a(f)->drained);
    assert_int_equal(f->snap->undo.id, 0);
    /* the same preview again, with nothing left on the stack: still "already undone" */
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, id, msg), SB_ERR_STATE);
    assert_non_null(strstr(msg, "already undone"));
}

static void test_undo_of_an_expired_override_says_so_and_does_nothing(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(command(f, ROUTER_CMD_PIN, "b", 0, 0, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_SET_WEIGHT, "a", 0, 300, 0, msg), SB_OK);
    assert_true(snap_a(f)->weight == 0);
    wait_weight_lapse(f);
    router_snapshot_read(f->rt, f->snap, 0);
    assert_true(f->snap->undo.lapsed);
    assert_string_equal(f->snap->undo.action, "weight");
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, 0, msg), SB_ERR_STATE);
    assert_non_null(strstr(msg, "already expired"));
    assert_non_null(strstr(msg, "nothing done"));
    /* nothing changed: the weight is the configured one and b is still pinned */
    assert_true(snap_a(f)->weight == 3);
    assert_true(f->snap->targets[1].pinned);
    /* the lapsed change is off the stack: the next undo takes back the pin */
    assert_string_equal(f->snap->undo.action, "pin");
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, 0, msg), SB_OK);
    assert_false(snap_a(f)->pinned || f->snap->targets[1].pinned);
}

static void test_undo_never_brings_back_a_lapsed_override(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(command(f, ROUTER_CMD_SET_WEIGHT, "a", 0, 300, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_DRAIN, "a", 0, 0, 0, msg), SB_OK);
    wait_weight_lapse(f);
    router_snapshot_read(f->rt, f->snap, 0);
    assert_string_equal(f->snap->undo.restores, "weight 3"); /* not "weight 0 (override)" */
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, 0, msg), SB_OK);
    const struct router_target_snap *a = snap_a(f);
    assert_false(a->drained);
    assert_true(a->weight == 3);
    /* and it stays so past the next ticks (no re-applied override lapsing again) */
    clock_sleep_ms(250);
    assert_true(snap_a(f)->weight == 3);
}

static void test_a_repeated_undo_of_one_preview_does_nothing(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(command(f, ROUTER_CMD_PIN, "b", 0, 0, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_DRAIN, "a", 0, 0, 0, msg), SB_OK);
    router_snapshot_read(f->rt, f->snap, 0);
    uint64_t seen = f->snap->undo.id; /* the preview: drain a */
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, seen, msg), SB_OK);
    /* the same key press again, on the same preview */
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, seen, msg), SB_ERR_STATE);
    assert_non_null(strstr(msg, "already undone"));
    router_snapshot_read(f->rt, f->snap, 0);
    assert_true(f->snap->targets[1].pinned); /* the older pin was not undone */
    assert_string_equal(f->snap->undo.action, "pin");
}

/* ---- audit rows in the ledger ------------------------------------------------------------- */

static int count(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    else
        fprintf(stderr, "sql: %s: %s\n", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static void test_every_audit_row_has_every_field(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(command(f, ROUTER_CMD_FORCE_LIVE, "a", 0, 300, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_DRAIN, "b", 0, 0, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_UNDO, "", 0, 0, 0, msg), SB_OK);
    assert_int_equal(command(f, ROUTER_CMD_PIN, "b", 0, 300, 0, msg), SB_OK);
    for (int i = 0; i < 100 && (snap_a(f)->forced_live || f->snap->targets[1].pinned); i++)
        clock_sleep_ms(20);
    router_free(f->rt);
    f->rt = NULL;
    const char *db = f->tmp.path;
    assert_int_equal(count(db, "SELECT COUNT(*) FROM events WHERE kind='operator' AND"
                               " (user IS NULL OR action IS NULL OR target IS NULL OR"
                               "  state_before IS NULL OR state_after IS NULL)"),
                     0);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM events WHERE user='oncall:alice' AND"
                               " action='force-live' AND target='a' AND state_before='weight 3'"
                               " AND state_after='weight 3, forced live'"
                               " AND expires_ms BETWEEN ts_ms + 250 AND ts_ms + 350"),
                     1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM events WHERE user='oncall:alice' AND"
                               " action='undo drain' AND target='b' AND"
                               " state_before='weight 1, drained' AND state_after='weight 1'"
                               " AND expires_ms IS NULL"),
                     1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM events WHERE user='expiry' AND"
                               " action='force-live expired' AND target='a' AND"
                               " state_before='weight 3, forced live' AND state_after='weight 3'"),
                     1);
    assert_int_equal(count(db,
                           "SELECT COUNT(*) FROM events WHERE user='expiry' AND"
                           " action='pin expired' AND target='b' AND"
                           " state_before='weight 1, pinned on chat' AND state_after='weight 1'"),
                     1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM events WHERE text LIKE"
                               " 'oncall:alice: force-live a for % (until %Z): weight 3 ->%'"),
                     1);
}

int main(void)
{
    log_setup(LOG_LEVEL_OFF, -1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_undo_previews_what_it_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_of_an_expired_override_says_so_and_does_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_never_brings_back_a_lapsed_override, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_repeated_undo_of_one_preview_does_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_audit_row_has_every_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
