/*
 * test_theme.c - theme files and parsing: every shipped theme loads, default.json matches the
 * built-in default, a partial theme inherits the default, broken themes fall back to the
 * default with an error naming the JSON path, and colours degrade for 16/8-colour terminals.
 * Runs from the repository root (tests/run.sh does), where themes/ lives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "switchboard/theme.h"

static void expect_default(const struct theme *t)
{
    struct theme d;
    theme_default(&d);
    assert_memory_equal(t->el, d.el, sizeof d.el);
}

static void test_theme_shipped_themes_all_load(void **state)
{
    (void)state;
    const char *names[] = {"default", "dark", "light", "high-contrast", "mono"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128], err[300] = "";
        snprintf(path, sizeof path, "themes/%s.json", names[i]);
        struct theme t;
        enum sb_status st = theme_load_file(path, &t, err, sizeof err);
        if (st != SB_OK)
            fail_msg("%s: %s", path, err);
        assert_string_equal(t.name, names[i]);
    }
}

static void test_theme_default_json_matches_builtin(void **state)
{
    (void)state;
    struct theme t;
    char err[300];
    assert_int_equal(theme_load_file("themes/default.json", &t, err, sizeof err), SB_OK);
    expect_default(&t);
}

static void test_theme_mono_json_matches_builtin(void **state)
{
    (void)state;
    struct theme t, m;
    char err[300];
    assert_int_equal(theme_load_file("themes/mono.json", &t, err, sizeof err), SB_OK);
    theme_mono(&m);
    assert_memory_equal(t.el, m.el, sizeof m.el);
    for (size_t i = 0; i < THEME_ELEM_COUNT; i++) {
        assert_int_equal(m.el[i].fg, THEME_COLOR_DEFAULT);
        assert_int_equal(m.el[i].bg, THEME_COLOR_DEFAULT);
    }
}

static void test_theme_element_names_are_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < THEME_ELEM_COUNT; i++) {
        assert_non_null(theme_elem_name((enum theme_elem)i));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(theme_elem_name((enum theme_elem)i),
                                    theme_elem_name((enum theme_elem)j));
    }
    assert_null(theme_elem_name((enum theme_elem)THEME_ELEM_COUNT));
}

static void test_theme_partial_inherits_default(void **state)
{
    (void)state;
    const char *json = "{\"name\":\"mine\",\"colors\":{\"breaker_open\":"
                       "{\"fg\":\"bright-magenta\",\"bg\":17,\"attrs\":[\"bold\",\"underline\"]}}}";
    struct theme t, d;
    char err[300] = "";
    assert_int_equal(theme_parse(json, strlen(json), NULL, &t, err, sizeof err), SB_OK);
    assert_string_equal(t.name, "mine");
    assert_int_equal(t.el[THEME_BREAKER_OPEN].fg, 13);
    assert_int_equal(t.el[THEME_BREAKER_OPEN].bg, 17);
    assert_int_equal(t.el[THEME_BREAKER_OPEN].attrs, THEME_ATTR_BOLD | THEME_ATTR_UNDERLINE);
    theme_default(&d);
    assert_memory_equal(&t.el[THEME_HEADER], &d.el[THEME_HEADER], sizeof d.el[0]);
}

static void test_theme_name_falls_back_to_given(void **state)
{
    (void)state;
    const char *json = "{\"colors\":{}}";
    struct theme t;
    char err[300];
    assert_int_equal(theme_parse(json, strlen(json), "ocean", &t, err, sizeof err), SB_OK);
    assert_string_equal(t.name, "ocean");
}

static void expect_broken(const char *json, enum sb_status want, const char *needle)
{
    struct theme t;
    char err[300] = "";
    enum sb_status st = theme_parse(json, strlen(json), "x", &t, err, sizeof err);
    assert_int_equal(st, want);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    expect_default(&t); /* a broken theme never half-applies */
}

static void test_theme_broken_themes_fall_back_with_a_path(void **state)
{
    (void)state;
    expect_broken("{\"colors\": {", SB_ERR_PARSE, "malformed JSON");
    expect_broken("[]", SB_ERR_INVALID, "expected a JSON object");
    expect_broken("{\"colors\":{\"bogus\":{}}}", SB_ERR_INVALID, "colors.bogus: unknown element");
    expect_broken("{\"colors\":{\"header\":{\"fg\":\"purplish\"}}}", SB_ERR_INVALID,
                  "colors.header.fg: unknown colour 'purplish'");
    expect_broken("{\"colors\":{\"header\":{\"bg\":300}}}", SB_ERR_INVALID, "colors.header.bg");
    expect_broken("{\"colors\":{\"header\":{\"attrs\":[\"blinky\"]}}}", SB_ERR_INVALID,
                  "colors.header.attrs[0]: unknown attribute");
    expect_broken("{\"colors\":{\"header\":{\"fg\":\"red\",\"shade\":1}}}", SB_ERR_INVALID,
                  "colors.header.shade: unknown key");
    expect_broken("{\"colors\":{\"header\":\"red\"}}", SB_ERR_INVALID, "expected an object");
    expect_broken("{\"name\":\"\",\"colors\":{}}", SB_ERR_INVALID, "name:");
    expect_broken("{\"name\":\"x\"}", SB_ERR_INVALID, "colors:");
    expect_broken("{\"colours\":{}}", SB_ERR_INVALID, "colours: unknown key");
}

