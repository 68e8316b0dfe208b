/*
 * theme.c - theme parsing, the built-in default and mono themes, colour degradation for
 * 16- and 8-colour terminals, and the theme directory search (see theme.h).
 *
 * Pure except theme_load_file / theme_find_dir (file system reads). No state; any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "switchboard/theme.h"

#define THEME_MAX_BYTES ((size_t)256 * 1024)

static const char *const elem_names[THEME_ELEM_COUNT] = {
    [THEME_NORMAL] = "normal",
    [THEME_HEADER] = "header",
    [THEME_HEADER_VALUE] = "header_value",
    [THEME_TITLE] = "title",
    [THEME_ROW] = "row",
    [THEME_ROW_SELECTED] = "row_selected",
    [THEME_FLASH] = "flash",
    [THEME_HEALTHY] = "healthy",
    [THEME_DEGRADED] = "degraded",
    [THEME_BREAKER_OPEN] = "breaker_open",
    [THEME_BREAKER_HALF_OPEN] = "breaker_half_open",
    [THEME_FORCED] = "forced",
    [THEME_PINNED] = "pinned",
    [THEME_DRAINED] = "drained",
    [THEME_RATE_LIMITED] = "rate_limited",
    [THEME_NO_KEY] = "no_key",
    [THEME_SPARK] = "spark",
    [THEME_DIM] = "dim",
    [THEME_EVENT_TIME] = "event_time",
    [THEME_EVENT_BREAKER] = "event_breaker",
    [THEME_EVENT_WARN] = "event_warn",
    [THEME_EVENT_OPERATOR] = "event_operator",
    [THEME_EVENT_INFO] = "event_info",
    [THEME_ERROR] = "error",
    [THEME_OK] = "ok",
    [THEME_STATUS_KEY] = "status_key",
    [THEME_STATUS_TEXT] = "status_text",
    [THEME_BORDER] = "border",
    [THEME_POPUP] = "popup",
    [THEME_INPUT] = "input",
    [THEME_WIN] = "win",
};

const char *theme_elem_name(enum theme_elem e)
{
    return (unsigned)e < THEME_ELEM_COUNT ? elem_names[e] : NULL;
}

/* ---- built-in themes ------------------------------------------------------------------------ */

#define D       THEME_COLOR_DEFAULT
#define BOLD    THEME_ATTR_BOLD
#define DIM     THEME_ATTR_DIM
#define REVERSE THEME_ATTR_REVERSE

/* Keep in step with themes/default.json (a unit test compares them). */
static const struct theme_style default_styles[THEME_ELEM_COUNT] = {
    [THEME_NORMAL] = {D, D, 0},
    [THEME_HEADER] = {7, 4, 0},
    [THEME_HEADER_VALUE] = {15, 4, BOLD},
    [THEME_TITLE] = {0, 6, 0},
    [THEME_ROW] = {D, D, 0},
    [THEME_ROW_SELECTED] = {0, 7, 0},
    [THEME_FLASH] = {0, 3, BOLD},
    [THEME_HEALTHY] = {2, D, 0},
    [THEME_DEGRADED] = {3, D, 0},
    [THEME_BREAKER_OPEN] = {9, D, BOLD},
    [THEME_BREAKER_HALF_OPEN] = {3, D, BOLD},
    [THEME_FORCED] = {5, D, BOLD},
    [THEME_PINNED] = {6, D, BOLD},
    [THEME_DRAINED] = {D, D, DIM},
    [THEME_RATE_LIMITED] = {3, D, 0},
    [THEME_NO_KEY] = {1, D, DIM},
    [THEME_SPARK] = {6, D, 0},
    [THEME_DIM] = {D, D, DIM},
    [THEME_EVENT_TIME] = {D, D, DIM},
    [THEME_EVENT_BREAKER] = {9, D, BOLD},
    [THEME_EVENT_WARN] = {3, D, 0},
    [THEME_EVENT_OPERATOR] = {5, D, 0},
    [THEME_EVENT_INFO] = {6, D, 0},
    [THEME_ERROR] = {15, 1, BOLD},
    [THEME_OK] = {2, D, BOLD},
    [THEME_STATUS_KEY] = {0, 6, 0},
    [THEME_STATUS_TEXT] = {D, D, 0},
    [THEME_BORDER] = {4, D, 0},
    [THEME_POPUP] = {D, D, 0},
    [THEME_INPUT] = {0, 7, 0},
    [THEME_WIN] = {2, D, BOLD},
};

