/*
 * test_config.c - console.json parsing and validation: defaults, one test per class of
 * error (asserting the JSON path and the message), environment resolution through the
 * getenv hook (keys never printed), warnings, the summary and the generated reference.
 * Configs are written with single quotes for readability; q() turns them into JSON.
 * Runs from the repository root (console.json.example, tests/fixtures/config/).
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

#include "switchboard/config.h"
#include "../../src/config/internal.h"

#define OPENAI_SECRET    "sk-test-OPENAI-SECRET-0001"
#define ANTHROPIC_SECRET "sk-ant-test-ANTHROPIC-SECRET"
#define GEMINI_SECRET    "AIzaTEST-GEMINI-SECRET"
#define GROQ_SECRET      "gsk_TEST_GROQ_SECRET"
#define ADMIN_SECRET     "admin-TEST-TOKEN-SECRET"

static const char *const all_secrets[] = {OPENAI_SECRET, ANTHROPIC_SECRET, GEMINI_SECRET,
                                          GROQ_SECRET, ADMIN_SECRET};

/* The fake environment: NAME=VALUE pairs, NULL-terminated. */
static const char *full_env[] = {"OPENAI_API_KEY",
                                 OPENAI_SECRET,
                                 "ANTHROPIC_API_KEY",
                                 ANTHROPIC_SECRET,
                                 "GEMINI_API_KEY",
                                 GEMINI_SECRET,
                                 "GROQ_API_KEY",
                                 GROQ_SECRET,
                                 "EMPTY_VAR",
                                 "",
                                 "SWITCHBOARD_ADMIN_TOKEN",
                                 ADMIN_SECRET,
                                 NULL};
static const char *no_env[] = {NULL};

static const char *fake_getenv(void *ctx, const char *name)
{
    const char **env = ctx;
    for (size_t i = 0; env[i]; i += 2) {
        if (strcmp(env[i], name) == 0)
            return env[i + 1];
    }
    return NULL;
}

/* 'single quoted' pseudo-JSON -> JSON. Caller frees. */
static char *q(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return d;
}

#define PROVIDER_A "{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY','model':'m'}"
#define PROVIDER_B "{'name':'b','kind':'gemini','api_key_env':'GEMINI_API_KEY','model':'g'}"
#define ROUTE_R    "{'name':'r','targets':['a','b']}"
/* A valid config with two providers and one route, and room for more top-level keys. */
#define BASE(extra) "{'providers':[" PROVIDER_A "," PROVIDER_B "],'routes':[" ROUTE_R "]" extra "}"

static struct config *parse_with(const char *sq, const char **env, const char *source,
                                 struct config_diag *errs)
{
    char *json = q(sq);
    struct config *cfg = config_parse(json, strlen(json), source, fake_getenv, (void *)env, errs);
    free(json);
    return cfg;
}

static bool diag_has(const struct config_diag *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strstr(d->items[i], needle))
            return true;
    }
    return false;
}

static void dump(const char *what, const struct config_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_message("  %s: %s\n", what, d->items[i]);
}

static struct config *parse_ok(const char *sq)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = parse_with(sq, full_env, NULL, &errs);
    if (!cfg || errs.n)
        dump("unexpected error", &errs);
    assert_non_null(cfg);
    assert_int_equal(errs.n, 0);
    config_diag_cleanup(&errs);
    return cfg;
}

/* Parses sq, expects failure and an error containing each needle (NULL-terminated). */
static void expect_errors(const char *sq, ...)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = parse_with(sq, full_env, NULL, &errs);
    assert_null(cfg);
    assert_true(errs.n > 0);
    va_list ap;
    va_start(ap, sq);
    for (const char *needle; (needle = va_arg(ap, const char *));) {
        if (!diag_has(&errs, needle)) {
            print_message("missing error containing: %s\n", needle);
            dump("got", &errs);
            fail();
        }
    }
    va_end(ap);
    for (size_t i = 0; i < errs.n; i++) {
        for (size_t k = 0; k < SB_ARRAY_LEN(all_secrets); k++)
            assert_null(strstr(errs.items[i], all_secrets[k]));
    }
    config_diag_cleanup(&errs);
}

#define EXPECT_ERRORS(sq, ...) expect_errors(sq, __VA_ARGS__, (const char *)NULL)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char data[1 << 20];
    *len = fread(data, 1, sizeof data - 1, f);
    fclose(f);
    data[*len] = '\0';
    return data;
}

/* ---- Whole files ------------------------------------------------------------------------ */

static void test_config_example_file_parses_without_errors(void **state)
{
    (void)state;
    size_t len;
    const char *text = read_file("console.json.example", &len);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg =
        config_parse(text, len, "console.json.example", fake_getenv, (void *)full_env, &errs);
    dump("error", &errs);
    assert_non_null(cfg);
    assert_int_equal(errs.n, 0);
    assert_int_equal(cfg->n_targets, 7);
    assert_int_equal(cfg->n_routes, 6);
    assert_int_equal(cfg->n_rules, 4);
    assert_int_equal(cfg->n_budgets, 4);
    for (size_t i = 0; i < cfg->n_targets; i++)
        assert_true(cfg->targets[i].enabled);
    long local = config_find_target(cfg, "ollama-local");
    assert_true(local >= 0);
    assert_null(cfg->targets[local].api_key);
    assert_string_equal(cfg->targets[local].base_url, "http://127.0.0.1:11434/v1");

    struct config_diag warns;
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    dump("warning", &warns);
    assert_int_equal(warns.n, 0);
    config_diag_cleanup(&warns);
    config_free(cfg);
    config_diag_cleanup(&errs);
}

/* rules[].match.users_file is read (relative to the config file) and sorted; a missing file,
 * a quality guard with nothing to compare with and a malformed baseline day are errors. */
static void test_config_reads_users_files_and_checks_quality_settings(void **state)
{
    (void)state;
    char dir[] = "/tmp/sb-cfgusers.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], src[128];
    snprintf(path, sizeof path, "%s/vip.txt", dir);
    snprintf(src, sizeof src, "%s/console.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("zoe\n# not a user\n\n  adam  \n", f);
    fclose(f);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg =
        parse_with(BASE(",'rules':[{'match':{'users_file':'vip.txt'},'route':'r'},"
                        "{'match':{'user':'intern-*'},'route':'r'}],"
                        "'users':{'preferences_file':'prefs.txt','concise_route':'r'}"),
                   full_env, src, &errs);
    dump("unexpected error", &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->rules[0].n_users, 2);
    assert_string_equal(cfg->rules[0].users[0], "adam");
    assert_true(config_rule_has_user(&cfg->rules[0], "zoe"));
    assert_false(config_rule_has_user(&cfg->rules[0], "# not a user"));
    assert_false(config_rule_has_user(&cfg->rules[0], NULL));
    assert_string_equal(cfg->rules[1].match_user, "intern-*");
    assert_int_equal(cfg->users.concise_route, 0);
    assert_int_equal(cfg->users.detailed_route, -1);
    char want[160];
    snprintf(want, sizeof want, "%s/prefs.txt", dir);
    assert_string_equal(cfg->users.preferences_file, want);
    config_free(cfg);
    config_diag_cleanup(&errs);
    unlink(path);
    rmdir(dir);
    EXPECT_ERRORS(BASE(",'rules':[{'match':{'users_file':'/nonexistent/users.txt'},'route':'r'}]"),
                  "rules[0].match.users_file: cannot read /nonexistent/users.txt");
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "," PROVIDER_B "],'routes':[{'name':'r',"
                  "'targets':['a','b'],'quality_guard':{'enabled':true}}]}",
                  "routes[0].quality_guard: the route has no baseline target");
    EXPECT_ERRORS(BASE(",'ledger':{'quality_baseline':'Nov 1'}"),
                  "ledger.quality_baseline: expected a UTC day as YYYY-MM-DD");
    cfg = parse_ok("{'providers':[" PROVIDER_A "," PROVIDER_B "],'routes':[{'name':'r',"
                   "'targets':['a','b'],'quality_guard':{'enabled':true,"
                   "'max_abandonment':0.1}}],'ledger':{'quality_baseline':'2026-11-01'}}");
    assert_true(cfg->routes[0].quality_guard.enabled);
    assert_true(cfg->routes[0].quality_guard.margin_pct == 5);
    assert_int_equal(cfg->ledger.feedback_window_ms, 86400000);
    assert_int_equal(cfg->ledger.quality_min_volume, 20);
    config_free(cfg);
}

