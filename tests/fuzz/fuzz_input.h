/*
 * fuzz_input.h - the fuzzer's input read as a stream of small choices, for the targets that
 * build their input from a script (fuzz_router.c, fuzz_router_workers.c, fuzz_passthrough.c,
 * fuzz_json_pass.c, fuzz_gateway_writers.c): each choice takes one byte modulo its range,
 * and past the input's end every choice is 0 and every string empty, so any input, even an
 * empty one, is a whole run that ends. Header only: each target includes it once.
 */
#ifndef SWITCHBOARD_FUZZ_INPUT_H
#define SWITCHBOARD_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fuzz_input {
    const uint8_t *p; /* the fuzzer's bytes, borrowed for the run */
    size_t n, at;     /* their length, and how many were read */
};

/* The next byte, 0 past the end. */
static inline uint8_t fuzz_byte(struct fuzz_input *in)
{
    if (in->at >= in->n)
        return 0;
    return in->p[in->at++];
}

/* The next choice, 0 .. mod - 1 (mod > 0). */
static inline unsigned fuzz_next(struct fuzz_input *in, unsigned mod)
{
    return fuzz_byte(in) % mod;
}

/* How many bytes are left to read. */
static inline size_t fuzz_left(const struct fuzz_input *in)
{
    return in->n - in->at;
}

/* One of v[0..n), chosen by the next byte. */
static inline const char *fuzz_pick(struct fuzz_input *in, const char *const *v, size_t n)
{
    return v[fuzz_byte(in) % n];
}
#define FUZZ_PICK(in, v) fuzz_pick(in, v, sizeof v / sizeof v[0])

/* A string of up to 255 bytes, its length in the next byte (cut at the input's end), copied
 * NUL-terminated into out (room for 256). Returns its length. */
static inline size_t fuzz_str(struct fuzz_input *in, char *out)
{
    size_t len = fuzz_byte(in);
    if (len > fuzz_left(in))
        len = fuzz_left(in);
    if (len > 0)
        memcpy(out, in->p + in->at, len);
    out[len] = '\0';
    in->at += len;
    return len;
}

#endif
