/*
 * support_tmp.c - see support_tmp.h.
 */
#include "support_tmp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

void tmp_dir_make(struct tmp_dir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/sb-unit.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/ledger.db", t->dir);
}

void tmp_dir_remove(const struct tmp_dir *t)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->dir);
}

int tmp_setup(void **state)
{
    struct tmp_dir *t = calloc(1, sizeof *t);
    assert_non_null(t);
    tmp_dir_make(t);
    *state = t;
    return 0;
}

int tmp_teardown(void **state)
{
    struct tmp_dir *t = *state;
    tmp_dir_remove(t);
    free(t);
    return 0;
}
