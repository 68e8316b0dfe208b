/*
 * support_tmp.h - a fresh directory under /tmp for unit tests that need files (a ledger).
 * Linked into every unit test. Single-threaded use; removal runs `rm -rf` on the directory.
 */
#ifndef SB_TEST_SUPPORT_TMP_H
#define SB_TEST_SUPPORT_TMP_H

struct tmp_dir {
    char dir[64];   /* /tmp/sb-unit.XXXXXX, made by tmp_dir_make */
    char path[128]; /* dir/ledger.db (not created) */
};

/* Makes t->dir (fails the test when it cannot) and sets t->path. */
void tmp_dir_make(struct tmp_dir *t);
/* Removes t->dir and all in it; a failure is reported on stderr only. */
void tmp_dir_remove(const struct tmp_dir *t);

/* cmocka fixtures: *state is a malloc'd struct tmp_dir, made and removed around each test. */
int tmp_setup(void **state);
int tmp_teardown(void **state);

#endif
