/*
 * pool_test.c: the worker pool of src_c/threads.c on its own, built by
 * tests/test_threads.py (plainly and under ThreadSanitizer):
 *
 *   cc -std=c11 -Isrc_c tests/pool_test.c src_c/threads.c -lpthread
 *
 * Checks that every task of a job runs exactly once, that a job of k tasks
 * involves k - 1 workers and wakes no other (counted through the
 * csae_pool_stats test hook), that concurrent callers and a fork() child
 * each get every task done, and prints "<passed> passed, <failed> failed".
 * --no-fork leaves the fork out (ThreadSanitizer cannot follow one).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels.h"

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAILED: %s\n", what);
    }
}

/* A job that counts how often each of its tasks ran. */
typedef struct {
    atomic_int runs[CSAE_MAX_THREADS];
} count_job;

static void count_task(void *context, size_t i)
{
    count_job *job = context;
    /* Some work, so that workers really overlap with the caller. */
    volatile double x = 0;
    for (int k = 0; k < 2000; k++)
        x += k;
    atomic_fetch_add(&job->runs[i], 1);
}

/* Runs a job of n tasks; 1 if every task ran exactly once. */
static int run_job(size_t n)
{
    count_job job;
    for (size_t i = 0; i < CSAE_MAX_THREADS; i++)
        atomic_init(&job.runs[i], 0);
    csae_parallel_run(n, count_task, &job);
    int ok = 1;
    for (size_t i = 0; i < CSAE_MAX_THREADS; i++)
        ok &= atomic_load(&job.runs[i]) == (i < n ? 1 : 0);
    return ok;
}

static void *concurrent_caller(void *arg)
{
    int *ok = arg;
    for (int j = 0; j < 200; j++)
        *ok &= run_job(3 + (size_t)(j % 3));
    return NULL;
}

int main(int argc, char **argv)
{
    /* ThreadSanitizer cannot follow a fork() after threads started. */
    const int no_fork = argc > 1 && strcmp(argv[1], "--no-fork") == 0;
    size_t workers, last;
    unsigned long runs_before, runs_after;

    check(run_job(1), "a one-task job runs on the caller");
    csae_pool_stats(&workers, NULL, NULL);
    check(workers == 0, "a one-task job starts no worker");

    check(run_job(8), "every task of an 8-task job runs once");
    csae_pool_stats(&workers, &last, &runs_before);
    check(workers == 7 && last == 7, "an 8-task job starts and waits on 7 workers");

    /* After the big job, small jobs involve only the workers they need:
     * the idle ones are never woken, so they run no job. */
    int ok = 1;
    for (int j = 0; j < 500; j++)
        ok &= run_job(2);
    csae_pool_stats(&workers, &last, &runs_after);
    check(ok, "every task of 500 two-task jobs runs once");
    check(workers == 7, "small jobs start no worker");
    check(last == 1, "a two-task job waits on one worker");
    check(runs_after - runs_before == 500, "500 two-task jobs run 500 worker tasks, no more");

    ok = run_job(CSAE_MAX_THREADS);
    csae_pool_stats(&workers, &last, NULL);
    check(ok, "every task of a CSAE_MAX_THREADS-task job runs once");
    check(workers == CSAE_MAX_THREADS - 1 && last == CSAE_MAX_THREADS - 1,
          "the largest job uses CSAE_MAX_THREADS - 1 workers");
    ok = run_job(3);
    csae_pool_stats(NULL, &last, NULL);
    check(ok && last == 2, "then a three-task job waits on two workers");

    /* Callers that find the pool busy run their tasks themselves. */
    pthread_t threads[4];
    int oks[4] = {1, 1, 1, 1};
    for (int t = 0; t < 4; t++)
        pthread_create(&threads[t], NULL, concurrent_caller, &oks[t]);
    for (int t = 0; t < 4; t++)
        pthread_join(threads[t], NULL);
    check(oks[0] && oks[1] && oks[2] && oks[3],
          "four concurrent callers get every task done once");

    /* A child of fork() starts its own workers. */
    if (!no_fork) {
        fflush(stdout);
        const pid_t child = fork();
        if (child == 0) {
            const int child_ok = run_job(4) && run_job(2) && run_job(4);
            size_t child_workers;
            csae_pool_stats(&child_workers, NULL, NULL);
            _exit(child_ok && child_workers == 3 ? 0 : 1);
        }
        int status = 0;
        waitpid(child, &status, 0);
        check(child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "a forked child starts its own workers and runs its jobs");
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
