/*
 * layout.c - which columns fit: a pure function of (width, columns), so the 80-column rule
 * ("columns drop by priority, nothing overlaps") is unit-tested. Used for the board's table
 * and for the header's segments.
 */
#include <string.h>

#include "switchboard/console.h"

#define LAYOUT_MAX_COLS 64

size_t console_layout(int width, const struct console_col *cols, size_t n, int gap,
                      struct console_place *out)
{
    bool take[LAYOUT_MAX_COLS] = {false};
    if (n > LAYOUT_MAX_COLS)
        n = LAYOUT_MAX_COLS;
    if (width <= 0 || n == 0)
        return 0;
    int used = 0, count = 0;
    /* Priority-0 columns first, then each priority level in turn, in table order. */
    int max_prio = 0;
    for (size_t i = 0; i < n; i++)
        max_prio = cols[i].priority > max_prio ? cols[i].priority : max_prio;
    for (int p = 0; p <= max_prio; p++) {
        for (size_t i = 0; i < n; i++) {
            if (cols[i].priority != p || cols[i].width <= 0)
                continue;
            int need = cols[i].width + (count ? gap : 0);
            if (p == 0 || used + need <= width) {
                take[i] = true;
                used += need;
                count++;
            }
        }
    }
    /* Place in display order; cut what passes the edge (only priority-0 columns can). */
    int x = 0, extra = width - used > 0 ? width - used : 0;
    size_t k = 0;
    bool flex_seen = false;
    for (size_t i = 0; i < n; i++) {
        if (!take[i])
            continue;
        if (k)
            x += gap;
        if (x >= width)
            break;
        int w = cols[i].width;
        if (cols[i].flex && !flex_seen) {
            w += extra;
            flex_seen = true;
        }
        if (x + w > width)
            w = width - x;
        out[k++] = (struct console_place){.col = i, .x = x, .width = w};
        x += w;
    }
    return k;
}
