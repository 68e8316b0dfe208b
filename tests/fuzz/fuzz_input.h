/*
 * fuzz_input.h - the fuzzer's input read as a stream of small choices, for the targets that
 * drive the router loop (fuzz_router.c, fuzz_router_workers.c): each choice takes one byte
 * modulo its range, and past the input's end every choice is 0, so any input, even an empty
 * one, is a whole run that ends. Header only: each target includes it once.
 */
#ifndef SWITCHBOARD_FUZZ_INPUT_H
#define SWITCHBOARD_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_input {
    const uint8_t *p; /* the fuzzer's bytes, borrowed for the run */
    size_t n, at;     /* their length, and how many choices were taken */
};

/* The next choice, 0 .. mod - 1 (mod > 0). */
static inline unsigned fuzz_next(struct fuzz_input *in, unsigned mod)
{
    if (in->at >= in->n)
        return 0;
    return in->p[in->at++] % mod;
}

#endif
