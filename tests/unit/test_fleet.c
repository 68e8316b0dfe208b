/*
 * test_fleet.c - the fleet module against a real redis-server (Debian's, started here on a
 * unix socket in a temporary directory and killed at the end; skipped with a message when it
 * is not installed): URL parsing, counters flushed and read back across two instances,
 * notices between instances, stored overrides at connect, re-seeding an emptied Redis, and
 * the status while Redis is unreachable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "switchboard/fleet.h"

static char dir[64];
static char sock[128];
static char url[160];
static pid_t redis_pid = -1;

static bool redis_start(void)
{
    redis_pid = fork();
    if (redis_pid < 0)
        return false;
    if (redis_pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
               "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        struct stat st;
        if (stat(sock, &st) == 0)
            return true;
        usleep(20000);
    }
    return false;
}

static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
        unlink(sock);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sb-fleet.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    snprintf(url, sizeof url, "unix://%s", sock);
    return redis_start() ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_kill();
    rmdir(dir);
    return 0;
}

/* A direct client, to look at what the fleet wrote. */
static long long redis_int(const char *cmd, const char *key)
{
    redisContext *c = redisConnectUnix(sock);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "%s %s", cmd, key);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static void redis_do(const char *cmd)
{
    redisContext *c = redisConnectUnix(sock);
    assert_non_null(c);
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

static struct fleet *make(const char *name, const char *u)
{
    struct config_fleet cfg = {.redis = (char *)(uintptr_t)u,
                               .name = (char *)(uintptr_t)name,
                               .key_prefix = (char *)(uintptr_t) "ut:"};
    char msg[256];
    struct fleet *f = fleet_new(&cfg, "default", msg, sizeof msg);
    assert_non_null(f);
    assert_int_equal(fleet_start(f, msg, sizeof msg), SB_OK);
    return f;
}

static bool wait_connected(struct fleet *f, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        struct fleet_status st;
        fleet_get_status(f, &st);
        if (st.connected)
            return true;
        usleep(10000);
    }
    return false;
}

static int64_t wait_counter(struct fleet *f, const char *key, int64_t want, int ms)
{
    int64_t v = 0;
    for (int i = 0; i < ms / 10; i++) {
        v = fleet_counter_get(f, key, NULL, NULL);
        if (v == want)
            break;
        usleep(10000);
    }
    return v;
}

static void test_fleet_parses_urls(void **state)
{
    (void)state;
    char host[64];
    int port, db;
    bool un;
    assert_true(
        fleet_parse_url("redis://10.0.0.5:6380/2", host, sizeof host, &port, &db, &un, NULL));
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 6380);
    assert_int_equal(db, 2);
    assert_false(un);
    assert_true(fleet_parse_url("redis://cache", host, sizeof host, &port, &db, &un, NULL));
    assert_int_equal(port, 6379);
    assert_int_equal(db, 0);
    assert_true(
        fleet_parse_url("unix:///run/r.sock?db=3", host, sizeof host, &port, &db, &un, NULL));
    assert_string_equal(host, "/run/r.sock");
    assert_int_equal(db, 3);
    assert_true(un);
    assert_false(fleet_parse_url("redis://:secret@host", host, sizeof host, &port, &db, &un, NULL));
    assert_false(fleet_parse_url("redis://host:99999", host, sizeof host, &port, &db, &un, NULL));
    assert_false(fleet_parse_url("http://host", host, sizeof host, &port, &db, &un, NULL));
    assert_false(fleet_parse_url("unix://relative", host, sizeof host, &port, &db, &un, NULL));
    bool tls = false;
    assert_true(
        fleet_parse_url("rediss://r.internal:6380/1", host, sizeof host, &port, &db, &un, &tls));
    assert_true(tls);
    assert_string_equal(host, "r.internal");
    assert_int_equal(port, 6380);
    assert_int_equal(db, 1);
    assert_true(fleet_parse_url("redis://r.internal", host, sizeof host, &port, &db, &un, &tls));
    assert_false(tls);
    /* a caller without TLS (tls NULL) refuses rediss:// */
    assert_false(fleet_parse_url("rediss://r.internal", host, sizeof host, &port, &db, &un, NULL));
    assert_false(
        fleet_parse_url("rediss://u:pw@r.internal", host, sizeof host, &port, &db, &un, &tls));
}