static void test_config_load_reads_a_file_and_names_io_errors(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load("tests/fixtures/config/minimal.json", &errs);
    dump("error", &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->source_path, "tests/fixtures/config/minimal.json");
    assert_string_equal(cfg->ledger.path, "tests/fixtures/config/switchboard.db");
    config_free(cfg);

    cfg = config_load("tests/fixtures/config/does-not-exist.json", &errs);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0],
                        "tests/fixtures/config/does-not-exist.json: No such file or directory");
    config_diag_cleanup(&errs);

    cfg = config_load("tests/fixtures/config", &errs);
    assert_null(cfg);
    assert_true(diag_has(&errs, "tests/fixtures/config: Is a directory"));
    config_diag_cleanup(&errs);
}

static void test_config_minimal_config_gets_all_defaults(void **state)
{
    (void)state;
    struct config *cfg = parse_ok("{'providers':[" PROVIDER_A "],'routes':[{'name':'r',"
                                  "'targets':['a']}]}");
    const struct config_target *t = &cfg->targets[0];
    assert_string_equal(t->name, "a");
    assert_int_equal(t->kind, PROVIDER_OPENAI);
    assert_string_equal(t->base_url, "https://api.openai.com/v1");
    assert_string_equal(t->model, "m");
    assert_false(t->has_price);
    assert_int_equal(t->context_window, 0);
    assert_int_equal(t->default_max_tokens, 4096);
    assert_string_equal(t->anthropic_version, "2023-06-01");
    assert_int_equal(t->connect_timeout_ms, 5000);
    assert_int_equal(t->first_byte_timeout_ms, 30000);
    assert_int_equal(t->total_timeout_ms, 300000);
    assert_int_equal(t->max_concurrency, 0);
    assert_int_equal(t->rpm, 0);
    assert_int_equal(t->tpm, 0);
    assert_true(t->weight == 1.0);
    assert_true(t->probe.enabled);
    assert_int_equal(t->probe.interval_ms, 15000);
    assert_int_equal(t->probe.timeout_ms, 5000);
    assert_true(t->enabled);
    assert_string_equal(t->api_key, OPENAI_SECRET);

    const struct config_route *r = &cfg->routes[0];
    assert_int_equal(r->strategy, STRATEGY_WEIGHTED);
    assert_int_equal(r->n_targets, 1);
    assert_int_equal(r->targets[0], 0);
    assert_int_equal(r->n_fallback, 0);
    assert_int_equal(r->baseline, -1);
    assert_int_equal(r->max_attempts, -1);
    assert_int_equal(r->deadline_ms, -1);
    assert_int_equal(r->hedge_after_ms, -1);

    const struct config_router *rt = &cfg->router;
    assert_int_equal(rt->max_attempts, 3);
    assert_int_equal(rt->backoff_base_ms, 100);
    assert_int_equal(rt->backoff_cap_ms, 2000);
    assert_int_equal(rt->deadline_ms, 60000);
    assert_int_equal(rt->hedge_after_ms, 0);
    assert_int_equal(rt->breaker_failures, 5);
    assert_true(rt->breaker_error_rate == 0.5);
    assert_int_equal(rt->breaker_window_ms, 30000);
    assert_int_equal(rt->breaker_min_volume, 20);
    assert_int_equal(rt->breaker_cooldown_ms, 30000);
    assert_int_equal(rt->breaker_half_open_trials, 1);

    assert_string_equal(cfg->gateway.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->gateway.max_connections, 1024);
    assert_int_equal(cfg->gateway.threads, -1);
    assert_int_equal(cfg->gateway.max_body_bytes, 4 << 20);
    assert_int_equal(cfg->gateway.idle_timeout_ms, 30000);
    assert_null(cfg->gateway.admin_token_env);
    assert_null(cfg->gateway.admin_token);
    assert_null(cfg->gateway.admin_listen);
    assert_int_equal(cfg->gateway.drain_timeout_ms, 30000);
    assert_int_equal(cfg->gateway.request_timeout_ms, 30000);
    assert_int_equal(cfg->gateway.max_connections_per_client, 256);
    assert_int_equal(cfg->gateway.max_body_bytes_total, 64 << 20);
    assert_string_equal(cfg->ledger.path, "switchboard.db");
    assert_int_equal(cfg->ledger.batch_ms, 250);
    assert_string_equal(cfg->console.theme, "default");
    assert_int_equal(cfg->console.refresh_ms, 250);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->n_rules, 0);
    assert_int_equal(cfg->n_budgets, 0);
    assert_null(cfg->source_path);
    config_free(cfg);
}

static void test_config_fills_kind_defaults_and_prices(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(
        "{'providers':[{'name':'c','kind':'anthropic','api_key_env':'ANTHROPIC_API_KEY',"
        "'model':'claude','price':{'input_per_mtok':3,'output_per_mtok':15}},"
        "{'name':'g','kind':'gemini','api_key_env':'GEMINI_API_KEY','model':'gm',"
        "'price':{'input_per_mtok':0.1,'output_per_mtok':0.4,'cached_input_per_mtok':0.025}},"
        "{'name':'l','kind':'openai-compatible','base_url':'http://127.0.0.1:11434/v1//',"
        "'model':'llama'}],"
        "'routes':[{'name':'r','targets':['c','g','l'],'strategy':'priority'}]}");
    assert_string_equal(cfg->targets[0].base_url, "https://api.anthropic.com");
    assert_true(cfg->targets[0].has_price);
    assert_true(cfg->targets[0].price.input_per_mtok == 3);
    assert_true(cfg->targets[0].price.cached_input_per_mtok == 3); /* defaults to input */
    assert_string_equal(cfg->targets[1].base_url,
                        "https://generativelanguage.googleapis.com/v1beta");
    assert_true(cfg->targets[1].price.cached_input_per_mtok == 0.025);
    assert_string_equal(cfg->targets[2].base_url, "http://127.0.0.1:11434/v1");
    assert_null(cfg->targets[2].api_key_env);
    assert_null(cfg->targets[2].api_key);
    assert_true(cfg->targets[2].enabled);
    assert_int_equal(cfg->routes[0].strategy, STRATEGY_PRIORITY);
    config_free(cfg);
}

/* ---- Errors ----------------------------------------------------------------------------- */

static void test_config_rejects_unknown_keys_with_a_suggestion(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY',"
                  "'modle':'m'}],'routes':[{'name':'r','targets':['a']}],'routr':{},'zzz':1}",
                  "providers[0].modle: unknown key (did you mean \"model\"?)",
                  "providers[0].model: missing required key",
                  "routr: unknown key (did you mean \"router\"?)",
                  "zzz: unknown key (known keys: version, providers, routes");
    EXPECT_ERRORS(BASE(",'gateway':{'admin_token':'x'}"),
                  "gateway.admin_token: unknown key (did you mean \"admin_tokens\"?)");
}

static void test_config_rejects_wrong_types(void **state)
{
    (void)state;
    EXPECT_ERRORS(
        "{'providers':[" PROVIDER_A "," PROVIDER_B ",{'name':'c','kind':'openai',"
        "'api_key_env':'OPENAI_API_KEY','model':'m','price':{'input_per_mtok':'cheap',"
        "'output_per_mtok':1},'probe':{'enabled':'yes'},'weight':null}],'routes':'r'}",
        "providers[2].price.input_per_mtok: expected a number >= 0 USD per 1M tokens (got a "
        "string)",
        "providers[2].probe.enabled: expected true or false (got a string)",
        "providers[2].weight: expected a number in 0..1000000 (got null)",
        "routes: expected a non-empty array of objects (got a string)");
    EXPECT_ERRORS(BASE(",'router':[]"), "router: expected an object (got an empty array)");
    EXPECT_ERRORS("{'providers':[7],'routes':[{'name':'r','targets':['a']}]}",
                  "providers[0]: expected an object (got 7)");
}

