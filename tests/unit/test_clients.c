/*
 * test_clients.c - client keys: SHA-256 and hex helpers, key generation, expiry parsing, the
 * auth decision (authenticate: 401 reasons; admit: 403 routes, the tag a call carries,
 * rpm/tpm and budget 429s with Retry-After; counters kept across a reload), and the ledger's
 * client_keys table (add, load, revoke, fingerprint, spend per key). Time is an argument
 * everywhere, so windows are driven by hand.
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

#include "switchboard/clients.h"
#include "switchboard/ledger.h"

#define T0     INT64_C(1798761600000) /* 2027-01-01T00:00:00Z */
#define DAY_MS INT64_C(86400000)

static void key_init(struct clients_key *k, const char *name, const char *secret)
{
    memset(k, 0, sizeof *k);
    str_copy(k->name, sizeof k->name, name);
    clients_sha256(secret, strlen(secret), k->sha256);
}

static void authenticate(struct clients *cl, const char *header, int64_t now,
                         struct clients_decision *d, enum clients_verdict want)
{
    clients_authenticate(cl, header, now, d);
    if (d->verdict != want)
        print_message("header %s: got %s, want %s\n", header ? header : "(none)",
                      clients_verdict_name(d->verdict), clients_verdict_name(want));
    assert_int_equal(d->verdict, want);
}

/* ---- hashing ------------------------------------------------------------------------------ */

