/*
 * internal.h - private to src/ledger: what feedback.c needs of the write side in ledger.c
 * (the rows not committed yet are searched under the ledger's lock), and what quality.c and
 * qminutes.c share (the minute buckets, quality_begin).
 */
#ifndef SWITCHBOARD_LEDGER_INTERNAL_H
#define SWITCHBOARD_LEDGER_INTERNAL_H

#include <stdbool.h>

#include "switchboard/ledger.h"

struct lnode;

/* A queue node holding a copy of f (heap; the queue frees it). */
struct lnode *ledger_feedback_node(const struct ledger_feedback *f);
/* Searches the rows queued or being written (under the lock): true with *call filled when a
 * call row has this request id (the latest one); *rated when feedback on it is queued. */
bool ledger_mem_find(struct ledger *l, const char *request_id, struct ledger_call_ref *call,
                     bool *rated);
/* Queues f unless feedback on the same request id is queued or being written (false). The
 * check and the queueing are one step under the lock. */
bool ledger_enqueue_feedback_once(struct ledger *l, const struct ledger_feedback *f);
/* Searches the rows queued or being written (under the lock) for a call with this request
 * id (the latest one wins): true with *out filled (lookup.c). */
bool ledger_mem_find_info(struct ledger *l, const char *request_id, struct ledger_call_info *out);
/* Copies a queued call row into out (lookup.c). */
void ledger_call_info_from(const struct ledger_call *c, struct ledger_call_info *out);
/* Empties out (its rows freed) and sets the grouping and bounds of a result about to be
 * filled: ledger_quality_load and ledger_quality_recent (quality.c). Caller's storage. */
void quality_begin(struct ledger_quality *out, enum ledger_quality_by by, int64_t since_ms,
                   int64_t until_ms, uint64_t min_volume);
/* ---- quality minute buckets (qminutes.c) ---- */
/* At least a day of whole minutes plus the one in progress and the one the window starts in. */
#define LEDGER_QM_MINUTES 1442
struct ledger_qm;
struct sqlite3;
struct ledger_qm *ledger_qm_new(void);
void ledger_qm_free(struct ledger_qm *qm); /* NULL-safe */
/* Seeds from the file's last LEDGER_QM_MINUTES minutes before now_ms (ledger_open, before the
 * writer starts). SQLITE_OK or the failing code. */
int ledger_qm_seed(struct ledger_qm *qm, struct sqlite3 *db, int64_t now_ms);
/* Folding committed rows (the writer, between ledger_qm_lock and ledger_qm_unlock). */
void ledger_qm_lock(struct ledger_qm *qm);
void ledger_qm_unlock(struct ledger_qm *qm);
void ledger_qm_call(struct ledger_qm *qm, const struct ledger_call *c);
void ledger_qm_feedback(struct ledger_qm *qm, const struct ledger_feedback *f);
/* The ledger's buckets; NULL for ":memory:" or when the seed failed. */
struct ledger_qm *ledger_qm_peek(struct ledger *l);

/* The file's path (":memory:" for none); valid until ledger_close. */
const char *ledger_path_peek(const struct ledger *l);

#endif