static void test_config_rejects_out_of_range_and_fractional_numbers(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'router':{'max_attempts':11,'breaker_error_rate':0,'deadline_ms':1.5},"
                       "'gateway':{'max_body_bytes':100},'ledger':{'batch_ms':5000.5}"),
                  "router.max_attempts: expected an integer in 1..10 (got 11)",
                  "router.breaker_error_rate: expected a number > 0 and <= 1 (got 0)",
                  "router.deadline_ms: expected an integer in 1..86400000 ms (got 1.5)",
                  "gateway.max_body_bytes: expected an integer in 1024..67108864 bytes (got 100)",
                  "ledger.batch_ms: expected an integer in 10..5000 ms (got 5000.5)");
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY',"
                  "'model':'m','price':{'input_per_mtok':-1,'output_per_mtok':1e400},"
                  "'probe':{'interval_ms':999}}],'routes':[{'name':'r','targets':['a'],"
                  "'max_attempts':0}]}",
                  "providers[0].price.input_per_mtok: expected a number >= 0",
                  "providers[0].price.output_per_mtok: expected a number >= 0",
                  "providers[0].probe.interval_ms: expected an integer in 1000..86400000 ms "
                  "(got 999)",
                  "routes[0].max_attempts: expected an integer in 1..10, or -1 to inherit (got 0)");
    EXPECT_ERRORS(BASE(",'version':2"), "version: expected an integer equal to 1 (got 2)");
    EXPECT_ERRORS(BASE(",'router':{'workers':17}"),
                  "router.workers: expected an integer in 0..16 threads (got 17)");
    EXPECT_ERRORS(BASE(",'router':{'workers':-1}"),
                  "router.workers: expected an integer in 0..16 threads (got -1)");
}

/* router.workers: absent means "the online cores" (-1, resolved by the router); 0 and 16
 * are taken as written. */
static void test_config_router_workers_default_and_range(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(""));
    assert_int_equal(cfg->router.workers, -1);
    config_free(cfg);
    cfg = parse_ok(BASE(",'router':{'workers':0}"));
    assert_int_equal(cfg->router.workers, 0);
    config_free(cfg);
    cfg = parse_ok(BASE(",'router':{'workers':16}"));
    assert_int_equal(cfg->router.workers, 16);
    config_free(cfg);
}

static void test_config_rejects_missing_required_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a'}],'rules':[{}]}",
                  "providers[0].kind: missing required key (expected one of \"openai\", "
                  "\"anthropic\", \"gemini\", \"openai-compatible\")",
                  "providers[0].model: missing required key (expected a non-empty string)",
                  "routes: missing required key (expected a non-empty array of objects)",
                  "rules[0].match: missing required key", "rules[0].route: missing required key");
    EXPECT_ERRORS("{'providers':[],'routes':[{'name':'r','targets':[]}]}",
                  "providers: expected a non-empty array of objects (got an empty array)",
                  "routes[0].targets: expected a non-empty array of provider names (got an "
                  "empty array)");
}

static void test_config_rejects_bad_enum_values_with_a_suggestion(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'openai_compatible','model':'m'}],"
                  "'routes':[{'name':'r','targets':['a'],'strategy':'fastes'}],"
                  "'log_level':'verbose'}",
                  "providers[0].kind: expected one of \"openai\", \"anthropic\", \"gemini\", "
                  "\"openai-compatible\" (got \"openai_compatible\"); did you mean "
                  "\"openai-compatible\"?",
                  "routes[0].strategy: expected one of",
                  "(got \"fastes\"); did you mean "
                  "\"fastest\"?",
                  "log_level: expected one of \"debug\", \"info\", \"warn\", \"error\" (got "
                  "\"verbose\")");
}

static void test_config_rejects_duplicate_names_and_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "," PROVIDER_A "],'routes':[" ROUTE_R "," ROUTE_R
                  "]}",
                  "providers[1].name: duplicate name \"a\" (also at providers[0])",
                  "routes[1].name: duplicate name \"r\" (also at routes[0])");
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY',"
                  "'model':'m','model':'n'}],'routes':[{'name':'r','targets':['a']}]}",
                  "providers[0].model: duplicate key");
}

static void test_config_rejects_routes_naming_unknown_or_repeated_targets(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "," PROVIDER_B "],'routes':[{'name':'r',"
                  "'targets':['a','bb','a','zzzzzz',7],'baseline':'q'}]}",
                  "routes[0].targets[1]: unknown provider \"bb\"; did you mean \"b\"?",
                  "routes[0].targets[2]: \"a\" is listed twice",
                  "routes[0].targets[3]: unknown provider \"zzzzzz\" (known providers: a, b)",
                  "routes[0].targets[4]: expected a provider name (got 7)",
                  "routes[0].baseline: unknown provider \"q\"");
}

static void test_config_rejects_fallback_to_unknown_route(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "],'routes':[{'name':'chat','targets':['a'],"
                  "'fallback':['chta']}]}",
                  "routes[0].fallback[0]: unknown route \"chta\"; did you mean \"chat\"?");
}

static void test_config_rejects_fallback_cycle(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "],'routes':["
                  "{'name':'a','targets':['a'],'fallback':['b']},"
                  "{'name':'b','targets':['a'],'fallback':['c']},"
                  "{'name':'c','targets':['a'],'fallback':['a']},"
                  "{'name':'d','targets':['a'],'fallback':['d']}]}",
                  "routes[0].fallback: cycle a -> b -> c -> a", "routes[3].fallback: cycle d -> d");
    /* A diamond is not a cycle. */
    struct config *cfg = parse_ok("{'providers':[" PROVIDER_A "],'routes':["
                                  "{'name':'a','targets':['a'],'fallback':['b','c']},"
                                  "{'name':'b','targets':['a'],'fallback':['c']},"
                                  "{'name':'c','targets':['a']}]}");
    assert_int_equal(cfg->routes[0].n_fallback, 2);
    assert_int_equal(cfg->routes[0].fallback[1], 2);
    config_free(cfg);
}

static void test_config_rejects_weighted_route_with_all_zero_weights(void **state)
{
    (void)state;
#define ZERO_WEIGHTS(extra)                                                                        \
    "{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY','model':'m',"        \
    "'weight':0},{'name':'b','kind':'openai','api_key_env':'OPENAI_API_KEY','model':'m',"          \
    "'weight':0}],'routes':[{'name':'r','targets':['a','b']" extra "}]}"
    EXPECT_ERRORS(ZERO_WEIGHTS(""),
                  "routes[0].targets: every target of this weighted route has weight 0");
    config_free(parse_ok(ZERO_WEIGHTS(",'strategy':'priority'")));
}

static void test_config_reports_malformed_json_with_line_and_column(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    const char *text = "{\n  \"providers\": [\n    {\"name\": \"a\",}\n  ]\n}\n";
    assert_null(config_parse(text, strlen(text), "c.json", fake_getenv, (void *)full_env, &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0], "c.json:3:18: malformed JSON (unexpected '}'; JSON "
                                       "allows no trailing comma)");
    config_diag_cleanup(&errs);

    text = "{\"providers\": [ // comment\n";
    assert_null(config_parse(text, strlen(text), NULL, fake_getenv, (void *)full_env, &errs));
    assert_string_equal(errs.items[0],
                        "config:1:17: malformed JSON (unexpected '/'; JSON has no comments)");
    config_diag_cleanup(&errs);

    text = "{\"providers\": [";
    assert_null(config_parse(text, strlen(text), NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "config:1:16: malformed JSON (unexpected end of input"));
    config_diag_cleanup(&errs);

    assert_null(config_parse("{} x", 4, NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "config:1:4: malformed JSON (unexpected 'x')"));
    config_diag_cleanup(&errs);

    assert_null(config_parse("{\0}", 3, NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "config:1:2: malformed JSON (unexpected byte 0x00)"));
    config_diag_cleanup(&errs);
}

