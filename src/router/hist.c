/*
 * hist.c - log-linear latency histograms and their time-windowed ring (see hist.h).
 *
 * Bucket index of v (us): v < 64 -> v; else with e = floor(log2 v) (>= 6),
 * index = (e - 5) * 32 + (v >> (e - 5)), which lies in [(e - 4) * 32, (e - 3) * 32).
 * So each octave holds 32 buckets of width 2^(e - 5).
 *
 * Threads: no state of its own; callers own every struct (router thread).
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "switchboard/hist.h"

#define SUB_COUNT  ((size_t)1 << HIST_SUB_BITS) /* 32 */
#define LINEAR_TOP ((size_t)2 << HIST_SUB_BITS) /* values below this have one bucket each */

static const int64_t prom_le_us[HIST_PROM_COUNT] = {
    5000,    10000,   25000,   50000,    100000,   250000,   500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, INT64_MAX,
};

static const char *const prom_le_labels[HIST_PROM_COUNT] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1",     "2.5",  "5",     "10",   "30",  "60",   "+Inf",
};

static int floor_log2(uint64_t v)
{
    return 63 - __builtin_clzll(v);
}

size_t hist_bucket_count(void)
{
    return HIST_BUCKETS;
}

size_t hist_bucket_index(int64_t value_us)
{
    if (value_us <= 0)
        return 0;
    if (value_us > HIST_MAX_US)
        return HIST_BUCKETS - 1;
    uint64_t v = (uint64_t)value_us;
    if (v < LINEAR_TOP)
        return (size_t)v;
    int shift = floor_log2(v) - HIST_SUB_BITS;
    return (size_t)shift * SUB_COUNT + (size_t)(v >> shift);
}

static int64_t bucket_width(size_t i)
{
    if (i < LINEAR_TOP)
        return 1;
    return INT64_C(1) << (i / SUB_COUNT - 1);
}

int64_t hist_bucket_lower_us(size_t i)
{
    if (i >= HIST_BUCKETS)
        i = HIST_BUCKETS - 1;
    if (i < LINEAR_TOP)
        return (int64_t)i;
    int64_t sub = (int64_t)(i % SUB_COUNT + SUB_COUNT);
    return sub * bucket_width(i);
}

int64_t hist_bucket_upper_us(size_t i)
{
    if (i >= HIST_BUCKETS)
        i = HIST_BUCKETS - 1;
    return hist_bucket_lower_us(i) + bucket_width(i) - 1;
}

uint64_t hist_bucket_value(const struct hist *h, size_t i)
{
    return i < HIST_BUCKETS ? h->counts[i] : 0;
}

int64_t hist_prom_le_us(size_t i)
{
    return i < HIST_PROM_COUNT ? prom_le_us[i] : INT64_MAX;
}

const char *hist_prom_le_label(size_t i)
{
    return i < HIST_PROM_COUNT ? prom_le_labels[i] : "+Inf";
}

static size_t prom_index(int64_t value_us)
{
    size_t i = 0;
    while (value_us > prom_le_us[i])
        i++;
    return i;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_us = INT64_MAX;
}

void hist_reset(struct hist *h)
{
    hist_init(h);
}

void hist_record(struct hist *h, int64_t value_us)
{
    if (value_us < 0)
        value_us = 0;
    h->counts[hist_bucket_index(value_us)]++;
    h->prom[prom_index(value_us)]++;
    h->count++;
    h->sum_us += (uint64_t)value_us;
    if (value_us < h->min_us)
        h->min_us = value_us;
    if (value_us > h->max_us)
        h->max_us = value_us;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    for (size_t i = 0; i < HIST_PROM_COUNT; i++)
        dst->prom[i] += src->prom[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

/* Value of the k-th (1-based) of c values in bucket i, assuming they spread evenly. */
static double bucket_interpolate(size_t i, uint64_t k, uint64_t c)
{
    int64_t width = bucket_width(i);
    double lower = (double)hist_bucket_lower_us(i);
    if (width == 1)
        return lower;
    return lower + (double)width * ((double)k - 0.5) / (double)c;
}

static double clamp_to_range(const struct hist *h, double v)
{
    if (v < (double)h->min_us)
        return (double)h->min_us;
    if (v > (double)h->max_us)
        return (double)h->max_us;
    return v;
}

double hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (!(q > 0)) /* also catches NaN */
        return (double)h->min_us;
    if (q >= 1)
        return (double)h->max_us;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        uint64_t c = h->counts[i];
        if (c == 0 || seen + c < rank) {
            seen += c;
            continue;
        }
        return clamp_to_range(h, bucket_interpolate(i, rank - seen, c));
    }
    return (double)h->max_us; /* not reached: the counts add up to count */
}

