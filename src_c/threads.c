/*
 * threads.c: a small persistent pool of POSIX threads for csae_parallel_run,
 * sized to each call.
 *
 * Workers are started on first use, up to the largest request seen, and are
 * never stopped.  A job of n tasks is posted to workers 1..n-1 only, each
 * through its own slot: the caller waits for those, and the others sleep on
 * their own condition variables without being woken, so after one call with
 * 64 threads a 2-thread call still involves one worker, and idle workers
 * cost no CPU time.
 *
 * After a job a worker spins briefly (a few tens of microseconds) watching
 * its slot before it sleeps: training issues several parallel regions per
 * minibatch, so the next job usually arrives while the worker still spins
 * and starts without a kernel wake-up.  One caller owns the pool at a time;
 * a second concurrent caller runs its tasks on its own thread instead of
 * waiting (results do not depend on the split).
 */
/* pthread_atfork, sched_yield and friends are POSIX, beyond the C11 the
 * library targets. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "kernels.h"

/* The caller's thread takes task 0 of a job of at most CSAE_MAX_THREADS. */
#define MAX_WORKERS (CSAE_MAX_THREADS - 1)
/* Polls of a job counter before a worker goes to sleep (each with a CPU
 * pause hint: some tens of microseconds in all). */
#define SPIN_POLLS 4000
/* Polls after which the caller, waiting for its workers, yields its core
 * between polls: a worker that was sleeping, or that shares the core with
 * other processes, then gets to run sooner. */
#define WAIT_POLLS_BEFORE_YIELD 2000

/* One worker's slot, on its own cache line so that a worker spinning on its
 * counter does not share a line with the others' counters. */
typedef struct {
    _Alignas(64) atomic_ulong posted; /* jobs posted to this worker */
    atomic_ulong runs;                /* jobs it has run (for csae_pool_stats) */
    pthread_cond_t wake;              /* it sleeps here, under `lock` */
    unsigned long born;               /* `posted` when it started; under `lock` */
} worker_slot;

static pthread_mutex_t pool_owner = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static worker_slot slots[MAX_WORKERS + 1]; /* worker ids are 1..n_workers */
static pthread_once_t conds_once = PTHREAD_ONCE_INIT;

/* The current job.  Its fields are written before the participants' slots
 * are bumped (release) and read after a worker sees its bump (acquire). */
static void (*job_task)(void *, size_t);
static void *job_context;
static atomic_size_t job_pending;   /* participants yet to finish the current job */

/* Guarded by lock. */
static size_t n_workers;            /* started so far */
static size_t last_job_workers;     /* workers the last parallel job waited on */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void init_conds(void)
{
    for (size_t i = 0; i <= MAX_WORKERS; i++)
        pthread_cond_init(&slots[i].wake, NULL);
}

/* The next value of the slot's counter after `seen`: spin a little, then
 * sleep for it. */
static unsigned long wait_for_job(worker_slot *slot, unsigned long seen)
{
    for (int poll = 0; poll < SPIN_POLLS; poll++) {
        const unsigned long now = atomic_load_explicit(&slot->posted, memory_order_acquire);
        if (now != seen)
            return now;
        cpu_relax();
    }
    pthread_mutex_lock(&lock);
    unsigned long now;
    /* The caller bumps the counter and then signals under this lock, so
     * checking it here, under the lock, cannot miss a job. */
    while ((now = atomic_load_explicit(&slot->posted, memory_order_acquire)) == seen)
        pthread_cond_wait(&slot->wake, &lock);
    pthread_mutex_unlock(&lock);
    return now;
}

static void *worker_main(void *arg)
{
    const size_t id = (size_t)arg;
    worker_slot *slot = &slots[id];
    pthread_mutex_lock(&lock);
    /* Not the counter now: the job that started this worker is newer. */
    unsigned long seen = slot->born;
    pthread_mutex_unlock(&lock);
    for (;;) {
        seen = wait_for_job(slot, seen);
        /* Only participants are posted a job, so this worker has a task:
         * its id.  The caller waits for every participant before it posts
         * the next job, so no worker still reads one job's fields then. */
        job_task(job_context, id);
        atomic_fetch_add_explicit(&slot->runs, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&job_pending, 1, memory_order_release);
    }
    return NULL;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
#ifndef _WIN32
/* A child of fork() has none of the parent's threads: forget them, and
 * reset the locks, which the fork may have copied in a held state. */
static void reset_after_fork(void)
{
    pthread_mutex_init(&pool_owner, NULL);
    pthread_mutex_init(&lock, NULL);
    for (size_t i = 0; i <= MAX_WORKERS; i++)
        pthread_cond_init(&slots[i].wake, NULL);
    n_workers = 0;
    last_job_workers = 0;
    atomic_store(&job_pending, 0);
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }
#else
/* Windows has no fork(): nothing to reset. */
static void register_atfork(void) {}
#endif

/* Start workers until there are `want`, or thread creation fails.  Under
 * lock. */
static void start_workers(size_t want)
{
    while (n_workers < want) {
        const size_t id = n_workers + 1;
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        slots[id].born = atomic_load_explicit(&slots[id].posted, memory_order_relaxed);
        const int failed = pthread_create(&thread, &attr, worker_main, (void *)id);
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        n_workers++;
    }
}

void csae_parallel_run(size_t n_tasks, void (*task)(void *context, size_t i),
                       void *context)
{
    if (n_tasks <= 1 || pthread_mutex_trylock(&pool_owner) != 0) {
        for (size_t i = 0; i < n_tasks; i++)
            task(context, i);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_once(&conds_once, init_conds);
    pthread_mutex_lock(&lock);
    const size_t want = n_tasks - 1 < MAX_WORKERS ? n_tasks - 1 : MAX_WORKERS;
    start_workers(want);
    const size_t helped = want < n_workers ? want : n_workers;
    job_task = task;
    job_context = context;
    last_job_workers = helped;
    atomic_store_explicit(&job_pending, helped, memory_order_relaxed);
    for (size_t id = 1; id <= helped; id++) {
        atomic_fetch_add_explicit(&slots[id].posted, 1, memory_order_release);
        pthread_cond_signal(&slots[id].wake);
    }
    pthread_mutex_unlock(&lock);

    task(context, 0);
    /* Tasks no worker could take (thread creation failed) run here. */
    for (size_t i = helped + 1; i < n_tasks; i++)
        task(context, i);

    /* The others finish within the same short region: wait by spinning,
     * yielding the core once the wait grows long. */
    for (size_t poll = 0; atomic_load_explicit(&job_pending, memory_order_acquire) > 0; poll++) {
        if (poll < WAIT_POLLS_BEFORE_YIELD)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&pool_owner);
}

void csae_pool_stats(size_t *workers, size_t *last_job, unsigned long *worker_runs)
{
    pthread_mutex_lock(&lock);
    unsigned long runs = 0;
    for (size_t id = 1; id <= n_workers; id++)
        runs += atomic_load_explicit(&slots[id].runs, memory_order_relaxed);
    if (workers)
        *workers = n_workers;
    if (last_job)
        *last_job = last_job_workers;
    if (worker_runs)
        *worker_runs = runs;
    pthread_mutex_unlock(&lock);
}