static void test_clients_sha256_matches_the_standard_vector(void **state)
{
    (void)state;
    uint8_t h[CLIENTS_HASH_LEN], back[CLIENTS_HASH_LEN];
    char hex[CLIENTS_HASH_HEX + 1];
    clients_sha256("abc", 3, h);
    clients_hash_hex(h, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(clients_hash_parse(
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", back));
    assert_true(clients_hash_equal(h, back));
    back[31] ^= 1;
    assert_false(clients_hash_equal(h, back));
    assert_false(clients_hash_parse("ba7816bf", back));
    assert_false(clients_hash_parse(
        "ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", back));
    assert_false(clients_hash_parse(NULL, back));
}

static void test_clients_generates_distinct_prefixed_keys(void **state)
{
    (void)state;
    char a[64], b[64], tiny[16];
    assert_int_equal(clients_key_generate(a, sizeof a), SB_OK);
    assert_int_equal(clients_key_generate(b, sizeof b), SB_OK);
    assert_true(str_has_prefix(a, CLIENTS_KEY_PREFIX));
    assert_int_equal(strlen(a), strlen(CLIENTS_KEY_PREFIX) + 48);
    assert_string_not_equal(a, b);
    assert_int_equal(clients_key_generate(tiny, sizeof tiny), SB_ERR_LIMIT);
}

static void test_clients_parses_expiry_times_and_names(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_true(clients_parse_time("2027-01-01", &ms));
    assert_int_equal(ms, T0);
    assert_true(clients_parse_time("2027-01-01T00:00:01Z", &ms));
    assert_int_equal(ms, T0 + 1000);
    static const char *const bad[] = {"2027-02-30", "2027-13-01",          "2027-1-01",
                                      "tomorrow",   "2027-01-01T00:00:00", "2027-01-01 ",
                                      "",           "2027-01-01T24:00:00Z"};
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++)
        assert_false(clients_parse_time(bad[i], &ms));
    assert_true(clients_name_is_valid("team-a.b_c"));
    assert_false(clients_name_is_valid(""));
    assert_false(clients_name_is_valid("a b"));
    assert_false(clients_name_is_valid("a\"b"));
}

/* ---- authenticate ------------------------------------------------------------------------- */

static struct clients *three_keys(void)
{
    struct clients_key k[3];
    key_init(&k[0], "alpha", "sbk-alpha");
    key_init(&k[1], "gone", "sbk-gone");
    k[1].revoked_ms = T0 - 1;
    key_init(&k[2], "old", "sbk-old");
    k[2].expires_ms = T0;
    struct clients *cl = clients_new();
    clients_set(cl, k, 3, NULL, 0);
    for (size_t i = 0; i < 3; i++)
        clients_key_cleanup(&k[i]);
    return cl;
}

static void test_clients_authenticate_says_why_a_key_is_refused(void **state)
{
    (void)state;
    struct clients *cl = three_keys();
    struct clients_decision d;
    assert_true(clients_required(cl));
    authenticate(cl, NULL, T0, &d, CLIENTS_MISSING);
    authenticate(cl, "Basic YWxwaGE6c2JrLWFscGhh", T0, &d, CLIENTS_MISSING);
    authenticate(cl, "Bearer ", T0, &d, CLIENTS_MISSING);
    authenticate(cl, "Bearer sbk-alph", T0, &d, CLIENTS_INVALID);
    assert_string_equal(d.name, "");
    authenticate(cl, "Bearer sbk-alpha", T0, &d, CLIENTS_OK);
    assert_string_equal(d.name, "alpha");
    authenticate(cl, "bearer   sbk-alpha  ", T0, &d, CLIENTS_OK);
    authenticate(cl, "Bearer sbk-gone", T0, &d, CLIENTS_REVOKED);
    assert_string_equal(d.name, "gone");
    authenticate(cl, "Bearer sbk-old", T0 - 1, &d, CLIENTS_OK);
    authenticate(cl, "Bearer sbk-old", T0, &d, CLIENTS_EXPIRED);
    assert_null(strstr(d.message, "sbk-"));
    assert_int_equal(clients_verdict_status(CLIENTS_EXPIRED), 401);
    uint64_t fails[CLIENTS_VERDICT_COUNT];
    struct clients_stats st[4];
    assert_int_equal(clients_stats(cl, T0, st, 4, fails), 3);
    assert_int_equal(fails[CLIENTS_MISSING], 3);
    assert_int_equal(fails[CLIENTS_INVALID], 1);
    assert_int_equal(fails[CLIENTS_REVOKED], 1);
    assert_int_equal(fails[CLIENTS_EXPIRED], 1);
    assert_true(st[1].revoked);
    assert_true(st[2].expired);
    clients_free(cl);
}

static void test_clients_are_required_once_any_key_existed(void **state)
{
    (void)state;
    struct clients *cl = clients_new();
    assert_false(clients_required(cl));
    clients_set(cl, NULL, 0, NULL, 0);
    assert_false(clients_required(cl));
    clients_require(cl); /* the ledger's table has (revoked) rows */
    assert_true(clients_required(cl));
    struct clients_decision d;
    authenticate(cl, "Bearer anything", T0, &d, CLIENTS_INVALID);
    clients_free(cl);
}

/* ---- admit -------------------------------------------------------------------------------- */

static void admit(struct clients *cl, const char *name, const char *route, const char *tag,
                  int64_t now, struct clients_decision *d, enum clients_verdict want)
{
    memset(d, 0, sizeof *d);
    str_copy(d->name, sizeof d->name, name);
    clients_admit(cl, route, tag, now, d);
    if (d->verdict != want)
        print_message("%s on %s: got %s (%s), want %s\n", name, route,
                      clients_verdict_name(d->verdict), d->message, clients_verdict_name(want));
    assert_int_equal(d->verdict, want);
}

/* alpha: routes chat, tag team-a. charlie: self_tag, tag team-c. dora: no tag. Budget tags:
 * victim and team-c. */
static struct clients *tag_keys(void)
{
    struct clients_key k[3];
    key_init(&k[0], "alpha", "a");
    clients_key_add_route(&k[0], "chat");
    k[0].tag = xstrdup("team-a");
    key_init(&k[1], "charlie", "c");
    k[1].tag = xstrdup("team-c");
    k[1].self_tag = true;
    key_init(&k[2], "dora", "d");
    static const char *const budget_tags[] = {"victim", "team-c"};
    struct clients *cl = clients_new();
    clients_set(cl, k, 3, budget_tags, 2);
    for (size_t i = 0; i < 3; i++)
        clients_key_cleanup(&k[i]);
    return cl;
}

static void test_clients_admit_holds_a_key_to_its_routes(void **state)
{
    (void)state;
    struct clients *cl = tag_keys();
    struct clients_decision d;
    admit(cl, "alpha", "chat", NULL, T0, &d, CLIENTS_OK);
    admit(cl, "alpha", "solo", NULL, T0, &d, CLIENTS_ROUTE);
    assert_int_equal(clients_verdict_status(d.verdict), 403);
    assert_non_null(strstr(d.message, "'alpha' may not use model 'solo'"));
    admit(cl, "alpha", NULL, NULL, T0, &d, CLIENTS_ROUTE);
    admit(cl, "dora", "anything", NULL, T0, &d, CLIENTS_OK);    /* no routes: every route */
    admit(cl, "nobody", "chat", NULL, T0, &d, CLIENTS_REVOKED); /* gone since step 1 */
    assert_true(clients_route_allowed(cl, "alpha", "chat"));
    assert_false(clients_route_allowed(cl, "alpha", "solo"));
    assert_true(clients_route_allowed(cl, "dora", "solo"));
    assert_false(clients_route_allowed(cl, "nobody", "chat"));
    clients_free(cl);
}

static void test_clients_admit_gives_the_call_the_keys_tag(void **state)
{
    (void)state;
    struct clients *cl = tag_keys();
    struct clients_decision d;
    admit(cl, "alpha", "chat", NULL, T0, &d, CLIENTS_OK);
    assert_string_equal(d.tag, "team-a");
    assert_false(d.tag_ignored);
    admit(cl, "alpha", "chat", "victim", T0, &d, CLIENTS_OK); /* forged: no self_tag */
    assert_string_equal(d.tag, "team-a");
    assert_true(d.tag_ignored);
    admit(cl, "alpha", "chat", "free-tag", T0, &d, CLIENTS_OK);
    assert_string_equal(d.tag, "team-a");
    admit(cl, "dora", "x", "team-a", T0, &d, CLIENTS_OK); /* no tag: the key's name */
    assert_string_equal(d.tag, "dora");
    clients_free(cl);
}

static void test_clients_self_tag_never_takes_a_tag_it_does_not_own(void **state)
{
    (void)state;
    struct clients *cl = tag_keys();
    struct clients_decision d;
    static const struct {
        const char *sent, *want;
        bool ignored;
    } cases[] = {
        {"c-batch", "c-batch", false}, /* free: honoured */
        {"team-c", "team-c", false},   /* its own tag, budgeted: honoured */
        {"victim", "team-c", true},    /* a budget it does not own */
        {"team-a", "team-c", true},    /* another key's tag */
        {"dora", "team-c", true},      /* another key's name (its default tag) */
        {"a b", "team-c", true},       /* not a tag */
        {"", "team-c", false},         /* none sent */
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        admit(cl, "charlie", "chat", cases[i].sent, T0, &d, CLIENTS_OK);
        assert_string_equal(d.tag, cases[i].want);
        assert_int_equal(d.tag_ignored, cases[i].ignored);
    }
    clients_free(cl);
}

static struct clients *limited_key(long rpm, long tpm, double daily, double monthly)
{
    struct clients_key k;
    key_init(&k, "lim", "l");
    k.rpm = rpm;
    k.tpm = tpm;
    k.daily_usd = daily;
    k.monthly_usd = monthly;
    struct clients *cl = clients_new();
    clients_set(cl, &k, 1, NULL, 0);
    clients_key_cleanup(&k);
    return cl;
}

static void test_clients_rpm_refuses_over_the_minute_and_lets_go(void **state)
{
    (void)state;
    struct clients *cl = limited_key(2, 0, 0, 0);
    struct clients_decision d;
    admit(cl, "lim", "r", NULL, T0, &d, CLIENTS_OK);
    admit(cl, "lim", "r", NULL, T0 + 20000, &d, CLIENTS_OK);
    admit(cl, "lim", "r", NULL, T0 + 30000, &d, CLIENTS_RATE);
    assert_int_equal(clients_verdict_status(d.verdict), 429);
    assert_non_null(strstr(d.message, "2 requests per minute"));
    assert_true(d.retry_after_ms >= 1000 && d.retry_after_ms <= 60000);
    /* the first request leaves the window after a minute */
    admit(cl, "lim", "r", NULL, T0 + 30000 + d.retry_after_ms, &d, CLIENTS_OK);
    admit(cl, "lim", "r", NULL, T0 + 200000, &d, CLIENTS_OK);
    struct clients_stats st;
    assert_int_equal(clients_stats(cl, T0 + 200000, &st, 1, NULL), 1);
    assert_int_equal(st.admitted, 4);
    assert_int_equal(st.refused[CLIENTS_RATE], 1);
    assert_int_equal(st.rpm_used, 1);
    clients_free(cl);
}

static void test_clients_tpm_counts_finished_calls(void **state)
{
    (void)state;
    struct clients *cl = limited_key(0, 1000, 0, 0);
    struct clients_decision d;
    admit(cl, "lim", "r", NULL, T0, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", T0 + 1000, 999, 0);
    admit(cl, "lim", "r", NULL, T0 + 2000, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", T0 + 3000, 1, 0);
    admit(cl, "lim", "r", NULL, T0 + 4000, &d, CLIENTS_RATE);
    assert_non_null(strstr(d.message, "1000 tokens per minute"));
    admit(cl, "lim", "r", NULL, T0 + 66000, &d, CLIENTS_OK);
    clients_note_done(cl, "nobody", T0, 5000, 5); /* unknown names are ignored */
    clients_free(cl);
}

static void test_clients_budget_refuses_at_the_cap_until_the_window_resets(void **state)
{
    (void)state;
    struct clients *cl = limited_key(0, 0, 1.0, 1.5);
    struct clients_decision d;
    int64_t noon = T0 + DAY_MS / 2;
    admit(cl, "lim", "r", NULL, noon, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", noon, 10, 0.6);
    admit(cl, "lim", "r", NULL, noon, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", noon, 10, 0.5);
    admit(cl, "lim", "r", NULL, noon + 1, &d, CLIENTS_BUDGET);
    assert_non_null(strstr(d.message, "client key 'lim': daily budget $1.00 reached ($1.10"));
    assert_int_equal(d.retry_after_ms, DAY_MS / 2 - 1);
    /* the next day: the daily cap is free, the monthly one is not far */
    admit(cl, "lim", "r", NULL, T0 + DAY_MS, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", T0 + DAY_MS, 10, 0.4);
    admit(cl, "lim", "r", NULL, T0 + DAY_MS + 1, &d, CLIENTS_BUDGET);
    assert_non_null(strstr(d.message, "monthly budget $1.50 reached"));
    assert_int_equal(d.retry_after_ms, 30 * DAY_MS - 1); /* until February 1st */
    clients_free(cl);
}

static void test_clients_keep_counters_across_a_reload_and_take_seeds(void **state)
{
    (void)state;
    struct clients *cl = limited_key(0, 0, 1.0, 0);
    struct clients_decision d;
    clients_seed_spend(cl, "lim", T0, 0.99, 0.99);
    admit(cl, "lim", "r", NULL, T0, &d, CLIENTS_OK);
    clients_note_done(cl, "lim", T0, 1, 0.01);
    struct clients_key k[2];
    key_init(&k[0], "new", "n");
    key_init(&k[1], "lim", "l");
    k[1].daily_usd = 1.0;
    clients_set(cl, k, 2, NULL, 0);
    clients_key_cleanup(&k[0]);
    clients_key_cleanup(&k[1]);
    admit(cl, "lim", "r", NULL, T0 + 1, &d, CLIENTS_BUDGET);
    struct clients_stats st[2];
    assert_int_equal(clients_stats(cl, T0 + 1, st, 2, NULL), 2);
    assert_string_equal(st[1].name, "lim");
    assert_int_equal(st[1].admitted, 1);
    assert_int_equal(st[1].tokens, 1);
    assert_true(st[1].day_usd > 0.999 && st[1].spend_usd > 0.009 && st[1].spend_usd < 0.011);
    clients_free(cl);
}

/* ---- the ledger's table ------------------------------------------------------------------- */

static void add_key(const char *path, const char *name, const char *secret, enum sb_status want)
{
    struct clients_key k;
    char msg[256] = "";
    key_init(&k, name, secret);
    clients_key_add_route(&k, "chat");
    clients_key_add_route(&k, "solo");
    k.tag = xstrdup("t");
    k.rpm = 5;
    k.daily_usd = 2.5;
    k.expires_ms = T0;
    enum sb_status st = ledger_keys_add(path, &k, T0 - 1000, msg, sizeof msg);
    if (st != want)
        print_message("add %s: %s\n", name, msg);
    assert_int_equal(st, want);
    assert_null(strstr(msg, secret));
    clients_key_cleanup(&k);
}

static void test_clients_ledger_table_round_trips(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-test-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char msg[256];
    struct clients_key *keys = NULL;
    size_t n = 9;
    uint64_t fp0 = 1, fp1, fp2;
    assert_int_equal(ledger_keys_load(path, &keys, &n, msg, sizeof msg), SB_OK); /* no file */
    assert_int_equal(n, 0);
    assert_int_equal(ledger_keys_fingerprint(path, &fp0, msg, sizeof msg), SB_OK);
    assert_int_equal(fp0, 0);
    add_key(path, "bravo", "sbk-b", SB_OK);
    add_key(path, "alpha", "sbk-a", SB_OK);
    add_key(path, "alpha", "sbk-other", SB_ERR_STATE); /* name taken */
    add_key(path, "carol", "sbk-a", SB_ERR_STATE);     /* key taken */
    assert_int_equal(ledger_keys_fingerprint(path, &fp1, msg, sizeof msg), SB_OK);
    assert_int_not_equal(fp1, 0);
    assert_int_equal(ledger_keys_load(path, &keys, &n, msg, sizeof msg), SB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0].name, "alpha");
    uint8_t h[CLIENTS_HASH_LEN];
    clients_sha256("sbk-a", 5, h);
    assert_true(clients_hash_equal(keys[0].sha256, h));
    assert_int_equal(keys[0].n_routes, 2);
    assert_string_equal(keys[0].routes[1], "solo");
    assert_string_equal(keys[0].tag, "t");
    assert_int_equal(keys[0].rpm, 5);
    assert_true(keys[0].daily_usd == 2.5);
    assert_int_equal(keys[0].expires_ms, T0);
    assert_int_equal(keys[0].created_ms, T0 - 1000);
    assert_int_equal(keys[0].revoked_ms, 0);
    ledger_keys_free(keys, n);
    assert_int_equal(ledger_keys_revoke(path, "alpha", T0, msg, sizeof msg), SB_OK);
    assert_int_equal(ledger_keys_revoke(path, "alpha", T0, msg, sizeof msg), SB_ERR_STATE);
    assert_int_equal(ledger_keys_revoke(path, "zed", T0, msg, sizeof msg), SB_ERR_NOT_FOUND);
    assert_int_equal(ledger_keys_fingerprint(path, &fp2, msg, sizeof msg), SB_OK);
    assert_int_not_equal(fp2, fp1);
    assert_int_equal(ledger_keys_load(path, &keys, &n, msg, sizeof msg), SB_OK);
    assert_int_equal(keys[0].revoked_ms, T0);
    ledger_keys_free(keys, n);
    assert_int_equal(
        ledger_keys_add(":memory:", &(struct clients_key){.name = "x"}, T0, msg, sizeof msg),
        SB_ERR_UNSUPPORTED);
    char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
    free(wal);
    free(shm);
}

struct spent {
    double day, month;
    int calls;
};

static void on_spend(void *ctx, const char *name, double day, double month)
{
    struct spent *s = ctx;
    if (str_eq(name, "alpha")) {
        s->day = day;
        s->month = month;
    }
    s->calls++;
}

static void test_clients_ledger_rebuilds_spend_per_key(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-test-keyspend-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char msg[256];
    int64_t now = clock_wall_ms();
    struct ledger *l = ledger_open(path, 10, msg, sizeof msg);
    assert_non_null(l);
    struct ledger_call c = {.wall_ms = now,
                            .route = "r",
                            .target = "t",
                            .status = 200,
                            .cost_usd = 0.25,
                            .retry_cost_usd = 0.05,
                            .est_cost_usd = -1,
                            .baseline_cost_usd = -1,
                            .hedge_cost_usd = -1,
                            .client = "alpha"};
    ledger_post_call(l, &c);
    c.wall_ms = ledger_day_start(now) - 1; /* yesterday: this month only, unless the 1st */
    ledger_post_call(l, &c);
    c.client = NULL;
    ledger_post_call(l, &c);
    ledger_close(l);
    struct spent s = {0};
    assert_int_equal(ledger_keys_spend(path, now, on_spend, &s, msg, sizeof msg), SB_OK);
    assert_int_equal(s.calls, 1);
    assert_true(s.day > 0.2999 && s.day < 0.3001);
    bool first = ledger_day_start(now) == ledger_month_start(now);
    assert_true(first ? s.month < 0.3001 : s.month > 0.5999 && s.month < 0.6001);
    char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
    free(wal);
    free(shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_sha256_matches_the_standard_vector),
        cmocka_unit_test(test_clients_generates_distinct_prefixed_keys),
        cmocka_unit_test(test_clients_parses_expiry_times_and_names),
        cmocka_unit_test(test_clients_authenticate_says_why_a_key_is_refused),
        cmocka_unit_test(test_clients_are_required_once_any_key_existed),
        cmocka_unit_test(test_clients_admit_holds_a_key_to_its_routes),
        cmocka_unit_test(test_clients_admit_gives_the_call_the_keys_tag),
        cmocka_unit_test(test_clients_self_tag_never_takes_a_tag_it_does_not_own),
        cmocka_unit_test(test_clients_rpm_refuses_over_the_minute_and_lets_go),
        cmocka_unit_test(test_clients_tpm_counts_finished_calls),
        cmocka_unit_test(test_clients_budget_refuses_at_the_cap_until_the_window_resets),
        cmocka_unit_test(test_clients_keep_counters_across_a_reload_and_take_seeds),
        cmocka_unit_test(test_clients_ledger_table_round_trips),
        cmocka_unit_test(test_clients_ledger_rebuilds_spend_per_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
