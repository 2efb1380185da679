/*
 * redis_ingest_start.c: an ingest's start, before it serves and before
 * its publisher exists (redis_link.h, "Seqs across nodes"):
 * redis_link_peek() reads the epoch and states Redis holds, and
 * redis_link_floor() says what each state means to the ingest's own.
 */
#include "redis_private.h"

int
redis_link_peek(const char *host, int port, const char *prefix,
                const char *epoch, unsigned timeout_ms,
                void (*fn)(const struct symbol_state *st, void *ctx), void *ctx,
                char *err, size_t errlen)
{
	char key_ticks[KEY_MAX], key_state[KEY_MAX], key_epoch[KEY_MAX];
	int64_t until = clock_mono_us() + (int64_t)timeout_ms * 1000;
	redisContext *rc;
	redisReply *r = NULL, *x;
	char why[160];
	size_t i, bad = 0;
	int k, same;

	prefix = redis__check_address(host, port, prefix, err, errlen);
	if (!prefix)
		return -1;
	redis__keys_init(prefix, key_ticks, key_state, key_epoch);
	while (!(rc = redis__link_connect(
	                 host, port, DEFAULT_CONNECT_MS * 1000ll,
	                 DEFAULT_IO_MS * 1000ll, "publisher-ingest", why,
	                 sizeof why))) {
		if (clock_mono_us() + BACKOFF_MIN_US > until)
			return errf(err, errlen, "cannot read %s:%d: %s", host,
			            port, why);
		usleep(BACKOFF_MIN_US);
	}
	/* One snapshot of both, as a follower takes it. */
	redisAppendCommand(rc, "MULTI");
	redisAppendCommand(rc, "GET %s", key_epoch);
	redisAppendCommand(rc, "HGETALL %s", key_state);
	redisAppendCommand(rc, "EXEC");
	for (k = 0; k < 4; k++) {
		if (r)
			freeReplyObject(r);
		if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
			errf(err, errlen, "reading %s:%d: %s", host, port,
			     redis__link_error(rc));
			redisFree(rc);
			return -1;
		}
	}
	if (redis__reply_error(r) || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 2) {
		errf(err, errlen, "reading %s:%d: %s", host, port,
		     redis__reply_error(r) ? redis__reply_error(r)
		                           : "unexpected reply");
		freeReplyObject(r);
		redisFree(rc);
		return -1;
	}
	x = r->element[0];
	same = x->type == REDIS_REPLY_STRING && !strcmp(x->str, epoch);
	x = r->element[1];
	for (i = 0; same && x->type == REDIS_REPLY_ARRAY && i + 1 < x->elements;
	     i += 2) {
		const redisReply *name = x->element[i], *v = x->element[i + 1];
		struct symbol_state st;
		const char *no = "not a string";

		if (name->type == REDIS_REPLY_STRING &&
		    v->type == REDIS_REPLY_STRING &&
		    redis__state_decode(name->str, name->len, v->str, v->len,
		                        &st, &no) == 0)
			fn(&st, ctx);
		else if (!bad++)
			log_warn("redis: %s: skipped the state of '%.40s': %s",
			         key_state,
			         name->type == REDIS_REPLY_STRING ? name->str
			                                          : "?",
			         no);
	}
	freeReplyObject(r);
	redisFree(rc);
	return same;
}

/* Whether ours says a field had another value at theirs' seq than theirs
 * says: ours has not changed it since then, yet holds another value. */
static bool
floor_contradicts(const struct symbol_state *ours,
                  const struct symbol_state *theirs)
{
	int f;

	for (f = 0; f < STATE_FIELD_COUNT; f++) {
		if (!((theirs->present >> f) & 1u) ||
		    ours->changed_seq[f] > theirs->seq)
			continue;
		/* Ours has had none since before theirs' seq (a session took
		 * it away), or another value. */
		if (!((ours->present >> f) & 1u) ||
		    ours->value[f].mantissa != theirs->value[f].mantissa ||
		    ours->value[f].scale != theirs->value[f].scale)
			return true;
	}
	return false;
}

enum redis_floor
redis_link_floor(const struct symbol_state *ours,
                 const struct symbol_state *theirs, struct symbol_state *out)
{
	uint64_t seq;
	int f;

	/* A session's fields are the exception: a delta takes them away. */
	if (!ours ||
	    (theirs->present & ~ours->present & ~SYMBOL_STATE_SESSION_FIELDS))
		return REDIS_FLOOR_LOST;
	if (theirs->seq < ours->seq && !floor_contradicts(ours, theirs))
		return REDIS_FLOOR_KEEP;
	if (theirs->seq == ours->seq && theirs->ts == ours->ts &&
	    theirs->present == ours->present &&
	    !floor_contradicts(ours, theirs))
		return REDIS_FLOOR_KEEP;
	seq = (theirs->seq > ours->seq ? theirs->seq : ours->seq) + 1;
	*out = *ours;
	out->seq = seq;
	for (f = 0; f < STATE_FIELD_COUNT; f++)
		out->changed_seq[f] =
		        ((out->present | SYMBOL_STATE_SESSION_FIELDS) >> f) & 1u
		                ? seq
		                : 0;
	return REDIS_FLOOR_PAST;
}