void theme_default(struct theme *out)
{
    memset(out, 0, sizeof *out);
    str_copy(out->name, sizeof out->name, "default");
    memcpy(out->el, default_styles, sizeof out->el);
}

void theme_mono(struct theme *out)
{
    memset(out, 0, sizeof *out);
    str_copy(out->name, sizeof out->name, "mono");
    for (size_t i = 0; i < THEME_ELEM_COUNT; i++)
        out->el[i] = (struct theme_style){D, D, 0};
    static const struct {
        enum theme_elem e;
        unsigned attrs;
    } marks[] = {
        {THEME_HEADER, REVERSE},
        {THEME_HEADER_VALUE, REVERSE | BOLD},
        {THEME_TITLE, REVERSE},
        {THEME_ROW_SELECTED, REVERSE},
        {THEME_FLASH, BOLD | THEME_ATTR_UNDERLINE},
        {THEME_BREAKER_OPEN, BOLD},
        {THEME_BREAKER_HALF_OPEN, BOLD},
        {THEME_FORCED, BOLD},
        {THEME_PINNED, BOLD},
        {THEME_DRAINED, DIM},
        {THEME_NO_KEY, DIM},
        {THEME_DIM, DIM},
        {THEME_EVENT_TIME, DIM},
        {THEME_EVENT_BREAKER, BOLD},
        {THEME_ERROR, REVERSE | BOLD},
        {THEME_OK, BOLD},
        {THEME_STATUS_KEY, REVERSE},
        {THEME_INPUT, REVERSE},
        {THEME_WIN, BOLD},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(marks); i++)
        out->el[marks[i].e].attrs = marks[i].attrs;
}

#undef D
#undef BOLD
#undef DIM
#undef REVERSE

/* ---- colours -------------------------------------------------------------------------------- */

static const char *const basic_names[8] = {"black", "red",     "green", "yellow",
                                           "blue",  "magenta", "cyan",  "white"};

bool theme_color_parse(const char *s, int *out)
{
    if (!s)
        return false;
    if (str_eq(s, "default") || str_eq(s, "none")) {
        *out = THEME_COLOR_DEFAULT;
        return true;
    }
    if (str_eq(s, "gray") || str_eq(s, "grey")) {
        *out = 8;
        return true;
    }
    bool bright = false;
    if (str_has_prefix(s, "bright-") || str_has_prefix(s, "bright_")) {
        bright = true;
        s += 7;
    }
    for (int i = 0; i < 8; i++) {
        if (str_eq(s, basic_names[i])) {
            *out = i + (bright ? 8 : 0);
            return true;
        }
    }
    if (bright)
        return false;
    long n;
    if (str_has_prefix(s, "color"))
        s += 5;
    if (str_to_long(s, &n) && n >= 0 && n <= 255) {
        *out = (int)n;
        return true;
    }
    return false;
}

/* xterm's palette for 16..255 as RGB. */
static void color_rgb(int c, int rgb[3])
{
    static const int cube[6] = {0, 95, 135, 175, 215, 255};
    if (c >= 232) {
        int v = 8 + 10 * (c - 232);
        rgb[0] = rgb[1] = rgb[2] = v;
        return;
    }
    c -= 16;
    rgb[0] = cube[c / 36];
    rgb[1] = cube[(c / 6) % 6];
    rgb[2] = cube[c % 6];
}

/* Nearest basic colour (0..7, or 0..15 when sixteen) by which channels are lit. */
static int nearest_basic(int c, bool sixteen)
{
    int rgb[3];
    color_rgb(c, rgb);
    int hi = rgb[0], lo = rgb[0];
    for (int i = 1; i < 3; i++) {
        hi = rgb[i] > hi ? rgb[i] : hi;
        lo = rgb[i] < lo ? rgb[i] : lo;
    }
    if (hi - lo < 40) { /* a grey */
        if (hi < 60)
            return 0;
        if (!sixteen)
            return hi > 200 ? 7 : THEME_COLOR_DEFAULT;
        return hi < 160 ? 8 : (hi < 220 ? 7 : 15);
    }
    int bits = 0;
    for (int i = 0; i < 3; i++) {
        if (rgb[i] > lo + (hi - lo) / 2)
            bits |= 1 << i;
    }
    return bits + (sixteen && hi > 200 ? 8 : 0);
}