static void test_fleet_parses_notice_payloads(void **state)
{
    (void)state;
    char origin[FLEET_NAME_MAX];
    enum fleet_notice_kind k;
    size_t off;
    const char ok[] = "gw-1\tcommand\t{\"type\":\"pin\"}";
    assert_true(fleet_parse_notice(ok, strlen(ok), origin, sizeof origin, &k, &off));
    assert_string_equal(origin, "gw-1");
    assert_int_equal(k, FLEET_NOTICE_COMMAND);
    assert_string_equal(ok + off, "{\"type\":\"pin\"}");
    const char *bad[] = {"gw-1\tcommand", "\tcommand\t{}", "gw-1\treseed\t", "gw-1 command {}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(fleet_parse_notice(bad[i], strlen(bad[i]), origin, sizeof origin, &k, &off));
    const char nul[] = "\0gw\tbreaker\t{}"; /* found by fuzz_fleet_notice */
    assert_false(fleet_parse_notice(nul, sizeof nul - 1, origin, sizeof origin, &k, &off));
}

static void test_fleet_counters_add_up_across_instances(void **state)
{
    (void)state;
    redis_do("FLUSHALL");
    struct fleet *a = make("a", url), *b = make("b", url);
    assert_true(wait_connected(a, 3000));
    assert_true(wait_connected(b, 3000));
    fleet_counter_add(a, "spend:x", 1500, 60);
    fleet_counter_add(b, "spend:x", 250, 60);
    int64_t pending = -1;
    assert_int_equal(fleet_counter_get(a, "spend:x", &pending, NULL) >= 1500, 1);
    assert_int_equal(wait_counter(a, "spend:x", 1750, 2000), 1750);
    assert_int_equal(wait_counter(b, "spend:x", 1750, 2000), 1750);
    assert_int_equal(redis_int("GET", "ut:spend:x"), 1750);
    assert_true(redis_int("TTL", "ut:spend:x") > 0);
    struct fleet_status st;
    fleet_get_status(a, &st);
    assert_int_equal(st.pending_micro_usd, 0);
    fleet_free(a);
    fleet_free(b);
}

static struct fleet_notice *wait_notice(struct fleet *f, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        struct fleet_notice *n = fleet_take_notices(f);
        if (n)
            return n;
        usleep(10000);
    }
    return NULL;
}

static void test_fleet_notices_reach_the_others_and_are_stored(void **state)
{
    (void)state;
    redis_do("FLUSHALL");
    struct fleet *a = make("a", url), *b = make("b", url);
    assert_true(wait_connected(a, 3000));
    assert_true(wait_connected(b, 3000));
    struct fleet_store st = {.field = "pin:t1", .value = strdup("{\"type\":\"pin\"}")};
    fleet_post(a, FLEET_NOTICE_COMMAND, "t1", "{\"type\":\"pin\",\"target\":\"t1\"}", 0, &st, 1);
    struct fleet_notice *n = wait_notice(b, 2000);
    assert_non_null(n);
    assert_int_equal(n->kind, FLEET_NOTICE_COMMAND);
    assert_string_equal(n->origin, "a");
    assert_string_equal(n->body, "{\"type\":\"pin\",\"target\":\"t1\"}");
    fleet_notices_free(n);
    assert_null(fleet_take_notices(a)); /* not echoed to its sender */
    assert_int_equal(redis_int("HLEN", "ut:ov"), 1);
    assert_int_equal(redis_int("XLEN", "ut:audit"), 1);
    /* a cooldown: key with expiry + notice */
    fleet_post(a, FLEET_NOTICE_COOLDOWN, "t2", "{\"target\":\"t2\"}", clock_wall_ms() + 5000, NULL,
               0);
    n = wait_notice(b, 2000);
    assert_non_null(n);
    assert_int_equal(n->kind, FLEET_NOTICE_COOLDOWN);
    fleet_notices_free(n);
    long long pttl = redis_int("PTTL", "ut:cool:t2");
    assert_true(pttl > 4000 && pttl <= 5000);
    /* a joining instance reads the stored state at connect */
    struct fleet *c = make("c", url);
    assert_true(wait_connected(c, 3000));
    int kinds = 0;
    for (int i = 0; i < 50 && kinds != 3; i++) {
        struct fleet_notice *l = fleet_take_notices(c);
        for (struct fleet_notice *k = l; k; k = k->next)
            kinds |= k->kind == FLEET_NOTICE_OVERRIDE   ? 1
                     : k->kind == FLEET_NOTICE_COOLDOWN ? 2
                                                        : 0;
        fleet_notices_free(l);
        usleep(20000);
    }
    assert_int_equal(kinds, 3);
    fleet_free(a);
    fleet_free(b);
    fleet_free(c);
}

