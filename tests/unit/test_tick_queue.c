/*
 * Unit tests for publisher/tick_queue.c: order, back-pressure, the wake
 * contract, close, and many producers.
 *
 * No test asserts on timing. Where a test must know that a producer is
 * blocked, it waits until the ring is full and then checks that the producer
 * has not returned, which a correct queue can never let it do.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tick_queue.h"

#include "support/timing.h"

static void
make_tick(struct tick *t, uint64_t seq)
{
	memset(t, 0, sizeof *t);
	t->seq = seq;
	t->ts = (int64_t)seq;
	snprintf(t->symbol, sizeof t->symbol, "S%u", (unsigned)(seq % 7));
	tick_set(t, FIELD_LAST, (struct decimal){(int64_t)seq, 2});
}

/* Wait until the queue holds `depth` ticks; a generous bound turns a bug
 * into a failure instead of a hang. */
static void
wait_for_depth(struct tick_queue *q, size_t depth)
{
	int i;

	for (i = 0; i < 20000 && tick_queue_depth(q) != depth; i++)
		timing_sleep_ms(1);
	assert_int_equal(tick_queue_depth(q), depth);
}

static void
count_wake(void *ctx)
{
	__atomic_add_fetch((int *)ctx, 1, __ATOMIC_SEQ_CST);
}

static int
wakes(int *counter)
{
	return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static void
test_create_refuses_zero_capacity(void **state)
{
	assert_null(tick_queue_create(0, NULL, NULL));
	tick_queue_destroy(NULL);
}

static void
test_order_kept_across_wrap(void **state)
{
	struct tick_queue *q = tick_queue_create(5, NULL, NULL);
	struct tick in[3], out[8];
	uint64_t next_in = 1, next_out = 1;
	int round;
	size_t i, n;

	assert_non_null(q);
	/* Pushing 3 and draining 3 into a ring of 5 moves the head around
	 * the end of the ring many times. */
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 3; i++)
			make_tick(&in[i], next_in++);
		assert_int_equal(tick_queue_push(q, in, 3), 0);
		n = tick_queue_drain(q, out, 8);
		assert_int_equal(n, 3);
		for (i = 0; i < n; i++) {
			assert_int_equal(out[i].seq, next_out);
			assert_true(tick_has(&out[i], FIELD_LAST));
			assert_int_equal(out[i].value[FIELD_LAST].mantissa,
			                 (int64_t)next_out);
			next_out++;
		}
	}
	assert_int_equal(tick_queue_drain(q, out, 8), 0);
	tick_queue_destroy(q);
}

static void
test_drain_respects_max(void **state)
{
	struct tick_queue *q = tick_queue_create(8, NULL, NULL);
	struct tick in[6], out[6];
	size_t i;

	for (i = 0; i < 6; i++)
		make_tick(&in[i], i + 1);
	assert_int_equal(tick_queue_push(q, in, 6), 0);
	assert_int_equal(tick_queue_depth(q), 6);
	assert_int_equal(tick_queue_drain(q, out, 4), 4);
	assert_int_equal(out[3].seq, 4);
	assert_int_equal(tick_queue_depth(q), 2);
	assert_int_equal(tick_queue_drain(q, out, 4), 2);
	assert_int_equal(out[0].seq, 5);
	assert_int_equal(out[1].seq, 6);
	assert_int_equal(tick_queue_drain(q, out, 0), 0);
	tick_queue_destroy(q);
}

static void
test_wake_once_per_empty_to_nonempty(void **state)
{
	int counter = 0;
	struct tick_queue *q = tick_queue_create(16, count_wake, &counter);
	struct tick t[4], out[16];
	size_t i;

	for (i = 0; i < 4; i++)
		make_tick(&t[i], i + 1);
	assert_int_equal(tick_queue_push(q, t, 2), 0);
	assert_int_equal(wakes(&counter), 1);
	/* Already non-empty: no more wakes, one wake stands for them all. */
	assert_int_equal(tick_queue_push(q, t, 4), 0);
	assert_int_equal(tick_queue_push(q, t, 1), 0);
	assert_int_equal(wakes(&counter), 1);
	/* A partial drain leaves it non-empty: still no wake. */
	assert_int_equal(tick_queue_drain(q, out, 3), 3);
	assert_int_equal(tick_queue_push(q, t, 1), 0);
	assert_int_equal(wakes(&counter), 1);
	/* Emptied, then pushed again: one more. */
	assert_int_equal(tick_queue_drain(q, out, 16), 5);
	assert_int_equal(tick_queue_push(q, t, 3), 0);
	assert_int_equal(wakes(&counter), 2);
	/* An empty push changes nothing. */
	assert_int_equal(tick_queue_drain(q, out, 16), 3);
	assert_int_equal(tick_queue_push(q, t, 0), 0);
	assert_int_equal(wakes(&counter), 2);
	tick_queue_destroy(q);
}

struct producer {
	struct tick_queue *q;
	const struct tick *ticks;
	size_t n;
	int rc;
	int done;
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;

