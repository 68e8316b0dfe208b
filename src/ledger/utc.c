/*
 * utc.c - the ledger's calendar: UTC day and month boundaries, dates as text, and the
 * `report --since` syntax. Proleptic Gregorian arithmetic on day numbers (H. Hinnant's
 * days_from_civil / civil_from_days), so nothing depends on the process's time zone or on
 * timegm. Pure; any thread.
 */
#include <stdio.h>
#include <string.h>

#include "switchboard/ledger.h"

#define DAY_MS 86400000LL

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int64_t ledger_day_start(int64_t wall_ms)
{
    return floor_div(wall_ms, DAY_MS) * DAY_MS;
}

int64_t ledger_month_start(int64_t wall_ms)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(wall_ms, DAY_MS), &y, &m, &d);
    return days_from_civil(y, m, 1) * DAY_MS;
}

int64_t ledger_next_month_start(int64_t wall_ms)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(wall_ms, DAY_MS), &y, &m, &d);
    if (++m > 12) {
        m = 1;
        y++;
    }
    return days_from_civil(y, m, 1) * DAY_MS;
}

void ledger_format_date(int64_t wall_ms, char out[11])
{
    int64_t y;
    int m, d;
    char tmp[48];
    civil_from_days(floor_div(wall_ms, DAY_MS), &y, &m, &d);
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (int)(y % 10000), m, d);
    str_copy(out, 11, tmp);
}

void ledger_format_time(int64_t wall_ms, char out[21])
{
    char date[11], tmp[64];
    ledger_format_date(wall_ms, date);
    int64_t ms = wall_ms - ledger_day_start(wall_ms);
    int s = (int)(ms / 1000);
    snprintf(tmp, sizeof tmp, "%sT%02d:%02d:%02dZ", date, s / 3600, s / 60 % 60, s % 60);
    str_copy(out, 21, tmp);
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool parse_datetime(const char *s, int64_t *out_ms)
{
    int y, m, d, hh = 0, mi = 0, ss = 0;
    const char *p = s;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &m) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &hh) || *p++ != ':' || !digits(&p, 2, &mi))
            return false;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &ss))
                return false;
        }
        if (*p == 'Z')
            p++;
        if (hh > 23 || mi > 59 || ss > 59)
            return false;
    }
    if (*p != '\0')
        return false;
    *out_ms = days_from_civil(y, m, d) * DAY_MS + ((hh * 60 + mi) * 60 + ss) * 1000LL;
    return true;
}

bool ledger_parse_since(const char *s, int64_t now_wall_ms, int64_t *out_ms)
{
    if (!s || !*s)
        return false;
    size_t n = strlen(s);
    if (n >= 5 && s[4] == '-')
        return parse_datetime(s, out_ms);
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', DAY_MS}, {'w', 7 * DAY_MS}};
    char unit = s[n - 1];
    int64_t count = 0;
    if (n < 2 || n > 10)
        return false;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        count = count * 10 + (s[i] - '0');
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(units); i++) {
        if (units[i].unit == unit) {
            *out_ms = now_wall_ms - count * units[i].ms;
            return true;
        }
    }
    return false;
}
