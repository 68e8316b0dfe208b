/*
 * test_layout.c - which columns fit: console_layout (a pure function of width and columns)
 * and the board's own column table at 80 and 160 columns: columns drop by priority, nothing
 * overlaps, nothing passes the edge. Also the text helpers the views wrap and clip with.
 */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/console/internal.h"

static void expect_sane(const struct console_place *pl, size_t n, int width, int gap)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(pl[i].width > 0);
        assert_true(pl[i].x >= 0);
        assert_true(pl[i].x + pl[i].width <= width);
        if (i > 0) {
            assert_true(pl[i].col > pl[i - 1].col);                      /* table order */
            assert_true(pl[i].x >= pl[i - 1].x + pl[i - 1].width + gap); /* no overlap */
        }
    }
}

static bool placed(const struct console_place *pl, size_t n, size_t col)
{
    for (size_t i = 0; i < n; i++) {
        if (pl[i].col == col)
            return true;
    }
    return false;
}

static void test_layout_everything_fits_when_wide(void **state)
{
    (void)state;
    struct console_col cols[] = {{10, 0, false}, {5, 3, false}, {8, 1, false}, {4, 2, false}};
    struct console_place pl[4];
    size_t n = console_layout(200, cols, 4, 1, pl);
    assert_int_equal(n, 4);
    expect_sane(pl, n, 200, 1);
    assert_int_equal(pl[0].x, 0);
    assert_int_equal(pl[1].x, 11);
    assert_int_equal(pl[2].x, 17);
    assert_int_equal(pl[3].x, 26);
}

static void test_layout_drops_by_priority(void **state)
{
    (void)state;
    /* 10 + 8 + 1 gap = 19; the priority-2 column (4 + gap) fits in 24, the 3 does not. */
    struct console_col cols[] = {{10, 0, false}, {5, 3, false}, {8, 1, false}, {4, 2, false}};
    struct console_place pl[4];
    size_t n = console_layout(24, cols, 4, 1, pl);
    assert_int_equal(n, 3);
    expect_sane(pl, n, 24, 1);
    assert_true(placed(pl, n, 0));
    assert_false(placed(pl, n, 1));
    assert_true(placed(pl, n, 2));
    assert_true(placed(pl, n, 3));
    n = console_layout(19, cols, 4, 1, pl);
    assert_int_equal(n, 2);
    assert_false(placed(pl, n, 3));
}

static void test_layout_priority_zero_is_cut_not_dropped(void **state)
{
    (void)state;
    struct console_col cols[] = {{10, 0, false}, {10, 0, false}, {3, 1, false}};
    struct console_place pl[3];
    size_t n = console_layout(15, cols, 3, 1, pl);
    assert_int_equal(n, 2);
    expect_sane(pl, n, 15, 1);
    assert_int_equal(pl[1].x, 11);
    assert_int_equal(pl[1].width, 4);
    n = console_layout(8, cols, 3, 1, pl);
    assert_int_equal(n, 1);
    assert_int_equal(pl[0].width, 8);
    assert_int_equal(console_layout(0, cols, 3, 1, pl), 0);
}

static void test_layout_flex_takes_the_rest(void **state)
{
    (void)state;
    struct console_col cols[] = {{10, 0, false}, {6, 2, true}, {5, 1, false}};
    struct console_place pl[3];
    size_t n = console_layout(40, cols, 3, 1, pl);
    assert_int_equal(n, 3);
    expect_sane(pl, n, 40, 1);
    assert_int_equal(pl[1].width, 6 + (40 - (10 + 6 + 5 + 2)));
    assert_int_equal(pl[2].x + pl[2].width, 40);
}

static void test_layout_random_tables_never_overlap(void **state)
{
    (void)state;
    srand(42);
    for (int round = 0; round < 300; round++) {
        struct console_col cols[24];
        size_t n = (size_t)(1 + rand() % 24);
        for (size_t i = 0; i < n; i++)
            cols[i] = (struct console_col){1 + rand() % 20, rand() % 6, rand() % 8 == 0};
        for (int width = 1; width <= 220; width += 7) {
            struct console_place pl[24];
            size_t k = console_layout(width, cols, n, 1 + round % 2, pl);
            expect_sane(pl, k, width, 1 + round % 2);
        }
    }
}

/* ---- the board's table ------------------------------------------------------------------- */

static size_t board_layout(int width, struct console_place *pl)
{
    static struct ui ui; /* no snapshot: the name column gets its minimum width */
    memset(&ui, 0, sizeof ui);
    return columns_layout(&ui, width, pl);
}

static bool board_has(const struct console_place *pl, size_t n, enum col_id c)
{
    return placed(pl, n, (size_t)c);
}

