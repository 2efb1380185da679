/*
 * tick_queue: a bounded ring of ticks behind one mutex and one condvar.
 *
 * Only producers ever wait (on `not_full`); the consumer is told about new
 * ticks through the wake callback instead, because the service thread sleeps
 * in lws's poll loop, not on our condvar.
 */
#include "tick_queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tick_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_full;
	struct tick *ring;
	size_t capacity;
	size_t head;    /* index of the oldest tick */
	size_t count;   /* ticks in the ring */
	size_t waiters; /* producers blocked on not_full */
	bool closed;
	void (*wake)(void *ctx);
	void *ctx;
};

struct tick_queue *
tick_queue_create(size_t capacity, void (*wake)(void *ctx), void *ctx)
{
	struct tick_queue *q;

	if (capacity == 0 || capacity > SIZE_MAX / sizeof(struct tick))
		return NULL;
	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->ring = malloc(capacity * sizeof *q->ring);
	if (!q->ring)
		goto fail_ring;
	if (pthread_mutex_init(&q->lock, NULL) != 0)
		goto fail_mutex;
	if (pthread_cond_init(&q->not_full, NULL) != 0)
		goto fail_cond;
	q->capacity = capacity;
	q->wake = wake;
	q->ctx = ctx;
	return q;

fail_cond:
	pthread_mutex_destroy(&q->lock);
fail_mutex:
	free(q->ring);
fail_ring:
	free(q);
	return NULL;
}

void
tick_queue_destroy(struct tick_queue *q)
{
	if (!q)
		return;
	pthread_cond_destroy(&q->not_full);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}

/* Copy n ticks (n <= free space) in at the tail, wrapping once if needed.
 * Called with the lock held. */
static void
ring_put(struct tick_queue *q, const struct tick *ticks, size_t n)
{
	size_t tail = (q->head + q->count) % q->capacity;
	size_t first = q->capacity - tail;

	if (first > n)
		first = n;
	memcpy(q->ring + tail, ticks, first * sizeof *ticks);
	memcpy(q->ring, ticks + first, (n - first) * sizeof *ticks);
	q->count += n;
}

int
tick_queue_push(struct tick_queue *q, const struct tick *ticks, size_t n)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		size_t room, k;
		bool was_empty;

		while (!q->closed && q->count == q->capacity) {
			q->waiters++;
			pthread_cond_wait(&q->not_full, &q->lock);
			q->waiters--;
		}
		if (q->closed) {
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		room = q->capacity - q->count;
		k = n < room ? n : room;
		was_empty = q->count == 0;
		ring_put(q, ticks, k);
		ticks += k;
		n -= k;
		/*
		 * The wake runs without the lock so that the callback may take
		 * locks of its own (lws_cancel_service does) and so that the
		 * consumer is never made to wait for it. It must run before
		 * this producer blocks on a full ring for the rest of the
		 * batch; otherwise nobody would ever drain it.
		 */
		if (was_empty && q->wake) {
			pthread_mutex_unlock(&q->lock);
			q->wake(q->ctx);
			pthread_mutex_lock(&q->lock);
		}
		if (n == 0)
			break;
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

size_t
tick_queue_drain(struct tick_queue *q, struct tick *out, size_t max)
{
	size_t n, first;

	pthread_mutex_lock(&q->lock);
	n = q->count < max ? q->count : max;
	if (n == 0) {
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	first = q->capacity - q->head;
	if (first > n)
		first = n;
	memcpy(out, q->ring + q->head, first * sizeof *out);
	memcpy(out + first, q->ring, (n - first) * sizeof *out);
	q->head = (q->head + n) % q->capacity;
	q->count -= n;
	/* Every blocked producer may now fit some of its batch. */
	if (q->waiters > 0)
		pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return n;
}

void
tick_queue_close(struct tick_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

size_t
tick_queue_depth(struct tick_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->count;
	pthread_mutex_unlock(&q->lock);
	return n;
}
