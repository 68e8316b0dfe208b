/*
 * theme.h - colour themes for the console (htop CRT_colorSchemes). Views name semantic
 * elements (THEME_BREAKER_OPEN), never colours or curses pairs; a theme maps every element
 * to a foreground, a background and attributes. Themes are JSON files (themes/NAME.json):
 *
 *   {"name": "dark", "colors": {"header": {"fg": "white", "bg": "blue", "attrs": ["bold"]},
 *                               "breaker_open": {"fg": "bright-red", "attrs": ["bold"]}, ...}}
 *
 * Colours: "default" (the terminal's own), black, red, green, yellow, blue, magenta, cyan,
 * white, bright-<name> (8..15), gray/grey (= bright-black), or a number 0..255 (xterm
 * palette). Attributes: bold, dim, reverse, underline, standout, italic. An element a theme
 * leaves out keeps the built-in default's style. Unknown elements, colours or attributes are
 * errors that name their JSON path; the console then keeps the default theme and says why.
 *
 * This module is pure (no curses): theme_color_for() degrades a colour to what the
 * terminal has (256 -> 16 -> 8 -> none); the console turns styles into curses pairs.
 * Threads: pure functions; any thread.
 */
#ifndef SWITCHBOARD_THEME_H
#define SWITCHBOARD_THEME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/util.h"

enum theme_elem {
    THEME_NORMAL,
    THEME_HEADER,
    THEME_HEADER_VALUE,
    THEME_TITLE, /* column titles */
    THEME_ROW,
    THEME_ROW_SELECTED,
    THEME_FLASH, /* a row whose state just changed */
    THEME_HEALTHY,
    THEME_DEGRADED,
    THEME_BREAKER_OPEN,
    THEME_BREAKER_HALF_OPEN,
    THEME_FORCED,
    THEME_PINNED,
    THEME_DRAINED,
    THEME_RATE_LIMITED,
    THEME_NO_KEY,
    THEME_SPARK,
    THEME_DIM,
    THEME_EVENT_TIME,
    THEME_EVENT_BREAKER,
    THEME_EVENT_WARN, /* rate limits, fallbacks, hedges, truncated streams, probe failures */
    THEME_EVENT_OPERATOR,
    THEME_EVENT_INFO, /* config reloads */
    THEME_ERROR,
    THEME_OK,
    THEME_STATUS_KEY,
    THEME_STATUS_TEXT,
    THEME_BORDER,
    THEME_POPUP,
    THEME_INPUT,
    THEME_WIN,
};
#define THEME_ELEM_COUNT (THEME_WIN + 1)

enum {
    THEME_ATTR_BOLD = 1u << 0,
    THEME_ATTR_DIM = 1u << 1,
    THEME_ATTR_REVERSE = 1u << 2,
    THEME_ATTR_UNDERLINE = 1u << 3,
    THEME_ATTR_STANDOUT = 1u << 4,
    THEME_ATTR_ITALIC = 1u << 5,
};

#define THEME_COLOR_DEFAULT (-1)

struct theme_style {
    int fg, bg;     /* THEME_COLOR_DEFAULT or 0..255 */
    unsigned attrs; /* THEME_ATTR_* */
};

struct theme {
    char name[48];
    struct theme_style el[THEME_ELEM_COUNT];
};

/* "breaker_open" etc. (the JSON key); NULL for an out-of-range value. */
const char *theme_elem_name(enum theme_elem e);

/* The compiled-in themes: "default" (what themes/default.json holds) and "mono" (attributes
 * only; NO_COLOR and terminals without colour). */
void theme_default(struct theme *out);
void theme_mono(struct theme *out);

/*
 * Parses a theme. Starts from theme_default, then applies every element the JSON names.
 * SB_OK, or SB_ERR_PARSE / SB_ERR_INVALID with err naming the path ("colors.header.fg:
 * unknown colour 'purplish'"); out is then the default theme. fallback_name names the theme
 * when the JSON has no "name" (e.g. the file's base name); may be NULL.
 */
enum sb_status theme_parse(const char *json, size_t len, const char *fallback_name,
                           struct theme *out, char *err, size_t errlen);
/* Reads and parses a file (its base name without .json names it by default). */
enum sb_status theme_load_file(const char *path, struct theme *out, char *err, size_t errlen);

/* A colour name or number -> 0..255 or THEME_COLOR_DEFAULT; false when unknown. */
bool theme_color_parse(const char *s, int *out);

/*
 * The colour to use on a terminal with `colors` colours: unchanged with 256; 16..255 mapped
 * to the nearest of the 16 (or 8) basic colours; bright 8..15 folded onto 0..7 with only 8;
 * THEME_COLOR_DEFAULT with fewer than 8 (no colour: attributes carry the meaning).
 */
int theme_color_for(int color, int colors);

/*
 * Finds the theme directory: $SWITCHBOARD_THEMES, ./themes, then beside the executable
 * (EXE/../share/switchboard/themes, EXE/../themes, EXE/../../themes), then
 * /usr/local/share/switchboard/themes and /usr/share/switchboard/themes. Returns false when
 * none exists.
 */
bool theme_find_dir(char *out, size_t outlen);

#endif