static void test_layout_board_at_80_columns(void **state)
{
    (void)state;
    struct console_place pl[COL_COUNT];
    static struct ui ui;
    static struct router_snapshot snap; /* a demo-length name: "claude-premium" */
    memset(&ui, 0, sizeof ui);
    snap.n_targets = 1;
    strcpy(snap.targets[0].name, "claude-premium");
    ui.snap = &snap;
    ui.have_snap = true;
    size_t n = columns_layout(&ui, 80, pl);
    expect_sane(pl, n, 80, 1);
    /* What an incident needs stays (README: "at 80x24 you keep ..."); issue 15 adds the
     * 10-second rate (NOW) beside the minute's REQ/S. */
    enum col_id must[] = {COL_NAME, COL_STATE, COL_OVR,    COL_WEIGHT, COL_SHARE,
                          COL_RPS,  COL_RPS10, COL_ERRPCT, COL_P95,    COL_SPEND};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!board_has(pl, n, must[i]))
            fail_msg("column %s missing at 80 columns", columns_title(must[i]));
    }
    /* The nice-to-have goes. */
    assert_false(board_has(pl, n, COL_TOKENS));
    assert_false(board_has(pl, n, COL_TRHG));
    assert_false(board_has(pl, n, COL_NOTE));
    assert_false(board_has(pl, n, COL_MODEL));
}

static void test_layout_board_at_160_columns(void **state)
{
    (void)state;
    struct console_place pl[COL_COUNT];
    size_t n = board_layout(160, pl);
    expect_sane(pl, n, 160, 1);
    enum col_id must[] = {COL_NAME,  COL_STATE, COL_OVR,   COL_MODEL, COL_WEIGHT, COL_SHARE,
                          COL_RPS,   COL_RPS10, COL_CALLS, COL_ERRS,  COL_ERRPCT, COL_P50,
                          COL_P95,   COL_P99,   COL_TTFT,  COL_INFL,  COL_TOKENS, COL_SPEND,
                          COL_PROBE, COL_WIN,   COL_SPARK};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!board_has(pl, n, must[i]))
            fail_msg("column %s missing at 160 columns", columns_title(must[i]));
    }
    n = board_layout(170, pl); /* the lowest priority (TR/HG) returns a little wider */
    assert_true(board_has(pl, n, COL_TRHG));
}

static void test_layout_board_narrow_keeps_name_and_state(void **state)
{
    (void)state;
    struct console_place pl[COL_COUNT];
    for (int w = 1; w <= 240; w++) {
        size_t n = board_layout(w, pl);
        expect_sane(pl, n, w, 1);
        assert_true(n >= 1);
        assert_int_equal(pl[0].col, COL_NAME);
        if (w >= 20)
            assert_true(board_has(pl, n, COL_STATE));
    }
}

/* ---- text ---------------------------------------------------------------------------------- */

static void test_layout_text_width_counts_cells(void **state)
{
    (void)state;
    assert_int_equal(text_width("abc", 3), 3);
    assert_int_equal(text_width("naïve", strlen("naïve")), 5);
    assert_int_equal(text_width("日本語", strlen("日本語")), 6);
    int w;
    assert_int_equal(text_fit("日本語", strlen("日本語"), 5, &w), 6); /* two characters */
    assert_int_equal(w, 4);
}

static void test_layout_text_wraps_at_spaces(void **state)
{
    (void)state;
    const char *s = "the quick brown fox\njumps";
    struct wrap_line l[8];
    size_t n = text_wrap(s, strlen(s), 10, l, 8);
    assert_int_equal(n, 3);
    assert_int_equal(l[0].len, 9); /* "the quick" */
    assert_memory_equal(s + l[1].start, "brown fox", 9);
    assert_memory_equal(s + l[2].start, "jumps", 5);
    /* No space: a hard break; a character wider than the line still moves on. */
    n = text_wrap("abcdefgh", 8, 3, l, 8);
    assert_int_equal(n, 3);
    n = text_wrap("日本", strlen("日本"), 1, l, 8);
    assert_int_equal(n, 2);
    /* A trailing newline starts an empty line (the editor's cursor goes there). */
    n = text_wrap("a\n", 2, 10, l, 8);
    assert_int_equal(n, 2);
    assert_int_equal(l[1].len, 0);
}

int main(void)
{
    setlocale(LC_ALL, "C.UTF-8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_everything_fits_when_wide),
        cmocka_unit_test(test_layout_drops_by_priority),
        cmocka_unit_test(test_layout_priority_zero_is_cut_not_dropped),
        cmocka_unit_test(test_layout_flex_takes_the_rest),
        cmocka_unit_test(test_layout_random_tables_never_overlap),
        cmocka_unit_test(test_layout_board_at_80_columns),
        cmocka_unit_test(test_layout_board_at_160_columns),
        cmocka_unit_test(test_layout_board_narrow_keeps_name_and_state),
        cmocka_unit_test(test_layout_text_width_counts_cells),
        cmocka_unit_test(test_layout_text_wraps_at_spaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
