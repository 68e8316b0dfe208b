/*
 * hist.h - latency histograms: fixed memory, no allocation, bounded relative error.
 *
 * Layout (HDR-style log-linear): values 0..63 us have one bucket each; above that, each
 * power-of-two range [2^e, 2^(e+1)) is cut into 32 equal buckets, so a bucket is at most
 * 1/32 (3.1%) of its lower bound wide. Quantiles interpolate inside the bucket, so their error
 * is under 3.1% of the true value (typically < 1%). Buckets go up to 2^30 - 1 us (17.9 min);
 * larger values land in the last bucket (count, sum and max stay exact).
 *
 * struct hist: cumulative (lifetime or caller-reset), 64-bit counts, plus exact counts for
 * the standard Prometheus boundaries (HIST_PROM_*), so /metrics output is exact.
 * struct whist: a ring of per-interval slots (e.g. 12 x 5 s = 1 minute, 12 x 25 s = 5
 * minutes). Queries merge the slots of the window that ends at now_ms; slots are recycled
 * by their interval number, so no rotation call is needed and time may jump ahead freely.
 *
 * All values are microseconds. Every struct here is plain data (no pointers): it can be
 * memcpy'd. Threads: owned by the router thread; not thread-safe.
 */
#ifndef SWITCHBOARD_HIST_H
#define SWITCHBOARD_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS   5                                   /* 32 buckets per octave */
#define HIST_BUCKETS    832                                 /* (29 - 5) * 32 + 64 */
#define HIST_MAX_US     ((int64_t)((INT64_C(1) << 30) - 1)) /* last bucket's upper bound */
#define HIST_PROM_COUNT 14 /* 13 standard boundaries (5 ms .. 60 s) and +Inf */

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t prom[HIST_PROM_COUNT]; /* per Prometheus bucket, NOT cumulative */
    uint64_t count;
    uint64_t sum_us;
    int64_t min_us; /* INT64_MAX while empty */
    int64_t max_us; /* 0 while empty */
};

/* Empties h (init and reset are the same operation). */
void hist_init(struct hist *h);
void hist_reset(struct hist *h);
/* Adds one value; negative values count as 0. O(1) but for a 13-step boundary scan. */
void hist_record(struct hist *h, int64_t value_us);
/* Adds every value of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/*
 * The q-quantile (q in [0, 1], clamped) in us: the value with rank ceil(q * count),
 * interpolated inside its bucket and clamped to [min, max]. q = 0 gives min, q = 1 max.
 * An empty histogram gives 0.
 */
double hist_quantile(const struct hist *h, double q);
uint64_t hist_count(const struct hist *h);
uint64_t hist_sum_us(const struct hist *h);
int64_t hist_max_us(const struct hist *h); /* 0 when empty */
int64_t hist_min_us(const struct hist *h); /* 0 when empty */
double hist_mean_us(const struct hist *h); /* 0 when empty */

/* Bucket iteration: bucket i holds the integers lower..upper (both inclusive). */
size_t hist_bucket_count(void); /* HIST_BUCKETS */
size_t hist_bucket_index(int64_t value_us);
int64_t hist_bucket_lower_us(size_t i);
int64_t hist_bucket_upper_us(size_t i); /* the last bucket also holds everything larger */
uint64_t hist_bucket_value(const struct hist *h, size_t i); /* count in bucket i */

/*
 * Prometheus buckets at the standard boundaries 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
 * 2.5, 5, 10, 30, 60 seconds and +Inf. i in [0, HIST_PROM_COUNT).
 */
int64_t hist_prom_le_us(size_t i);        /* boundary in us; INT64_MAX for +Inf */
const char *hist_prom_le_label(size_t i); /* "0.005" .. "60", "+Inf": static strings */
/* Cumulative counts (value <= boundary), exact, as Prometheus wants: out[13] == count. */
void hist_prom_cumulative(const struct hist *h, uint64_t out[HIST_PROM_COUNT]);

/* ---- Windowed ---------------------------------------------------------------------------- */

#define WHIST_MAX_SLOTS 12

/* One interval's counts. 32-bit counts: one slot covers seconds, not a lifetime. */
struct whist_slot {
    int64_t epoch; /* interval number (now_ms / slot_ms); -1 = never used */
    uint32_t counts[HIST_BUCKETS];
    uint32_t prom[HIST_PROM_COUNT];
    uint64_t count;
    uint64_t sum_us;
    int64_t min_us;
    int64_t max_us;
};

struct whist {
    int64_t slot_ms;
    size_t n_slots;
    struct whist_slot slots[WHIST_MAX_SLOTS];
};

/*
 * Sets up an empty window of n_slots intervals of slot_ms each (n_slots is clamped to
 * [1, WHIST_MAX_SLOTS], slot_ms to >= 1). The window at time now holds the current,
 * partly elapsed interval and the n_slots - 1 before it: e.g. 12 x 5 s covers the last
 * 55..60 s. A value recorded at t is forgotten at the start of interval t/slot_ms + n_slots.
 */
void whist_init(struct whist *w, int64_t slot_ms, size_t n_slots);
void whist_reset(struct whist *w);
/* Records value_us in the interval holding now_ms. A now_ms from before the window (time
 * went backwards) is counted in the newer interval that reuses its slot, never dropped. */
void whist_record(struct whist *w, int64_t now_ms, int64_t value_us);
/* Adds the window ending at now_ms into out (hist_reset it first for just the window). */
void whist_merge_into(const struct whist *w, int64_t now_ms, struct hist *out);
/* Convenience: quantile over the window (merges into a stack hist, ~7 KB). */
double whist_quantile(const struct whist *w, int64_t now_ms, double q);
/* Several quantiles with one merge: out[i] = quantile(qs[i]). */
void whist_quantiles(const struct whist *w, int64_t now_ms, const double *qs, double *out,
                     size_t n);
/* Number of values in the window. */
uint64_t whist_count(const struct whist *w, int64_t now_ms);
/* The window's nominal length: slot_ms * n_slots. */
int64_t whist_window_ms(const struct whist *w);

#endif