static void test_theme_missing_file_is_an_io_error(void **state)
{
    (void)state;
    struct theme t;
    char err[300] = "";
    assert_int_equal(theme_load_file("themes/no-such-theme.json", &t, err, sizeof err), SB_ERR_IO);
    assert_non_null(strstr(err, "no-such-theme.json"));
    expect_default(&t);
}

static void test_theme_color_names(void **state)
{
    (void)state;
    struct {
        const char *s;
        int c;
    } ok[] = {{"default", THEME_COLOR_DEFAULT},
              {"black", 0},
              {"red", 1},
              {"white", 7},
              {"bright-black", 8},
              {"gray", 8},
              {"grey", 8},
              {"bright-red", 9},
              {"bright_white", 15},
              {"0", 0},
              {"255", 255},
              {"color123", 123}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int c = -99;
        assert_true(theme_color_parse(ok[i].s, &c));
        assert_int_equal(c, ok[i].c);
    }
    const char *bad[] = {"", "256", "-1", "bright-", "bright-12", "reddish", "color", NULL};
    for (size_t i = 0; bad[i]; i++) {
        int c;
        assert_false(theme_color_parse(bad[i], &c));
    }
}

static void test_theme_colors_degrade(void **state)
{
    (void)state;
    /* 256 colours: unchanged. */
    assert_int_equal(theme_color_for(196, 256), 196);
    assert_int_equal(theme_color_for(THEME_COLOR_DEFAULT, 256), THEME_COLOR_DEFAULT);
    /* 16: the cube and greys map to the nearest basic colour, brights kept. */
    assert_int_equal(theme_color_for(9, 16), 9);
    assert_int_equal(theme_color_for(196, 16), 9);  /* bright red */
    assert_int_equal(theme_color_for(88, 16), 1);   /* dark red */
    assert_int_equal(theme_color_for(28, 16), 2);   /* green */
    assert_int_equal(theme_color_for(21, 16), 12);  /* bright blue */
    assert_int_equal(theme_color_for(232, 16), 0);  /* near black */
    assert_int_equal(theme_color_for(244, 16), 8);  /* grey */
    assert_int_equal(theme_color_for(255, 16), 15); /* near white */
    /* 8: brights fold down; a grey would vanish as black text, so it becomes the default. */
    assert_int_equal(theme_color_for(9, 8), 1);
    assert_int_equal(theme_color_for(8, 8), THEME_COLOR_DEFAULT);
    assert_int_equal(theme_color_for(196, 8), 1);
    assert_int_equal(theme_color_for(226, 8), 3); /* yellow */
    assert_int_equal(theme_color_for(51, 8), 6);  /* cyan */
    assert_int_equal(theme_color_for(201, 8), 5); /* magenta */
    assert_int_equal(theme_color_for(244, 8), THEME_COLOR_DEFAULT);
    assert_int_equal(theme_color_for(234, 8), 0);
    assert_int_equal(theme_color_for(254, 8), 7);
    /* No colour at all: attributes carry the meaning. */
    assert_int_equal(theme_color_for(1, 2), THEME_COLOR_DEFAULT);
    assert_int_equal(theme_color_for(1, 0), THEME_COLOR_DEFAULT);
}

static void test_theme_shipped_themes_use_every_element(void **state)
{
    (void)state;
    /* Each shipped file names every element, so a new element cannot be forgotten there. */
    const char *names[] = {"default", "dark", "light", "high-contrast", "mono"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[128], line[512];
        snprintf(path, sizeof path, "themes/%s.json", names[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char text[16384] = "";
        size_t len = 0;
        while (fgets(line, sizeof line, f) && len + strlen(line) < sizeof text - 1) {
            memcpy(text + len, line, strlen(line) + 1);
            len += strlen(line);
        }
        fclose(f);
        for (size_t e = 0; e < THEME_ELEM_COUNT; e++) {
            char key[64];
            snprintf(key, sizeof key, "\"%s\":", theme_elem_name((enum theme_elem)e));
            if (!strstr(text, key))
                fail_msg("%s does not set %s", path, key);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_theme_shipped_themes_all_load),
        cmocka_unit_test(test_theme_default_json_matches_builtin),
        cmocka_unit_test(test_theme_mono_json_matches_builtin),
        cmocka_unit_test(test_theme_element_names_are_unique),
        cmocka_unit_test(test_theme_partial_inherits_default),
        cmocka_unit_test(test_theme_name_falls_back_to_given),
        cmocka_unit_test(test_theme_broken_themes_fall_back_with_a_path),
        cmocka_unit_test(test_theme_missing_file_is_an_io_error),
        cmocka_unit_test(test_theme_color_names),
        cmocka_unit_test(test_theme_colors_degrade),
        cmocka_unit_test(test_theme_shipped_themes_use_every_element),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
