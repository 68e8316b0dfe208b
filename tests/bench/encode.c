/*
 * encode.c - `make bench`'s encoder figure: a worst-case 4 MiB request (calls c0..cN-1,
 * then one user turn alternating a result without a function name and a text: the shape
 * that was cubic for Anthropic and quadratic for Gemini) parsed as the gateway parses it and
 * encoded for each wire format. Prints the best of 5 runs per adapter, the encoder's step
 * count (provider_encode_steps) and PASS/MISS against a generous bound: the router thread
 * encodes, and the issue saw a 3.7 MB request hold it for 214 s. Before it, the same for
 * two plain histories of the same size (user and assistant turns of 220 bytes, bigstall.sh's
 * shape, and of 256 KiB): what a big prompt costs the router thread per attempt.
 * Links libswitchboard. Usage: encode [BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchboard/provider.h"

#define BOUND_MS 1000.0 /* per encode of the 4 MiB worst case */

static char *worst_body(size_t bytes, size_t *n_messages)
{
    struct buf b;
    size_t calls = bytes / 220 + 1;
    buf_init(&b);
    buf_puts(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"go\"}");
    for (size_t k = 0; k < calls; k++)
        buf_printf(
            &b,
            ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c%zu\",\"type\":\"function\","
            "\"function\":{\"name\":\"f%zu\",\"arguments\":\"{}\"}}]}",
            k, k % 7);
    for (size_t k = 0; k < calls; k++)
        buf_printf(&b,
                   ",{\"role\":\"tool\",\"tool_call_id\":\"c%zu\",\"content\":\"result %zu\"}"
                   ",{\"role\":\"user\",\"content\":\"some text between the results, %zu\"}",
                   k, k, k);
    buf_puts(&b, "]}");
    *n_messages = 1 + 3 * calls;
    return buf_take(&b);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A plain history of about `bytes`: turns of `turn` bytes of text, user and assistant in
 * turn (tests/bench/bigstall.sh's shape at 220 bytes; a few huge turns at 256 KiB). */
static char *history_body(size_t bytes, size_t turn, size_t *n_messages)
{
    struct buf b;
    size_t n = bytes / turn + 1;
    char *text = malloc(turn + 1);
    static const char words[] = "lorem ipsum dolor sit amet, \\\"consectetur\\\" elit\\n";
    for (size_t k = 0; k < turn; k++)
        text[k] = words[k % (sizeof words - 1)];
    if (text[turn - 1] == '\\')
        text[turn - 1] = '.'; /* not half an escape */
    text[turn] = '\0';
    buf_init(&b);
    buf_puts(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"}");
    for (size_t k = 0; k < n; k++)
        buf_printf(&b, ",{\"role\":\"%s\",\"content\":\"%s\"}", k % 2 ? "assistant" : "user", text);
    buf_puts(&b, "]}");
    free(text);
    *n_messages = n + 1;
    return buf_take(&b);
}

/* Parses body as the gateway does, encodes it for each wire format and prints the best of 5
 * runs per adapter; false when one misses the bound or refuses. Takes body. */
static bool run_shape(const char *label, char *body, size_t n)
{
    static const struct {
        const struct provider_ops *ops;
        enum provider_kind kind;
    } adapters[] = {
        {&provider_openai, PROVIDER_OPENAI},
        {&provider_anthropic, PROVIDER_ANTHROPIC},
        {&provider_gemini, PROVIDER_GEMINI},
    };
    char msg[PROVIDER_MSG_MAX] = "", name[] = "bench", url[] = "http://127.0.0.1:1/v1",
         model[] = "gemini-2.5-flash", version[] = "2023-06-01";
    size_t bytes = strlen(body);
    struct llm_request req;
    llm_request_init(&req);
    double t0 = now_ms();
    if (openai_request_parse(body, bytes, &req, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "encode: parse failed: %s\n", msg);
        exit(1);
    }
    printf("encode %s: %.1f MiB, %zu messages; gateway parse %.0f ms\n", label,
           (double)bytes / (1024.0 * 1024.0), n, now_ms() - t0);
    bool pass = true;
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++) {
        struct config_target t = {.name = name,
                                  .kind = adapters[i].kind,
                                  .base_url = url,
                                  .model = model,
                                  .anthropic_version = version};
        double best = 1e300;
        uint64_t steps = 0;
        for (int run = 0; run < 5; run++) {
            struct http_request out;
            http_request_init(&out);
            uint64_t s0 = provider_encode_steps();
            double a = now_ms();
            enum sb_status st = adapters[i].ops->encode(&t, &req, &out, msg, sizeof msg);
            double ms = now_ms() - a;
            steps = provider_encode_steps() - s0;
            http_request_cleanup(&out);
            if (st != SB_OK) {
                fprintf(stderr, "encode: %s refused: %s\n", adapters[i].ops->name, msg);
                exit(1);
            }
            best = ms < best ? ms : best;
        }
        pass = pass && best < BOUND_MS;
        printf("  %-10s %8.1f ms  %6.1f MiB/s  %9llu steps (%.1f per message)\n",
               adapters[i].ops->name, best, (double)bytes / (1024.0 * 1024.0) / (best / 1e3),
               (unsigned long long)steps, (double)steps / (double)n);
    }
    llm_request_cleanup(&req);
    free(body);
    return pass;
}

int main(int argc, char **argv)
{
    size_t bytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 4u * 1024 * 1024, n = 0;
    char *body = history_body(bytes, 220, &n);
    run_shape("history of 220-byte turns", body, n);
    body = history_body(bytes, 256 * 1024, &n);
    run_shape("history of 256 KiB turns", body, n);
    body = worst_body(bytes, &n);
    bool pass = run_shape("worst case", body, n);
    printf("encode worst case: %s (bound: %.0f ms per encode)\n", pass ? "PASS" : "MISS", BOUND_MS);
    return 0;
}
