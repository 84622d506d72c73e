/*
 * threads.c: a small persistent pool of POSIX threads for csae_parallel_run.
 *
 * Workers are started on first use and then sleep on a condition variable,
 * so a parallel region costs a wake-up, not a thread creation.  One caller
 * owns the pool at a time; a second concurrent caller runs its tasks on its
 * own thread instead of waiting (results do not depend on the split).
 */
/* pthread_atfork and friends are POSIX, beyond the C11 the library targets. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "kernels.h"

#define MAX_WORKERS 64

static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;

/* Guarded by lock. */
static size_t n_workers;            /* started so far; worker ids are 1..n_workers */
static unsigned long generation;    /* bumped for every job */
static void (*job_task)(void *, size_t);
static void *job_context;
static size_t job_tasks;
static size_t job_pending;          /* workers still running the current job */
static unsigned long born_at[MAX_WORKERS + 1]; /* generation when each worker started */

static void *worker_main(void *arg)
{
    const size_t id = (size_t)arg;
    pthread_mutex_lock(&lock);
    /* Not the generation now: the job that started this worker is newer. */
    unsigned long seen = born_at[id];
    for (;;) {
        while (generation == seen)
            pthread_cond_wait(&wake, &lock);
        seen = generation;
        if (id >= job_tasks)
            continue;
        void (*task)(void *, size_t) = job_task;
        void *context = job_context;
        pthread_mutex_unlock(&lock);
        task(context, id);
        pthread_mutex_lock(&lock);
        if (--job_pending == 0)
            pthread_cond_signal(&finished);
    }
    return NULL;
}

/* A child of fork() has none of the parent's threads: forget them, and
 * reset the locks, which the fork may have copied in a held state. */
static void reset_after_fork(void)
{
    pthread_mutex_init(&pool_owner, NULL);
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
    pthread_cond_init(&finished, NULL);
    n_workers = 0;
    job_pending = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

void csae_parallel_run(size_t n_tasks, void (*task)(void *context, size_t i),
                       void *context)
{
    if (n_tasks <= 1 || pthread_mutex_trylock(&pool_owner) != 0) {
        for (size_t i = 0; i < n_tasks; i++)
            task(context, i);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&lock);
    while (n_workers + 1 < n_tasks && n_workers < MAX_WORKERS) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        born_at[n_workers + 1] = generation;
        const int failed = pthread_create(&thread, &attr, worker_main, (void *)(n_workers + 1));
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        n_workers++;
    }
    const size_t helped = n_tasks - 1 < n_workers ? n_tasks - 1 : n_workers;
    job_task = task;
    job_context = context;
    job_tasks = helped + 1;
    job_pending = helped;
    generation++;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);

    task(context, 0);
    /* Tasks no worker could take (thread creation failed) run here. */
    for (size_t i = helped + 1; i < n_tasks; i++)
        task(context, i);

    pthread_mutex_lock(&lock);
    while (job_pending > 0)
        pthread_cond_wait(&finished, &lock);
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&pool_owner);
}