static void test_fleet_reseeds_an_emptied_redis(void **state)
{
    (void)state;
    redis_do("FLUSHALL");
    struct fleet *a = make("a", url);
    assert_true(wait_connected(a, 3000));
    fleet_counter_add(a, "spend:y", 700, 60);
    assert_int_equal(wait_counter(a, "spend:y", 700, 2000), 700);
    redis_do("FLUSHALL"); /* Redis restarted without persistence */
    fleet_counter_add(a, "spend:y", 5, 60);
    for (int i = 0; i < 300 && redis_int("GET", "ut:spend:y") != 705; i++)
        usleep(10000);
    assert_int_equal(redis_int("GET", "ut:spend:y"), 705);
    bool reseed = false;
    for (int i = 0; i < 100 && !reseed; i++) {
        struct fleet_notice *l = fleet_take_notices(a);
        for (struct fleet_notice *k = l; k; k = k->next)
            reseed |= k->kind == FLEET_NOTICE_RESEED;
        fleet_notices_free(l);
        usleep(10000);
    }
    assert_true(reseed); /* the router is asked to store its overrides again */
    fleet_free(a);
}

static void test_fleet_keeps_spend_while_redis_is_down(void **state)
{
    (void)state;
    redis_do("FLUSHALL");
    struct fleet *a = make("a", url);
    assert_true(wait_connected(a, 3000));
    redis_kill();
    fleet_counter_add(a, "spend:z", 42, 60); /* never blocks, whatever Redis does */
    struct fleet_status st;
    bool down = false;
    for (int i = 0; i < 300 && !down; i++) {
        fleet_get_status(a, &st);
        down = !st.connected && st.down_since_ms > 0;
        usleep(10000);
    }
    assert_true(down);
    assert_non_null(strstr(st.text, "fleet: redis unreachable since "));
    bool stale = false;
    int64_t mine = 0;
    assert_int_equal(fleet_counter_get(a, "spend:z", &mine, &stale), 42);
    assert_true(stale);
    assert_int_equal(mine, 42);
    assert_true(redis_start());
    assert_true(wait_connected(a, 8000));
    for (int i = 0; i < 300 && redis_int("GET", "ut:spend:z") != 42; i++)
        usleep(10000);
    assert_int_equal(redis_int("GET", "ut:spend:z"), 42);
    fleet_free(a);
}

static void test_fleet_reports_an_unreachable_redis(void **state)
{
    (void)state;
    char nowhere[200];
    snprintf(nowhere, sizeof nowhere, "unix://%s/nothing.sock", dir);
    struct fleet *a = make("a", nowhere);
    struct fleet_status st;
    for (int i = 0; i < 100; i++) {
        fleet_get_status(a, &st);
        if (st.down_since_ms > 0)
            break;
        usleep(10000);
    }
    assert_false(st.connected);
    assert_true(st.down_since_ms > 0);
    assert_non_null(strstr(st.text, "redis unreachable since"));
    fleet_free(a); /* stops promptly although it never connected */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleet_parses_urls),
        cmocka_unit_test(test_fleet_parses_notice_payloads),
        cmocka_unit_test(test_fleet_counters_add_up_across_instances),
        cmocka_unit_test(test_fleet_notices_reach_the_others_and_are_stored),
        cmocka_unit_test(test_fleet_reseeds_an_emptied_redis),
        cmocka_unit_test(test_fleet_keeps_spend_while_redis_is_down),
        cmocka_unit_test(test_fleet_reports_an_unreachable_redis),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