	p->rc = tick_queue_push(p->q, p->ticks, p->n);
	__atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void
test_blocks_when_full_and_resumes(void **state)
{
	int counter = 0;
	struct tick_queue *q = tick_queue_create(4, count_wake, &counter);
	struct tick in[10], out[10];
	struct producer p = {q, in, 10, 99, 0};
	pthread_t th;
	size_t i, got = 0;

	for (i = 0; i < 10; i++)
		make_tick(&in[i], i + 1);
	assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
	wait_for_depth(q, 4);
	/* The consumer must be woken for the first 4 before the producer
	 * blocks on the rest, or nobody would ever drain them. */
	for (i = 0; i < 20000 && wakes(&counter) == 0; i++)
		timing_sleep_ms(1);
	assert_int_equal(wakes(&counter), 1);
	/* The batch of 10 cannot fit in 4: the producer must be waiting. */
	assert_int_equal(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(tick_queue_depth(q), 4);
	while (got < 10) {
		size_t n = tick_queue_drain(q, out + got, 10 - got);

		got += n;
		if (n == 0)
			timing_sleep_ms(1);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.rc, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(out[i].seq, i + 1);
	tick_queue_destroy(q);
}

static void
test_close_unblocks_blocked_producer(void **state)
{
	struct tick_queue *q = tick_queue_create(2, NULL, NULL);
	struct tick in[5], out[5];
	struct producer p = {q, in, 5, 99, 0};
	pthread_t th;
	size_t i;

	for (i = 0; i < 5; i++)
		make_tick(&in[i], i + 1);
	assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
	wait_for_depth(q, 2);
	assert_int_equal(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);
	tick_queue_close(q);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.rc, -1);
	/* Pushes after close are refused; what was queued can be drained. */
	assert_int_equal(tick_queue_push(q, in, 1), -1);
	assert_int_equal(tick_queue_drain(q, out, 5), 2);
	assert_int_equal(out[0].seq, 1);
	assert_int_equal(out[1].seq, 2);
	tick_queue_destroy(q);
}

#define PRODUCERS    4
#define PER_PRODUCER 50000

static sem_t mp_wake_sem;

static void
post_wake(void *ctx)
{
	sem_post(&mp_wake_sem);
}

struct mp_producer {
	struct tick_queue *q;
	unsigned id;
	int rc;
};

/* Push this producer's seqs (id << 32 | i) in batches of varying size. */
static void *
mp_producer_main(void *arg)
{
	struct mp_producer *p = arg;
	struct tick batch[37];
	uint64_t i = 0;
	size_t n = 1;

	p->rc = 0;
	while (i < PER_PRODUCER) {
		size_t k;

		for (k = 0; k < n && i < PER_PRODUCER; k++, i++)
			make_tick(&batch[k], ((uint64_t)p->id << 32) | i);
		if (tick_queue_push(p->q, batch, k) != 0) {
			p->rc = -1;
			break;
		}
		n = n % 37 + 1;
	}
	return NULL;
}

static void
test_many_producers_deliver_each_tick_once(void **state)
{
	struct tick_queue *q;
	struct mp_producer prod[PRODUCERS];
	pthread_t th[PRODUCERS];
	uint64_t next[PRODUCERS] = {0};
	struct tick out[64];
	size_t total = 0;
	unsigned i;

	assert_int_equal(sem_init(&mp_wake_sem, 0, 0), 0);
	q = tick_queue_create(64, post_wake, NULL);
	assert_non_null(q);
	for (i = 0; i < PRODUCERS; i++) {
		prod[i].q = q;
		prod[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, mp_producer_main,
		                                &prod[i]),
		                 0);
	}
	/*
	 * Consume as the service thread does: wait for a wake, then drain
	 * until empty. If the wake contract were broken this would stall, so
	 * the wait has a deadlock guard of several seconds.
	 */
	while (total < (size_t)PRODUCERS * PER_PRODUCER) {
		struct timespec until;
		size_t n, k;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		while (sem_timedwait(&mp_wake_sem, &until) != 0)
			assert_int_equal(errno, EINTR);
		while ((n = tick_queue_drain(q, out, 64)) > 0) {
			for (k = 0; k < n; k++) {
				unsigned id = (unsigned)(out[k].seq >> 32);
				uint64_t idx = out[k].seq & 0xffffffffu;

				/* Each producer's ticks arrive exactly once
				 * and in the order it pushed them. */
				assert_true(id < PRODUCERS);
				assert_int_equal(idx, next[id]);
				next[id]++;
			}
			total += n;
		}
	}
	for (i = 0; i < PRODUCERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(prod[i].rc, 0);
		assert_int_equal(next[i], PER_PRODUCER);
	}
	assert_int_equal(tick_queue_depth(q), 0);
	tick_queue_destroy(q);
	sem_destroy(&mp_wake_sem);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_refuses_zero_capacity),
	        cmocka_unit_test(test_order_kept_across_wrap),
	        cmocka_unit_test(test_drain_respects_max),
	        cmocka_unit_test(test_wake_once_per_empty_to_nonempty),
	        cmocka_unit_test(test_blocks_when_full_and_resumes),
	        cmocka_unit_test(test_close_unblocks_blocked_producer),
	        cmocka_unit_test(test_many_producers_deliver_each_tick_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