uint64_t hist_count(const struct hist *h)
{
    return h->count;
}

uint64_t hist_sum_us(const struct hist *h)
{
    return h->sum_us;
}

int64_t hist_max_us(const struct hist *h)
{
    return h->count ? h->max_us : 0;
}

int64_t hist_min_us(const struct hist *h)
{
    return h->count ? h->min_us : 0;
}

double hist_mean_us(const struct hist *h)
{
    return h->count ? (double)h->sum_us / (double)h->count : 0;
}

void hist_prom_cumulative(const struct hist *h, uint64_t out[HIST_PROM_COUNT])
{
    uint64_t acc = 0;
    for (size_t i = 0; i < HIST_PROM_COUNT; i++) {
        acc += h->prom[i];
        out[i] = acc;
    }
}

/* ---- Windowed ---------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void slot_clear(struct whist_slot *s, int64_t epoch)
{
    memset(s, 0, sizeof(*s));
    s->epoch = epoch;
    s->min_us = INT64_MAX;
}

void whist_init(struct whist *w, int64_t slot_ms, size_t n_slots)
{
    w->slot_ms = slot_ms < 1 ? 1 : slot_ms;
    if (n_slots < 1)
        n_slots = 1;
    w->n_slots = n_slots > WHIST_MAX_SLOTS ? WHIST_MAX_SLOTS : n_slots;
    whist_reset(w);
}

void whist_reset(struct whist *w)
{
    for (size_t i = 0; i < WHIST_MAX_SLOTS; i++)
        slot_clear(&w->slots[i], -1);
}

static struct whist_slot *slot_for(struct whist *w, int64_t epoch)
{
    int64_t n = (int64_t)w->n_slots;
    return &w->slots[(size_t)(((epoch % n) + n) % n)];
}

void whist_record(struct whist *w, int64_t now_ms, int64_t value_us)
{
    int64_t epoch = floor_div(now_ms, w->slot_ms);
    struct whist_slot *s = slot_for(w, epoch);
    if (s->epoch < epoch)
        slot_clear(s, epoch);
    if (value_us < 0)
        value_us = 0;
    s->counts[hist_bucket_index(value_us)]++;
    s->prom[prom_index(value_us)]++;
    s->count++;
    s->sum_us += (uint64_t)value_us;
    if (value_us < s->min_us)
        s->min_us = value_us;
    if (value_us > s->max_us)
        s->max_us = value_us;
}

static bool slot_is_live(const struct whist *w, const struct whist_slot *s, int64_t now_ms)
{
    int64_t cur = floor_div(now_ms, w->slot_ms);
    return s->epoch >= 0 && s->epoch <= cur && cur - s->epoch < (int64_t)w->n_slots;
}

static void slot_merge_into(const struct whist_slot *s, struct hist *out)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        out->counts[i] += s->counts[i];
    for (size_t i = 0; i < HIST_PROM_COUNT; i++)
        out->prom[i] += s->prom[i];
    out->count += s->count;
    out->sum_us += s->sum_us;
    if (s->min_us < out->min_us)
        out->min_us = s->min_us;
    if (s->max_us > out->max_us)
        out->max_us = s->max_us;
}

void whist_merge_into(const struct whist *w, int64_t now_ms, struct hist *out)
{
    for (size_t i = 0; i < w->n_slots; i++) {
        const struct whist_slot *s = &w->slots[i];
        if (s->count > 0 && slot_is_live(w, s, now_ms))
            slot_merge_into(s, out);
    }
}

void whist_quantiles(const struct whist *w, int64_t now_ms, const double *qs, double *out, size_t n)
{
    struct hist h;
    hist_init(&h);
    whist_merge_into(w, now_ms, &h);
    for (size_t i = 0; i < n; i++)
        out[i] = hist_quantile(&h, qs[i]);
}

double whist_quantile(const struct whist *w, int64_t now_ms, double q)
{
    double out;
    whist_quantiles(w, now_ms, &q, &out, 1);
    return out;
}

uint64_t whist_count(const struct whist *w, int64_t now_ms)
{
    uint64_t n = 0;
    for (size_t i = 0; i < w->n_slots; i++)
        if (slot_is_live(w, &w->slots[i], now_ms))
            n += w->slots[i].count;
    return n;
}

int64_t whist_window_ms(const struct whist *w)
{
    return w->slot_ms * (int64_t)w->n_slots;
}