static void test_config_rejects_empty_file_and_non_object_root(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(config_parse("", 0, "e.json", fake_getenv, (void *)full_env, &errs));
    assert_string_equal(errs.items[0], "e.json: empty file (expected a JSON object with "
                                       "\"providers\" and \"routes\")");
    config_diag_cleanup(&errs);
    assert_null(config_parse(" \n\t", 3, NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "config: empty file"));
    config_diag_cleanup(&errs);
    assert_null(config_parse("[1]", 3, NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "config: the top level must be a JSON object with "
                                "\"providers\" and \"routes\" (got an array)"));
    config_diag_cleanup(&errs);
    assert_null(config_parse("42", 2, NULL, fake_getenv, (void *)full_env, &errs));
    assert_true(diag_has(&errs, "(got a single value)"));
    config_diag_cleanup(&errs);
}

static void test_config_rejects_keys_pasted_into_api_key_env(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'openai','api_key_env':'sk-proj-abc123',"
                  "'model':'m'},{'name':'b','kind':'gemini','api_key_env':'AIzaSyXYZ',"
                  "'model':'m'},{'name':'c','kind':'gemini','api_key_env':'my key',"
                  "'model':'m'}],'routes':[{'name':'r','targets':['a']}]}",
                  "providers[0].api_key_env: this looks like an API key itself",
                  "put the NAME of the environment variable that holds it here",
                  "providers[1].api_key_env: this looks like an API key itself",
                  "providers[2].api_key_env: expected the NAME of an environment variable");
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(parse_with("{'providers':[{'name':'a','kind':'openai','api_key_env':"
                           "'sk-proj-abc123','model':'m'}],'routes':[{'name':'r',"
                           "'targets':['a']}]}",
                           full_env, NULL, &errs));
    for (size_t i = 0; i < errs.n; i++)
        assert_null(strstr(errs.items[i], "abc123"));
    config_diag_cleanup(&errs);
}

/* Header values: the anthropic-version in the file and a key in the environment; the key's
 * value is never printed. */
static void test_config_rejects_header_values_with_control_characters(void **state)
{
    static const char *injected_env[] = {"OPENAI_API_KEY", "sk-good\r\nX-Injected: yes",
                                         "ANTHROPIC_API_KEY", "sk-ant-fine\tkey", NULL};
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a','kind':'anthropic','api_key_env':'ANTHROPIC_API_KEY',"
                  "'model':'m','anthropic_version':'2023-06-01\\r\\nX-Injected: 1'}],"
                  "'routes':[{'name':'r','targets':['a']}]}",
                  "providers[0].anthropic_version: expected a header value without control "
                  "characters");
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(parse_with("{'providers':[{'name':'a','kind':'openai','api_key_env':"
                           "'OPENAI_API_KEY','model':'m'},{'name':'b','kind':'anthropic',"
                           "'api_key_env':'ANTHROPIC_API_KEY','model':'m'}],"
                           "'routes':[{'name':'r','targets':['a','b']}]}",
                           injected_env, NULL, &errs));
    assert_true(diag_has(&errs, "providers[0].api_key_env: the value of OPENAI_API_KEY contains "
                                "a control character"));
    assert_true(diag_has(&errs, "providers[1].api_key_env: the value of ANTHROPIC_API_KEY"));
    for (size_t i = 0; i < errs.n; i++) {
        assert_null(strstr(errs.items[i], "sk-good"));
        assert_null(strstr(errs.items[i], "Injected"));
        assert_null(strstr(errs.items[i], "fine"));
    }
    config_diag_cleanup(&errs);
}

/* The admin token is a bearer token: a control character in it is refused, never echoed. */
static void test_config_rejects_an_admin_token_with_control_characters(void **state)
{
    static const char *env[] = {"OPENAI_API_KEY", "sk-good", "ADMIN", "tok\r\nX-Evil: 1", NULL};
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(parse_with("{'providers':[{'name':'a','kind':'openai','api_key_env':"
                           "'OPENAI_API_KEY','model':'m'}],'routes':[{'name':'r','targets':['a']}],"
                           "'gateway':{'admin_token_env':'ADMIN'}}",
                           env, NULL, &errs));
    assert_true(diag_has(&errs, "gateway.admin_token_env: the value of ADMIN contains a control "
                                "character"));
    for (size_t i = 0; i < errs.n; i++)
        assert_null(strstr(errs.items[i], "Evil"));
    config_diag_cleanup(&errs);
}

/* Named admin tokens: each resolves its own variable (unset: that token is off); names are
 * unique; a control character in a value is refused without echoing it. */
static void test_config_reads_named_admin_tokens(void **state)
{
    static const char *env[] = {"OPENAI_API_KEY", "sk-good", "GEMINI_API_KEY", "g", "ONCALL",
                                "tok-oncall",     "BAD",     "x\ny",           NULL};
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg =
        parse_with(BASE(",'gateway':{'admin_tokens':[{'name':'oncall','token_env':'ONCALL'},"
                        "{'name':'bot','token_env':'UNSET_TOKEN'}]}"),
                   env, NULL, &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->gateway.n_admin_tokens, 2);
    assert_string_equal(cfg->gateway.admin_tokens[0].name, "oncall");
    assert_string_equal(cfg->gateway.admin_tokens[0].token, "tok-oncall");
    assert_null(cfg->gateway.admin_tokens[1].token);
    assert_null(cfg->gateway.admin_token);
    config_free(cfg);
    config_diag_cleanup(&errs);
    config_diag_init(&errs);
    assert_null(parse_with(BASE(",'gateway':{'admin_tokens':[{'name':'a','token_env':'ONCALL'},"
                                "{'name':'a','token_env':'BAD'},{'token_env':'ONCALL'}]}"),
                           env, NULL, &errs));
    assert_true(diag_has(&errs, "gateway.admin_tokens[1].token_env: the value of BAD contains a "
                                "control character"));
    assert_true(diag_has(&errs, "admin_tokens[1].name"));
    assert_true(diag_has(&errs, "admin_tokens[2].name"));
    for (size_t i = 0; i < errs.n; i++)
        assert_null(strstr(errs.items[i], "x\ny"));
    config_diag_cleanup(&errs);
}

/* A Gemini model id is a URL path segment. */
static void test_config_rejects_gemini_model_ids_that_bend_the_url(void **state)
{
    static const char *const bad[] = {
        "gemini/../../x?key=y", "..", "models/..", "a#b", "a%2fb", "a b"};
    (void)state;
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
        char sq[512];
        snprintf(sq, sizeof sq,
                 "{'providers':[{'name':'g','kind':'gemini','api_key_env':'GEMINI_API_KEY',"
                 "'model':'%s'}],'routes':[{'name':'r','targets':['g']}]}",
                 bad[i]);
        EXPECT_ERRORS(sq, "providers[0].model: a Gemini model id goes into the URL path");
    }
    struct config *cfg = parse_ok("{'providers':[{'name':'g','kind':'gemini','api_key_env':"
                                  "'GEMINI_API_KEY','model':'models/gemini-2.5-flash'},{'name':"
                                  "'o','kind':'openai-compatible','base_url':'http://h',"
                                  "'model':'org/model:8b'}],'routes':[{'name':'r',"
                                  "'targets':['g','o']}]}");
    config_free(cfg);
}

static void test_config_requires_base_url_and_key_by_kind(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'l','kind':'openai-compatible','model':'m'},"
                  "{'name':'o','kind':'openai','model':'m'},"
                  "{'name':'u','kind':'openai-compatible','base_url':'ftp://x','model':'m'},"
                  "{'name':'v','kind':'openai-compatible','base_url':'https://','model':'m'}],"
                  "'routes':[{'name':'r','targets':['l']}]}",
                  "providers[0].base_url: missing required key for kind \"openai-compatible\"",
                  "providers[1].api_key_env: missing required key for kind \"openai\"",
                  "e.g. \"OPENAI_API_KEY\"",
                  "providers[2].base_url: expected a URL starting with http:// or https://",
                  "providers[3].base_url: expected a URL with a host");
}

