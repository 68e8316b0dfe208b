/*
 * scratch.c - a per-thread bump arena for parse trees that live only inside one function.
 *
 * cJSON allocates every node and every string separately: parsing one 200-byte stream event
 * is some 30 malloc/free pairs, more than the parse itself. cJSON's hooks (cli_main installs
 * scratch_alloc_hook/scratch_free_hook) send allocations to this thread's arena between
 * scratch_begin() and scratch_end(), and to xmalloc otherwise. Frees of arena memory do no
 * work beyond a count; when the count reaches zero the arena is empty again.
 *
 * Rules: a tree built inside a scratch section is freed on the thread that built it (the
 * free hook recognises this thread's arena by address). scratch_begin() declines (returns
 * false, and allocations go to xmalloc) while anything from an earlier section is still
 * alive, so a tree kept across sections by mistake is never overwritten. Requests that do
 * not fit in what is left go to xmalloc.
 *
 * Under AddressSanitizer the arena is poisoned except for what is handed out, and poisoned
 * again when it empties: overruns and use after the tree's deletion are still reported.
 */
#include <stdint.h>
#include <stdlib.h>

#include "switchboard/util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SCRATCH_BYTES ((size_t)16 * 1024)
#define SCRATCH_ALIGN 16u

struct scratch {
    _Alignas(16) unsigned char mem[SCRATCH_BYTES];
    size_t used; /* bytes handed out since the arena was last empty */
    size_t live; /* allocations not yet freed */
    bool active; /* inside scratch_begin/scratch_end */
    bool ready;  /* poisoned once (sanitizer builds) */
};

static _Thread_local struct scratch arena;

static bool in_arena(const void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)arena.mem;
    return a >= lo && a < lo + SCRATCH_BYTES;
}

/* Everything handed out is free again. */
static void empty(void)
{
    POISON(arena.mem, arena.used);
    arena.used = 0;
}

void *scratch_alloc_hook(size_t n)
{
    size_t need = (n + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1);
    if (!arena.active || need == 0 || need > SCRATCH_BYTES - arena.used)
        return xmalloc(n);
    void *p = arena.mem + arena.used;
    arena.used += need;
    arena.live++;
    UNPOISON(p, n);
    return p;
}

void scratch_free_hook(void *p)
{
    if (!in_arena(p)) {
        free(p);
        return;
    }
    if (--arena.live == 0 && !arena.active)
        empty();
}

bool scratch_begin(void)
{
    if (arena.active || arena.live > 0)
        return false;
    if (!arena.ready) {
        POISON(arena.mem, sizeof arena.mem);
        arena.ready = true;
    }
    empty();
    arena.active = true;
    return true;
}

void scratch_end(void)
{
    arena.active = false;
    if (arena.live == 0)
        empty();
}
