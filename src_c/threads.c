/*
 * threads.c: a small persistent pool of POSIX threads for csae_parallel_run.
 *
 * Workers are started on first use.  After a job a worker spins briefly
 * (a few tens of microseconds) watching for the next one before it sleeps
 * on a condition variable: training issues several parallel regions per
 * minibatch, and a single-row encode of a large model is only microseconds
 * long, so the next job usually arrives while the worker still spins and
 * starts without a kernel wake-up.  One caller owns the pool at a time; a
 * second concurrent caller runs its tasks on its own thread instead of
 * waiting (results do not depend on the split).
 */
/* pthread_atfork and friends are POSIX, beyond the C11 the library targets. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "kernels.h"

#define MAX_WORKERS 64
/* Polls of the job counter before a worker goes to sleep (each with a CPU
 * pause hint: some tens of microseconds in all). */
#define SPIN_POLLS 4000

static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

/* The current job.  Its fields are written before `generation` is bumped
 * (release) and read after a worker sees the new value (acquire). */
static void (*job_task)(void *, size_t);
static void *job_context;
static size_t job_tasks;
static atomic_ulong generation;     /* bumped for every job */
static atomic_size_t job_pending;   /* workers yet to acknowledge the current job */

/* Guarded by lock. */
static size_t n_workers;            /* started so far; worker ids are 1..n_workers */
static unsigned long born_at[MAX_WORKERS + 1]; /* generation when each worker started */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The next generation after `seen`: spin a little, then sleep for it. */
static unsigned long wait_for_job(unsigned long seen)
{
    for (int poll = 0; poll < SPIN_POLLS; poll++) {
        const unsigned long now = atomic_load_explicit(&generation, memory_order_acquire);
        if (now != seen)
            return now;
        cpu_relax();
    }
    pthread_mutex_lock(&lock);
    unsigned long now;
    /* The caller bumps generation and then broadcasts under this lock, so
     * checking it here, under the lock, cannot miss a job. */
    while ((now = atomic_load_explicit(&generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&wake, &lock);
    pthread_mutex_unlock(&lock);
    return now;
}

static void *worker_main(void *arg)
{
    const size_t id = (size_t)arg;
    pthread_mutex_lock(&lock);
    /* Not the generation now: the job that started this worker is newer. */
    unsigned long seen = born_at[id];
    pthread_mutex_unlock(&lock);
    for (;;) {
        seen = wait_for_job(seen);
        if (id < job_tasks)
            job_task(job_context, id);
        /* Every worker acknowledges every job, taking part or not, so no
         * worker can still be reading one job's fields when the next is
         * posted. */
        atomic_fetch_sub_explicit(&job_pending, 1, memory_order_release);
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
    n_workers = 0;
    atomic_store(&job_pending, 0);
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
        born_at[n_workers + 1] = atomic_load(&generation);
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
    atomic_store_explicit(&job_pending, n_workers, memory_order_relaxed);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);

    task(context, 0);
    /* Tasks no worker could take (thread creation failed) run here. */
    for (size_t i = helped + 1; i < n_tasks; i++)
        task(context, i);

    /* The others finish within the same short region: wait by spinning. */
    while (atomic_load_explicit(&job_pending, memory_order_acquire) > 0)
        cpu_relax();
    pthread_mutex_unlock(&pool_owner);
}