static void test_config_rejects_bad_names_and_listen_addresses(void **state)
{
    (void)state;
    EXPECT_ERRORS("{'providers':[{'name':'a b','kind':'openai','api_key_env':'OPENAI_API_KEY',"
                  "'model':'m'}],'routes':[{'name':'r x','targets':['a b']}],"
                  "'gateway':{'listen':'localhost'}}",
                  "providers[0].name: expected a name made of letters, digits",
                  "routes[0].name: expected a model name made of letters",
                  "gateway.listen: expected HOST:PORT with a port in 0..65535");
    EXPECT_ERRORS(BASE(",'gateway':{'listen':'127.0.0.1:65536'}"), "gateway.listen: expected");
    EXPECT_ERRORS(BASE(",'gateway':{'listen':'::1:80'}"), "write an IPv6 host in brackets");
    struct config *cfg = parse_ok(BASE(",'gateway':{'listen':'[::1]:0'}"));
    assert_string_equal(cfg->gateway.listen, "[::1]:0");
    config_free(cfg);
}

/* ---- Client keys ------------------------------------------------------------------------ */

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_B "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752"

static void test_config_parses_client_keys(void **state)
{
    (void)state;
    struct config *cfg =
        parse_ok("{'providers':[" PROVIDER_A "," PROVIDER_B "],'routes':[" ROUTE_R
                 ",{'name':'s','targets':['a']}],'clients':["
                 "{'name':'team-a','key_sha256':'" HASH_A "','routes':['s'],'tag':'ta',"
                 "'self_tag':true,'daily_usd':5,'monthly_usd':50,'rpm':60,'tpm':1000,"
                 "'expires':'2027-01-01'},"
                 "{'name':'b','key_sha256':'" HASH_B "','expires':'2027-01-01T12:30:00Z'}]}");
    assert_int_equal(cfg->n_clients, 2);
    const struct config_client *a = &cfg->clients[0], *b = &cfg->clients[1];
    assert_string_equal(a->name, "team-a");
    assert_string_equal(a->key_sha256, HASH_A);
    assert_int_equal(a->n_routes, 1);
    assert_string_equal(cfg->routes[a->routes[0]].name, "s");
    assert_string_equal(a->tag, "ta");
    assert_true(a->self_tag);
    assert_true(a->daily_usd == 5 && a->monthly_usd == 50);
    assert_int_equal(a->rpm, 60);
    assert_int_equal(a->tpm, 1000);
    assert_int_equal(a->expires_ms, INT64_C(1798761600000));
    /* the hash is lower-cased; no routes means every route; no tag means the name */
    assert_string_equal(b->key_sha256,
                        "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752");
    assert_int_equal(b->n_routes, 0);
    assert_null(b->tag);
    assert_false(b->self_tag);
    assert_int_equal(b->expires_ms, INT64_C(1798761600000) + 45000000);
    config_free(cfg);
}

static void test_config_parses_the_fleet_section(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(""));
    assert_null(cfg->fleet.redis); /* fleet mode off */
    assert_string_equal(cfg->fleet.key_prefix, "switchboard:");
    assert_int_equal(cfg->fleet.on_outage, FLEET_OUTAGE_SHARE);
    config_free(cfg);
    cfg = parse_ok(BASE(",'fleet':{'redis':'redis://10.0.0.5:6380/2','name':'gw-1',"
                        "'key_prefix':'sb:','password_env':'SWITCHBOARD_ADMIN_TOKEN',"
                        "'on_outage':'closed','share_breakers':true}"));
    assert_string_equal(cfg->fleet.redis, "redis://10.0.0.5:6380/2");
    assert_string_equal(cfg->fleet.name, "gw-1");
    assert_string_equal(cfg->fleet.key_prefix, "sb:");
    assert_string_equal(cfg->fleet.password, ADMIN_SECRET); /* resolved from the variable */
    assert_int_equal(cfg->fleet.on_outage, FLEET_OUTAGE_CLOSED);
    assert_true(cfg->fleet.share_breakers);
    config_free(cfg);
}

static void test_config_rejects_bad_fleet_settings(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'fleet':{'redis':'rediss://cache:6379','on_outage':'maybe',"
                       "'tls_cert_file':'c.pem'}"),
                  "fleet.tls_cert_file and fleet.tls_key_file: give both or neither",
                  "fleet.on_outage");
    EXPECT_ERRORS(BASE(",'fleet':{'redis':'redis://cache:6379','tls_ca_file':'ca.pem'}"),
                  "fleet.tls_*: set, but fleet.redis is not a rediss:// URL");
    EXPECT_ERRORS(BASE(",'fleet':{'redis':'http://cache'}"), "expected redis://host:port/db");
    EXPECT_ERRORS(BASE(",'fleet':{'redis':'redis://:hunter2@cache'}"),
                  "no user or password in the URL");
    EXPECT_ERRORS(BASE(",'fleet':{'redis':'redis://c','password_env':'sk-live-0123456789abcdef'}"),
                  "fleet.password_env: this looks like an API key itself");
}

static void test_config_rejects_bad_client_keys(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'clients':[{'name':'a','key_sha256':'sbk-0123456789abcdef'},"
                       "{'name':'b','key_sha256':'abc'},"
                       "{'name':'c d','key_sha256':'" HASH_A "','routes':['nope']},"
                       "{'name':'e','key_sha256':'" HASH_A "','expires':'2027-02-31'},"
                       "{'name':'e','key_sha256':'" HASH_B "','rpm':-1,'tag':'a b'},"
                       "{'key_sha256':'sk-live-abc'}]"),
                  "clients[0].key_sha256: this looks like a key itself", "`switchboard keys hash`",
                  "clients[1].key_sha256: expected the key's SHA-256",
                  "clients[2].name: expected a name of 1..64",
                  "clients[2].routes[0]: unknown route \"nope\"",
                  "clients[3].expires: expected a UTC date", "clients[3].key_sha256: duplicate",
                  "clients[4].name: duplicate",
                  "clients[4].rpm:", "clients[4].tag: expected a tag without spaces",
                  "clients[5].name: missing required key");
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(parse_with(BASE(",'clients':[{'name':'a','key_sha256':'sbk-secretvalue42'},"
                                "{'name':'b','key_sha256':'sbk-secretvalue42'}]"),
                           full_env, NULL, &errs));
    for (size_t i = 0; i < errs.n; i++)
        assert_null(strstr(errs.items[i], "secretvalue42"));
    config_diag_cleanup(&errs);
}

static void test_config_warns_about_exposure(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(
        "{'providers':[{'name':'a','kind':'openai-compatible','model':'m',"
        "'base_url':'https://user:s3cr3tpw@h.example/v1'},"
        "{'name':'b','kind':'openai-compatible','model':'m',"
        "'base_url':'http://h.example/v1?Key=s3cr3tq&x=1'},"
        "{'name':'c','kind':'openai-compatible','model':'m','base_url':'http://h.example/v1?x=1'}"
        "],'routes':[{'name':'r','targets':['a','b','c']}],'gateway':{'listen':'0.0.0.0:80'}}");
    struct config_diag warns;
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    assert_true(diag_has(&warns, "gateway.listen \"0.0.0.0:80\" is reachable from other "
                                 "machines and no clients[] keys"));
    assert_true(diag_has(&warns, "providers[0].base_url (\"https://***@h.example/v1\") embeds "
                                 "credentials"));
    assert_true(diag_has(&warns, "providers[1].base_url (\"http://h.example/v1?***\")"));
    assert_false(diag_has(&warns, "providers[2].base_url"));
    for (size_t i = 0; i < warns.n; i++)
        assert_null(strstr(warns.items[i], "s3cr3t"));
    struct buf sum;
    buf_init(&sum);
    config_summary(cfg, &sum);
    assert_null(strstr(buf_str(&sum), "s3cr3t"));
    assert_non_null(strstr(buf_str(&sum), "https://***@h.example/v1"));
    buf_cleanup(&sum);
    config_diag_cleanup(&warns);
    config_free(cfg);

    static const char *const loopback[] = {"127.0.0.1:1", "localhost:1", "[::1]:1"};
    for (size_t i = 0; i < SB_ARRAY_LEN(loopback); i++) {
        char sq[512];
        snprintf(sq, sizeof sq, BASE(",'gateway':{'listen':'%s'}"), loopback[i]);
        cfg = parse_ok(sq);
        config_diag_init(&warns);
        config_warnings(cfg, &warns);
        assert_false(diag_has(&warns, "reachable from other machines"));
        config_diag_cleanup(&warns);
        config_free(cfg);
    }
    cfg = parse_ok(BASE(",'gateway':{'listen':'0.0.0.0:1'},'clients':[{'name':'k',"
                        "'key_sha256':'" HASH_A "'}]"));
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    assert_false(diag_has(&warns, "reachable from other machines"));
    config_diag_cleanup(&warns);
    config_free(cfg);
}