int theme_color_for(int color, int colors)
{
    if (color < 0 || colors < 8)
        return THEME_COLOR_DEFAULT;
    if (colors >= 256)
        return color;
    if (color < 8)
        return color;
    if (color < 16) {
        if (colors >= 16)
            return color;
        return color == 8 ? THEME_COLOR_DEFAULT : color - 8; /* gray would be black */
    }
    return nearest_basic(color, colors >= 16);
}

/* ---- parsing -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} attr_names[] = {
    {"bold", THEME_ATTR_BOLD},         {"dim", THEME_ATTR_DIM},
    {"reverse", THEME_ATTR_REVERSE},   {"underline", THEME_ATTR_UNDERLINE},
    {"standout", THEME_ATTR_STANDOUT}, {"italic", THEME_ATTR_ITALIC},
};

static bool parse_color_item(const cJSON *v, const char *path, const char *key, int *out, char *err,
                             size_t errlen)
{
    if (!v)
        return true;
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 255 &&
        v->valuedouble == (double)(int)v->valuedouble) {
        *out = (int)v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v) && theme_color_parse(v->valuestring, out))
        return true;
    if (cJSON_IsString(v))
        snprintf(err, errlen,
                 "%s.%s: unknown colour '%s' (use default, a name like red or bright-blue, "
                 "or 0..255)",
                 path, key, v->valuestring);
    else
        snprintf(err, errlen, "%s.%s: expected a colour name or a number 0..255", path, key);
    return false;
}

static bool parse_attrs(const cJSON *v, const char *path, unsigned *out, char *err, size_t errlen)
{
    if (!v)
        return true;
    if (!cJSON_IsArray(v)) {
        snprintf(err, errlen, "%s.attrs: expected an array of names", path);
        return false;
    }
    unsigned bits = 0;
    int i = 0;
    for (const cJSON *a = v->child; a; a = a->next, i++) {
        size_t k = 0;
        while (k < SB_ARRAY_LEN(attr_names) &&
               !(cJSON_IsString(a) && str_eq(a->valuestring, attr_names[k].name)))
            k++;
        if (k == SB_ARRAY_LEN(attr_names)) {
            snprintf(err, errlen,
                     "%s.attrs[%d]: unknown attribute (use bold, dim, reverse, underline, "
                     "standout, italic)",
                     path, i);
            return false;
        }
        bits |= attr_names[k].bit;
    }
    *out = bits;
    return true;
}

static bool parse_element(const cJSON *item, struct theme *t, char *err, size_t errlen)
{
    size_t e = 0;
    while (e < THEME_ELEM_COUNT && !str_eq(elem_names[e], item->string))
        e++;
    char path[96];
    snprintf(path, sizeof path, "colors.%s", item->string);
    if (e == THEME_ELEM_COUNT) {
        snprintf(err, errlen, "%s: unknown element (see theme.h for the names)", path);
        return false;
    }
    if (!cJSON_IsObject(item)) {
        snprintf(err, errlen, "%s: expected an object {fg, bg, attrs}", path);
        return false;
    }
    for (const cJSON *k = item->child; k; k = k->next) {
        if (!str_eq(k->string, "fg") && !str_eq(k->string, "bg") && !str_eq(k->string, "attrs")) {
            snprintf(err, errlen, "%s.%s: unknown key (fg, bg, attrs)", path, k->string);
            return false;
        }
    }
    struct theme_style st = {THEME_COLOR_DEFAULT, THEME_COLOR_DEFAULT, 0};
    if (!parse_color_item(cJSON_GetObjectItemCaseSensitive(item, "fg"), path, "fg", &st.fg, err,
                          errlen) ||
        !parse_color_item(cJSON_GetObjectItemCaseSensitive(item, "bg"), path, "bg", &st.bg, err,
                          errlen) ||
        !parse_attrs(cJSON_GetObjectItemCaseSensitive(item, "attrs"), path, &st.attrs, err, errlen))
        return false;
    t->el[e] = st;
    return true;
}

static bool parse_root(const cJSON *root, const char *fallback_name, struct theme *t, char *err,
                       size_t errlen)
{
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "expected a JSON object with \"name\" and \"colors\"");
        return false;
    }
    for (const cJSON *k = root->child; k; k = k->next) {
        if (!str_eq(k->string, "name") && !str_eq(k->string, "colors") &&
            !str_eq(k->string, "description")) {
            snprintf(err, errlen, "%s: unknown key (name, description, colors)", k->string);
            return false;
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name && (!cJSON_IsString(name) || !*name->valuestring)) {
        snprintf(err, errlen, "name: expected a non-empty string");
        return false;
    }
    str_copy(t->name, sizeof t->name,
             name ? name->valuestring : (fallback_name ? fallback_name : "unnamed"));
    const cJSON *colors = cJSON_GetObjectItemCaseSensitive(root, "colors");
    if (!cJSON_IsObject(colors)) {
        snprintf(err, errlen, "colors: expected an object of elements");
        return false;
    }
    for (const cJSON *item = colors->child; item; item = item->next) {
        if (!parse_element(item, t, err, errlen))
            return false;
    }
    return true;
}

enum sb_status theme_parse(const char *json, size_t len, const char *fallback_name,
                           struct theme *out, char *err, size_t errlen)
{
    theme_default(out);
    struct theme t = *out;
    cJSON *root = cJSON_ParseWithLength(json, len);
    enum sb_status st = SB_OK;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        snprintf(err, errlen, "malformed JSON near byte %ld", off);
        st = SB_ERR_PARSE;
        goto out;
    }
    if (!parse_root(root, fallback_name, &t, err, errlen)) {
        st = SB_ERR_INVALID;
        goto out;
    }
    *out = t;
out:
    cJSON_Delete(root);
    return st;
}

enum sb_status theme_load_file(const char *path, struct theme *out, char *err, size_t errlen)
{
    theme_default(out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SB_ERR_IO;
    }
    struct buf b;
    buf_init(&b);
    char chunk[4096];
    size_t n;
    enum sb_status st = SB_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(&b, chunk, n);
        if (b.len > THEME_MAX_BYTES) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, THEME_MAX_BYTES);
            st = SB_ERR_LIMIT;
            goto out;
        }
    }
    char base[48];
    const char *slash = strrchr(path, '/');
    str_copy(base, sizeof base, slash ? slash + 1 : path);
    char *dot = strrchr(base, '.');
    if (dot && str_eq(dot, ".json"))
        *dot = '\0';
    char inner[200];
    st = theme_parse(buf_str(&b), b.len, base, out, inner, sizeof inner);
    if (st != SB_OK)
        snprintf(err, errlen, "%s: %s", path, inner);
out:
    fclose(f);
    buf_cleanup(&b);
    return st;
}

/* ---- where themes live ---------------------------------------------------------------------- */

static bool is_dir(const char *p)
{
    struct stat sb;
    return p && *p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool theme_find_dir(char *out, size_t outlen)
{
    const char *env = getenv("SWITCHBOARD_THEMES");
    if (is_dir(env)) {
        str_copy(out, outlen, env);
        return true;
    }
    if (is_dir("themes")) {
        str_copy(out, outlen, "themes");
        return true;
    }
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        static const char *const rel[] = {"/../share/switchboard/themes", "/../themes",
                                          "/../../themes"};
        for (size_t i = 0; i < SB_ARRAY_LEN(rel); i++) {
            char *p = xasprintf("%s%s", exe, rel[i]);
            bool ok = is_dir(p);
            if (ok)
                str_copy(out, outlen, p);
            free(p);
            if (ok)
                return true;
        }
    }
    static const char *const sys[] = {"/usr/local/share/switchboard/themes",
                                      "/usr/share/switchboard/themes"};
    for (size_t i = 0; i < SB_ARRAY_LEN(sys); i++) {
        if (is_dir(sys[i])) {
            str_copy(out, outlen, sys[i]);
            return true;
        }
    }
    return false;
}
