/*
 * test_cli_dumpable.c - the switchboard process is not dumpable (no core file full of keys,
 * no ptrace or /proc/PID/mem for other processes of the user) unless
 * SWITCHBOARD_DEBUG_DUMPABLE=1 says otherwise. Each case runs cli_main in a child process
 * and reports prctl(PR_GET_DUMPABLE) as its exit status.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "switchboard/cli.h"

/* Runs `switchboard version` in a child with the debug variable set to debug (NULL: unset);
 * returns the child's PR_GET_DUMPABLE. */
static int dumpable_after_cli(const char *debug)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char a0[] = "switchboard", a1[] = "version";
        char *argv[] = {a0, a1, NULL};
        if (debug)
            setenv("SWITCHBOARD_DEBUG_DUMPABLE", debug, 1);
        else
            unsetenv("SWITCHBOARD_DEBUG_DUMPABLE");
        if (!freopen("/dev/null", "w", stdout))
            _exit(99);
        int rc = cli_main(2, argv);
        _exit(rc != 0 ? 98 : prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_cli_makes_the_process_not_dumpable(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1); /* the test itself is */
    assert_int_equal(dumpable_after_cli(NULL), 0);
    assert_int_equal(dumpable_after_cli("0"), 0);
}

static void test_cli_debug_variable_keeps_the_process_dumpable(void **state)
{
    (void)state;
    assert_int_equal(dumpable_after_cli("1"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_makes_the_process_not_dumpable),
        cmocka_unit_test(test_cli_debug_variable_keeps_the_process_dumpable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