static void test_config_rejects_unreachable_rules_after_catch_all(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'rules':[{'match':{},'route':'r'},{'match':{'tag':'x'},'route':'r'},"
                       "{'match':{'min_prompt_tokens':10,'max_prompt_tokens':5},'route':'rr'},"
                       "{'match':{'model':'g*t'},'route':'r'}]"),
                  "rules[0].match: an empty match matches every request, so the rules after it "
                  "(rules[1] on) are unreachable; make it the last rule",
                  "rules[2].match: min_prompt_tokens 10 > max_prompt_tokens 5",
                  "rules[2].route: unknown route \"rr\"; did you mean \"r\"?",
                  "rules[3].match.model: expected a model name, or a prefix ending in '*'");
    struct config *cfg = parse_ok(BASE(",'rules':[{'match':{'model':'gpt-*','tag':'t',"
                                       "'min_prompt_tokens':0},'route':'r'},"
                                       "{'match':{},'route':'r'}]"));
    assert_string_equal(cfg->rules[0].match_model, "gpt-*");
    assert_string_equal(cfg->rules[0].match_tag, "t");
    assert_int_equal(cfg->rules[0].min_prompt_tokens, 0);
    assert_int_equal(cfg->rules[0].max_prompt_tokens, -1);
    assert_int_equal(cfg->rules[1].route, 0);
    assert_null(cfg->rules[1].match_model);
    config_free(cfg);
}

static void test_config_rejects_inconsistent_router_settings(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'router':{'backoff_base_ms':500,'backoff_cap_ms':100,"
                       "'hedge_after_ms':60000}"),
                  "router.backoff_cap_ms: 100 is below router.backoff_base_ms 500",
                  "router.hedge_after_ms: hedging after 60000 ms never happens within the 60000 "
                  "ms router.deadline_ms");
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "],'routes':[{'name':'r','targets':['a'],"
                  "'deadline_ms':1000,'hedge_after_ms':1000}]}",
                  "routes[0].hedge_after_ms: hedging after 1000 ms never happens within the "
                  "1000 ms deadline");
}

static void test_config_rejects_inconsistent_gateway_settings(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'gateway':{'max_body_bytes':65536,'max_body_bytes_total':4096,"
                       "'listen':'127.0.0.1:8080','admin_listen':'127.0.0.1:8080'}"),
                  "gateway.max_body_bytes_total: 4096 is below gateway.max_body_bytes 65536",
                  "gateway.admin_listen: \"127.0.0.1:8080\" is gateway.listen too");
    EXPECT_ERRORS(BASE(",'gateway':{'admin_listen':'nope','drain_timeout_ms':-1}"),
                  "gateway.admin_listen: expected HOST:PORT", "gateway.drain_timeout_ms");
    EXPECT_ERRORS(BASE(",'gateway':{'threads':65}"), "gateway.threads");
    EXPECT_ERRORS(BASE(",'gateway':{'threads':-1}"), "gateway.threads");
    EXPECT_ERRORS(BASE(",'gateway':{'threads':'two'}"), "gateway.threads");
    /* Two ephemeral ports are two listeners. */
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = parse_with(BASE(",'gateway':{'listen':'127.0.0.1:0',"
                                         "'admin_listen':'127.0.0.1:0',"
                                         "'max_connections_per_client':0,'threads':0}"),
                                    full_env, NULL, &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->gateway.admin_listen, "127.0.0.1:0");
    assert_int_equal(cfg->gateway.max_connections_per_client, 0);
    assert_int_equal(cfg->gateway.threads, 0);
    config_free(cfg);
    config_diag_cleanup(&errs);
}

static void test_config_rejects_bad_budgets(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'budgets':[{'scope':'global','daily_usd':1},"
                       "{'scope':'global','monthly_usd':5,'name':'x'},"
                       "{'scope':'target','name':'nope','daily_usd':1},"
                       "{'scope':'route','daily_usd':1},"
                       "{'scope':'tag','name':'t'},"
                       "{'scope':'route','name':'r','daily_usd':1},"
                       "{'scope':'route','name':'r','monthly_usd':1},"
                       "{'scope':'tag','name':'t','daily_usd':1,'soft_pct':0}]"),
                  "budgets[1]: a second global budget (budgets[0] is one)",
                  "budgets[1].name: a global budget takes no name",
                  "budgets[2].name: unknown provider \"nope\"",
                  "budgets[3].name: missing required key for scope \"route\"",
                  "budgets[4]: no cap set; give daily_usd or monthly_usd",
                  "budgets[6]: a second route budget for \"r\" (budgets[5] is one)",
                  "budgets[7].soft_pct: expected a number in 1..100 % (got 0)");
}

static void test_config_guard_and_route_cache_defaults(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(""));
    const struct config_guard *g = &cfg->guard;
    assert_true(g->enabled);
    assert_int_equal(g->identical_max, 20);
    assert_int_equal(g->identical_window_ms, 60000);
    assert_true(g->spike_factor == 5);
    assert_true(g->spike_min_rps == 2);
    assert_int_equal(g->baseline_window_ms, 300000);
    assert_int_equal(g->action, GUARD_ACTION_THROTTLE);
    const struct config_cache *c = &cfg->routes[0].cache;
    assert_false(c->enabled);
    assert_int_equal(c->ttl_ms, 300000);
    assert_int_equal(c->max_entries, 1000);
    assert_int_equal(c->max_bytes, 67108864);
    config_free(cfg);
    cfg = parse_ok("{'providers':[" PROVIDER_A "],'routes':[{'name':'r','targets':['a'],"
                   "'cache':{'enabled':true,'ttl_ms':1000,'max_entries':5}}],"
                   "'guard':{'action':'cache','identical_max':3,'spike_factor':2.5}}");
    assert_true(cfg->routes[0].cache.enabled);
    assert_int_equal(cfg->routes[0].cache.max_entries, 5);
    assert_int_equal(cfg->guard.action, GUARD_ACTION_CACHE);
    assert_int_equal(cfg->guard.identical_max, 3);
    assert_true(cfg->guard.spike_factor == 2.5);
    assert_string_equal(guard_action_name(cfg->guard.action), "cache");
    config_free(cfg);
}

static void test_config_rejects_bad_guard_and_cache_settings(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE(",'guard':{'action':'throtle'}"),
                  "guard.action: expected one of \"throttle\", \"cache\", \"observe\" (got "
                  "\"throtle\"); did you mean \"throttle\"?");
    EXPECT_ERRORS(BASE(",'guard':{'spike_factor':1}"),
                  "guard.spike_factor: expected a number > 1 and <= 1000 (got 1)");
    EXPECT_ERRORS(BASE(",'guard':{'identical_max':0,'baseline_window_ms':1000}"),
                  "guard.identical_max: expected an integer in 1..1000000 requests (got 0)",
                  "guard.baseline_window_ms: expected an integer in 30000..86400000");
    EXPECT_ERRORS(BASE(",'guard':{'enable':true}"),
                  "guard.enable: unknown key (did you mean \"enabled\"?)");
    EXPECT_ERRORS("{'providers':[" PROVIDER_A "],'routes':[{'name':'r','targets':['a'],"
                  "'cache':{'enabled':'yes','max_bytes':1024}}]}",
                  "routes[0].cache.enabled: expected true or false (got a string)",
                  "routes[0].cache.max_bytes: expected an integer in 65536..4294967296");
}

static void test_config_warns_when_guard_would_cache_without_a_cache(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(",'guard':{'action':'cache'}"));
    struct config_diag warns;
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    assert_true(diag_has(&warns, "guard.action is \"cache\" but no route has cache.enabled"));
    config_diag_cleanup(&warns);
    struct buf out;
    buf_init(&out);
    config_summary(cfg, &out);
    assert_non_null(
        strstr(buf_str(&out), "guard: cache; storm = same prompt > 20 times in 60000 ms"));
    buf_cleanup(&out);
    config_free(cfg);
}

static void test_config_collects_every_error_and_caps_the_list(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{'providers':[" PROVIDER_A "],'routes':[{'name':'r','targets':['a']}],"
                 "'rules':[");
    for (int i = 0; i < 150; i++)
        buf_printf(&b, "%s{'match':{'tag':'x'},'route':'nope%d'}", i ? "," : "", i);
    buf_puts(&b, "]}");
    struct config_diag errs;
    config_diag_init(&errs);
    assert_null(parse_with(buf_str(&b), full_env, NULL, &errs));
    assert_int_equal(errs.n, CONFIG_MAX_ERRORS + 1);
    assert_string_equal(errs.items[CONFIG_MAX_ERRORS], "(50 more errors not shown)");
    config_diag_cleanup(&errs);
    buf_cleanup(&b);
}

/* ---- Environment and secrets ------------------------------------------------------------ */

static void test_config_disables_target_whose_key_variable_is_unset(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = parse_with(
        BASE(",'gateway':{'admin_token_env':'SWITCHBOARD_ADMIN_TOKEN'}"), no_env, NULL, &errs);
    assert_non_null(cfg);
    assert_false(cfg->targets[0].enabled);
    assert_string_equal(cfg->targets[0].disabled_reason, "OPENAI_API_KEY is not set");
    assert_null(cfg->targets[0].api_key);
    assert_false(cfg->targets[1].enabled);
    assert_null(cfg->gateway.admin_token);
    config_free(cfg);

    cfg = parse_with("{'providers':[{'name':'a','kind':'openai','api_key_env':'EMPTY_VAR',"
                     "'model':'m'}],'routes':[{'name':'r','targets':['a']}]}",
                     full_env, NULL, &errs);
    assert_non_null(cfg);
    assert_string_equal(cfg->targets[0].disabled_reason, "EMPTY_VAR is empty");
    config_free(cfg);
    config_diag_cleanup(&errs);
}

static void test_config_resolves_keys_and_never_prints_them(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(",'gateway':{'admin_token_env':'SWITCHBOARD_ADMIN_TOKEN'}"));
    assert_string_equal(cfg->targets[0].api_key, OPENAI_SECRET);
    assert_string_equal(cfg->targets[1].api_key, GEMINI_SECRET);
    assert_string_equal(cfg->gateway.admin_token, ADMIN_SECRET);
    struct buf out;
    buf_init(&out);
    config_summary(cfg, &out);
    struct config_diag warns;
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    for (size_t k = 0; k < SB_ARRAY_LEN(all_secrets); k++) {
        assert_null(strstr(buf_str(&out), all_secrets[k]));
        for (size_t i = 0; i < warns.n; i++)
            assert_null(strstr(warns.items[i], all_secrets[k]));
    }
    assert_non_null(strstr(buf_str(&out), "key from OPENAI_API_KEY"));
    assert_non_null(strstr(buf_str(&out), "admin API on (token from SWITCHBOARD_ADMIN_TOKEN)"));
    config_diag_cleanup(&warns);
    buf_cleanup(&out);
    config_free(cfg);

    /* An invalid config with every key set still names no value (EXPECT_ERRORS checks). */
    EXPECT_ERRORS(BASE(",'gateway':{'admin_token_env':'SWITCHBOARD_ADMIN_TOKEN','x':1}"),
                  "gateway.x: unknown key");
}

/* ---- Warnings --------------------------------------------------------------------------- */

static void expect_warnings(const char *sq, const char **env, const char *const *needles)
{
    struct config_diag errs, warns;
    config_diag_init(&errs);
    config_diag_init(&warns);
    struct config *cfg = parse_with(sq, env, NULL, &errs);
    dump("error", &errs);
    assert_non_null(cfg);
    config_warnings(cfg, &warns);
    for (size_t i = 0; needles[i]; i++) {
        if (!diag_has(&warns, needles[i])) {
            print_message("missing warning containing: %s\n", needles[i]);
            dump("got", &warns);
            fail();
        }
    }
    config_free(cfg);
    config_diag_cleanup(&warns);
    config_diag_cleanup(&errs);
}

static void test_config_warns_about_risky_settings(void **state)
{
    (void)state;
    const char *const cheapest[] = {
        "routes[0] (\"r\"): strategy \"cheapest\" but providers[1] (\"l\") has no price", NULL};
    expect_warnings("{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY',"
                    "'model':'m','price':{'input_per_mtok':1,'output_per_mtok':2}},"
                    "{'name':'l','kind':'openai-compatible','base_url':'http://h:1','model':'m'}"
                    "],'routes':[{'name':'r','targets':['a','l'],'strategy':'cheapest'}]}",
                    full_env, cheapest);

    const char *const timing[] = {
        "router.max_attempts 3 x providers[0].first_byte_timeout_ms 30000 > "
        "router.deadline_ms 60000: if \"a\" stalls, only 2 of 3 attempts fit before the "
        "deadline; lower first_byte_timeout_ms or raise deadline_ms",
        "routes[1].max_attempts 2 x providers[0].first_byte_timeout_ms 30000 > "
        "routes[1].deadline_ms 20000: if \"a\" stalls, even the first attempt's timeout "
        "outlasts the deadline",
        "router.hedge_after_ms 40000 >= providers[0].first_byte_timeout_ms 30000: an attempt "
        "on \"a\" times out before the hedge would start",
        "routes[0] (\"r\"): a single target and no fallback, so calls fail whenever \"a\" does",
        NULL};
    expect_warnings("{'providers':[" PROVIDER_A "],'router':{'hedge_after_ms':40000},"
                    "'routes':[{'name':'r','targets':['a']},{'name':'s','targets':['a'],"
                    "'max_attempts':2,'deadline_ms':20000,'hedge_after_ms':0,"
                    "'fallback':['r']}]}",
                    full_env, timing);

    const char *const disabled[] = {
        "providers[0] (\"a\"): disabled because OPENAI_API_KEY is not set; set the variable",
        "routes[0] (\"r\"): every target is disabled, so every call fails until a key is set",
        NULL};
    expect_warnings(BASE(""), no_env, disabled);

    /* A config without risks has no warnings; a target in two routes warns once. */
    struct config *cfg = parse_ok("{'providers':[{'name':'a','kind':'openai',"
                                  "'api_key_env':'OPENAI_API_KEY','model':'m',"
                                  "'first_byte_timeout_ms':20000}," PROVIDER_B "],"
                                  "'routes':[{'name':'r','targets':['a','b']},"
                                  "{'name':'s','targets':['b','a']}]}");
    struct config_diag warns;
    config_diag_init(&warns);
    config_warnings(cfg, &warns);
    if (warns.n != 1)
        dump("warning", &warns);
    assert_int_equal(warns.n, 1); /* b: 3 x 30000 > 60000 */
    config_diag_cleanup(&warns);
    config_free(cfg);
}

/* ---- Reports and paths ------------------------------------------------------------------ */

static void test_config_summary_lists_targets_and_routes(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = parse_with(
        "{'providers':[{'name':'a','kind':'openai','api_key_env':'OPENAI_API_KEY','model':'m',"
        "'price':{'input_per_mtok':0.15,'output_per_mtok':0.6}}," PROVIDER_B "],"
        "'routes':[{'name':'r','targets':['a','b'],'fallback':['s']},{'name':'s',"
        "'targets':['b'],'strategy':'p2c'}],'rules':[{'match':{'tag':'t'},'route':'s'}],"
        "'budgets':[{'scope':'global','daily_usd':10}]}",
        no_env, NULL, &errs);
    assert_non_null(cfg);
    struct buf out;
    buf_init(&out);
    config_summary(cfg, &out);
    const char *s = buf_str(&out);
    const char *want[] = {"targets (2):",
                          "openai",
                          "https://api.openai.com/v1",
                          "0.15/0.6",
                          "no price",
                          "DISABLED: OPENAI_API_KEY is not set",
                          "routes (2):",
                          "weighted",
                          "a, b -> s",
                          "p2c",
                          "1. tag \"t\" -> s",
                          "global  daily $10",
                          "ledger: switchboard.db"};
    for (size_t i = 0; i < SB_ARRAY_LEN(want); i++) {
        if (!strstr(s, want[i]))
            fail_msg("summary lacks \"%s\":\n%s", want[i], s);
    }
    buf_cleanup(&out);
    config_free(cfg);
    config_diag_cleanup(&errs);
}

static void test_config_schema_markdown_mentions_every_key(void **state)
{
    (void)state;
    struct buf md;
    buf_init(&md);
    config_schema_markdown(&md);
    const struct schema *stack[32] = {&config_schema_root};
    size_t n = 1, tables = 0;
    while (n > 0) {
        const struct schema *s = stack[--n];
        char heading[128];
        snprintf(heading, sizeof heading, s == &config_schema_root ? "### %s" : "### `%s`",
                 s->title);
        assert_non_null(strstr(buf_str(&md), heading));
        tables++;
        assert_true(s->n <= SCHEMA_MAX_ENTRIES);
        for (size_t i = 0; i < s->n; i++) {
            const struct schema_entry *e = &s->entries[i];
            char row[96];
            snprintf(row, sizeof row, "| `%s` |", e->key);
            assert_non_null(strstr(buf_str(&md), row));
            assert_non_null(e->help);
            if (e->type == ST_LONG || e->type == ST_MS || e->type == ST_DOUBLE) {
                assert_true(e->min <= e->max);
                bool def_ok = e->def >= e->min && e->def <= e->max;
                assert_true(def_ok || (e->flags & (SF_INHERIT | SF_REQUIRED)) || e->def_doc);
            }
            if (e->sub)
                stack[n++] = e->sub;
        }
    }
    assert_int_equal(tables, 19); /* 12 + guard, routes[].cache, clients[], users,
                                     routes[].quality_guard, gateway.admin_tokens[], fleet */
    assert_non_null(strstr(buf_str(&md), "| `max_attempts` | integer | 3 | 1..10 |"));
    assert_non_null(strstr(buf_str(&md), "`openai`, `anthropic`, `gemini`, `openai-compatible`"));
    buf_cleanup(&md);
}

static void test_config_resolves_relative_ledger_path_against_config_dir(void **state)
{
    (void)state;
    struct config_diag errs;
    config_diag_init(&errs);
    static const struct {
        const char *source, *ledger, *want;
    } cases[] = {
        {"/etc/switchboard/console.json", "", "/etc/switchboard/switchboard.db"},
        {"/etc/switchboard/console.json", ",'ledger':{'path':'data/l.db'}",
         "/etc/switchboard/data/l.db"},
        {"/etc/switchboard/console.json", ",'ledger':{'path':'/var/lib/l.db'}", "/var/lib/l.db"},
        {"/etc/switchboard/console.json", ",'ledger':{'path':':memory:'}", ":memory:"},
        {"console.json", "", "switchboard.db"},
        {"/console.json", "", "/switchboard.db"},
        {NULL, ",'ledger':{'path':'x.db'}", "x.db"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        char text[512];
        snprintf(text, sizeof text, BASE("%s"), cases[i].ledger);
        struct config *cfg = parse_with(text, full_env, cases[i].source, &errs);
        assert_non_null(cfg);
        assert_string_equal(cfg->ledger.path, cases[i].want);
        config_free(cfg);
    }
    config_diag_cleanup(&errs);
}

static void test_config_finds_targets_and_routes_by_name(void **state)
{
    (void)state;
    struct config *cfg = parse_ok(BASE(""));
    assert_int_equal(config_find_target(cfg, "b"), 1);
    assert_int_equal(config_find_target(cfg, "r"), -1);
    assert_int_equal(config_find_route(cfg, "r"), 0);
    assert_int_equal(config_find_route(cfg, NULL), -1);
    assert_string_equal(provider_kind_name(PROVIDER_OPENAI_COMPATIBLE), "openai-compatible");
    assert_string_equal(route_strategy_name(STRATEGY_LEAST_BUSY), "least-busy");
    assert_string_equal(budget_scope_name(BUDGET_TAG), "tag");
    config_free(cfg);
    config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_example_file_parses_without_errors),
        cmocka_unit_test(test_config_load_reads_a_file_and_names_io_errors),
        cmocka_unit_test(test_config_reads_users_files_and_checks_quality_settings),
        cmocka_unit_test(test_config_minimal_config_gets_all_defaults),
        cmocka_unit_test(test_config_fills_kind_defaults_and_prices),
        cmocka_unit_test(test_config_rejects_unknown_keys_with_a_suggestion),
        cmocka_unit_test(test_config_rejects_wrong_types),
        cmocka_unit_test(test_config_rejects_out_of_range_and_fractional_numbers),
        cmocka_unit_test(test_config_router_workers_default_and_range),
        cmocka_unit_test(test_config_rejects_missing_required_keys),
        cmocka_unit_test(test_config_rejects_bad_enum_values_with_a_suggestion),
        cmocka_unit_test(test_config_rejects_duplicate_names_and_keys),
        cmocka_unit_test(test_config_rejects_routes_naming_unknown_or_repeated_targets),
        cmocka_unit_test(test_config_rejects_fallback_to_unknown_route),
        cmocka_unit_test(test_config_rejects_fallback_cycle),
        cmocka_unit_test(test_config_rejects_weighted_route_with_all_zero_weights),
        cmocka_unit_test(test_config_reports_malformed_json_with_line_and_column),
        cmocka_unit_test(test_config_rejects_empty_file_and_non_object_root),
        cmocka_unit_test(test_config_rejects_keys_pasted_into_api_key_env),
        cmocka_unit_test(test_config_rejects_header_values_with_control_characters),
        cmocka_unit_test(test_config_rejects_an_admin_token_with_control_characters),
        cmocka_unit_test(test_config_reads_named_admin_tokens),
        cmocka_unit_test(test_config_rejects_gemini_model_ids_that_bend_the_url),
        cmocka_unit_test(test_config_requires_base_url_and_key_by_kind),
        cmocka_unit_test(test_config_rejects_bad_names_and_listen_addresses),
        cmocka_unit_test(test_config_rejects_unreachable_rules_after_catch_all),
        cmocka_unit_test(test_config_rejects_inconsistent_router_settings),
        cmocka_unit_test(test_config_rejects_inconsistent_gateway_settings),
        cmocka_unit_test(test_config_rejects_bad_budgets),
        cmocka_unit_test(test_config_guard_and_route_cache_defaults),
        cmocka_unit_test(test_config_rejects_bad_guard_and_cache_settings),
        cmocka_unit_test(test_config_warns_when_guard_would_cache_without_a_cache),
        cmocka_unit_test(test_config_collects_every_error_and_caps_the_list),
        cmocka_unit_test(test_config_disables_target_whose_key_variable_is_unset),
        cmocka_unit_test(test_config_resolves_keys_and_never_prints_them),
        cmocka_unit_test(test_config_warns_about_risky_settings),
        cmocka_unit_test(test_config_summary_lists_targets_and_routes),
        cmocka_unit_test(test_config_schema_markdown_mentions_every_key),
        cmocka_unit_test(test_config_resolves_relative_ledger_path_against_config_dir),
        cmocka_unit_test(test_config_finds_targets_and_routes_by_name),
        cmocka_unit_test(test_config_parses_client_keys),
        cmocka_unit_test(test_config_parses_the_fleet_section),
        cmocka_unit_test(test_config_rejects_bad_fleet_settings),
        cmocka_unit_test(test_config_rejects_bad_client_keys),
        cmocka_unit_test(test_config_warns_about_exposure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
