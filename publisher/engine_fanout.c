/*
 * engine_fanout.c: the flush's fan-out, and each client's next frame (see
 * engine.h for the idea, engine_private.h for the structures).
 *
 * What it owns: the rounds a group closes and keeps, the frames shared by
 * the clients in step, and where each client stands in its group. Who
 * calls it: engine.c (engine_flush, restore and clear), engine_subscribe.c
 * (a client that changed its subscriptions holds seqs of its own), and the
 * transport, through engine_client_frame(). Groups and their entries are
 * engine_group.c's.
 *
 * A client stands in one of three places in its group:
 *
 *  - idle: it holds the group's latest round. A flush that changes the
 *    group closes a round and makes every idle client pending at once
 *    (behind by one round); pending clients are never walked again.
 *  - behind: it holds round r < R. Its next frame is the merge of rounds
 *    r+1..R: for each entry changed there, one update from the seq it had
 *    before its first change to its current seq. When two or more clients
 *    stand at the same r, that frame is encoded once and they all send it
 *    (R-1 → R is the common case: everyone in step); alone, a client has
 *    it written straight into the caller's buffer. Behind clients are kept
 *    sorted by round, so those at the same r are neighbours.
 *  - catching up: it holds seqs of its own, one per entry (a resume, a
 *    change of subscriptions, a frame too big for one write, or a client
 *    so far behind that its round left the ring). It is brought up to date
 *    entry by entry, as the old engine did for every client, and joins the
 *    idle clients once it holds every entry's latest seq.
 *
 * The ring keeps the rounds some behind client still needs, at most
 * ROUND_RING. To make room, the clients standing at the oldest round start
 * catching up: the seqs they hold are worked out from the ring (for each
 * entry, the `from` of its first change after their round) before it
 * drops that round.
 */
#include "engine_private.h"

#include <stdlib.h>
#include <string.h>

static void
entry_mark_dirty(struct engine *e, struct entry *en)
{
	struct group *g = en->g;

	if (en->dirty)
		return;
	en->dirty = true;
	en->dirty_next = NULL;
	if (g->dirty_tail)
		g->dirty_tail->dirty_next = en;
	else
		g->dirty_head = en;
	g->dirty_tail = en;
	if (!g->dirty) {
		g->dirty = true;
		g->dirty_next = e->dirty_groups;
		e->dirty_groups = g;
	}
}

/* Into the behind list at its place: sorted by round, oldest first. Most
 * clients arrive with the newest round, so the walk is from the tail. */
static void
member_behind(struct engine_client *c, uint64_t round)
{
	struct group *g = c->g;
	struct engine_client *after = g->behind_tail;

	c->state = MEMBER_BEHIND;
	c->round = round;
	while (after && after->round > round)
		after = after->prev;
	c->prev = after;
	c->next = after ? after->next : g->behind;
	if (c->next)
		c->next->prev = c;
	else
		g->behind_tail = c;
	if (after)
		after->next = c;
	else
		g->behind = c;
}

/* ----------------------------------------------------------------- rounds */

static struct round *
round_get(struct group *g, uint64_t n)
{
	struct round *rd = &g->ring[n % ROUND_RING];

	return rd->n == n ? rd : NULL;
}

/*
 * The seqs a client holds, one per entry of its group, into a new array of
 * g->nentries (the caller frees it). For a client behind at r: an entry not
 * changed after r holds its seq; one changed after r holds the `from` of its
 * first change after r (0 when its history was replaced since). The sent
 * chunks of a frame under way have moved the entries they carried on.
 */
uint64_t *
engine__seqs_held(struct engine *e, const struct engine_client *c)
{
	struct group *g = c->g;
	uint64_t *held = calloc(g->nentries ? g->nentries : 1, sizeof *held);
	uint64_t n, stamp = ++e->merge_stamp;
	uint32_t i;

	if (!held)
		return NULL;
	if (c->state == MEMBER_CATCHING_UP) {
		memcpy(held, c->held, c->held_len * sizeof *held);
		return held;
	}
	for (i = 0; i < g->nentries; i++)
		held[i] = g->entries[i]->seq;
	if (c->state != MEMBER_BEHIND)
		return held;
	for (n = c->round + 1; n <= g->round; n++) {
		struct round *rd = round_get(g, n);
		uint32_t k;

		for (k = 0; rd && k < rd->count; k++) {
			struct entry *en = g->entries[rd->changes[k].idx];

			if (en->mark == stamp)
				continue;
			en->mark = stamp;
			held[en->idx] = en->reset_round > c->round
			                        ? 0
			                        : rd->changes[k].from;
		}
	}
	if (c->frame) {
		uint32_t k;

		for (k = 0; k < c->chunk; k++) {
			const struct chunk *ch = &c->frame->chunks[k];
			uint32_t u;

			for (u = 0; u < ch->updates; u++) {
				const struct frame_update *fu =
				        &c->frame->ups[ch->first_up + u];

				held[fu->idx] = fu->to;
			}
		}
	}
	return held;
}

/* The client leaves the group's rhythm and is brought up to date entry by
 * entry from the seqs it holds. Returns 0, or -1 out of memory (it then
 * stays where it is). */
static int
start_catching_up(struct engine *e, struct engine_client *c)
{
	uint64_t *held = engine__seqs_held(e, c);

	if (!held)
		return -1;
	engine__member_drop(c);
	c->held = held;
	c->held_len = c->g->nentries;
	engine__member_push(c, MEMBER_CATCHING_UP);
	e->stats.catch_ups++;
	return 0;
}

/* Forget the rounds no behind client needs; if the ring would still be
 * full with round n, the clients at the oldest round start catching up. */
static void
ring_make_room(struct engine *e, struct group *g, uint64_t n)
{
	for (;;) {
		uint64_t need = g->behind ? g->behind->round + 1 : n;

		while (g->kept_from < need) {
			struct round *rd = round_get(g, g->kept_from);

			if (rd) {
				rd->n = 0;
				rd->count = 0;
			}
			g->kept_from++;
		}
		if (n - g->kept_from < ROUND_RING)
			return;
		/* Those behind at kept_from - 1 need round kept_from. */
		while (g->behind && g->behind->round < g->kept_from) {
			if (start_catching_up(e, g->behind)) {
				/* Out of memory: it loses its place and
				 * gets every symbol afresh. */
				struct engine_client *c = g->behind;

				engine__member_drop(c);
				engine__member_push(c, MEMBER_CATCHING_UP);
			}
		}
	}
}

static int
round_append(struct round *rd, uint32_t idx, uint64_t from)
{
	if (rd->count == rd->cap) {
		uint32_t cap = rd->cap ? rd->cap * 2 : 16;
		struct change *p = realloc(rd->changes, cap * sizeof *p);

		if (!p)
			return -1;
		rd->changes = p;
		rd->cap = cap;
	}
	rd->changes[rd->count].idx = idx;
	rd->changes[rd->count].from = from;
	rd->count++;
	return 0;
}

/* Encode the merge of rounds r+1..g->round (the latest). add() takes each
 * update and returns false to stop. */
struct merge_update {
	struct entry *en;
	const char *enc;
	size_t len;
	bool fresh;
	uint64_t conflated;
};

static void
merge_rounds(struct engine *e, struct group *g, uint64_t r,
             bool (*add)(const struct merge_update *u, void *ctx), void *ctx)
{
	char scratch[ENCODING_MAX];
	uint64_t n, stamp = ++e->merge_stamp;

	for (n = r + 1; n <= g->round; n++) {
		struct round *rd = round_get(g, n);
		uint32_t k;

		for (k = 0; rd && k < rd->count; k++) {
			struct entry *en = g->entries[rd->changes[k].idx];
			struct merge_update u;
			uint64_t from, cur = en->sym->st.seq;

			if (en->mark == stamp)
				continue;
			en->mark = stamp;
			from = en->reset_round > r ? 0 : rd->changes[k].from;
			if (cur == 0 || from == cur)
				continue;
			if (from > cur)
				from = 0;
			u.en = en;
			u.enc = engine__update(e, en->sym, from, scratch,
			                       &u.len, &u.fresh);
			u.conflated = from ? cur - from - 1 : 0;
			if (!add(&u, ctx))
				return;
		}
	}
}

static bool
add_to_frame(const struct merge_update *u, void *ctx)
{
	struct engine *e = ((void **)ctx)[0];
	struct frame *f = ((void **)ctx)[1];

	return engine__frame_add(e, f, u->enc, u->len, u->fresh, u->conflated,
	                         u->en->idx, u->en->sym->st.seq) == 0;
}

/* The frame made already that takes clients at round r to the latest. */
static struct frame *
shared_frame_find(struct group *g, uint64_t r)
{
	uint32_t i;

	for (i = 0; i < g->nframes; i++)
		if (g->frames[i]->from_round == r &&
		    g->frames[i]->to_round == g->round)
			return g->frames[i];
	return NULL;
}

/* Make the frame that takes clients at round r to the latest, to share. */
static struct frame *
shared_frame(struct engine *e, struct group *g, uint64_t r)
{
	struct frame *f = shared_frame_find(g, r);
	void *ctx[2];

	if (f)
		return f;
	if (g->nframes == ROUND_RING)
		return NULL;
	f = engine__frame_new(e, r, g->round);
	if (!f)
		return NULL;
	ctx[0] = e;
	ctx[1] = f;
	merge_rounds(e, g, r, add_to_frame, ctx);
	engine__frame_end(f);
	if (f->failed || !f->nchunks) {
		engine__frame_unref(f);
		return NULL;
	}
	g->frames[g->nframes++] = f;
	return f;
}

/*
 * Turn the group's dirty entries into round n = latest + 1. The idle
 * clients (at n - 1) are now behind by one and pending; when two or more
 * of them wait for this round its frame is encoded now, once. Catching-up
 * clients are woken too: what they owe may have grown.
 */
static void
round_close(struct engine *e, struct group *g)
{
	uint64_t n = g->round + 1;
	struct engine_client *c, *next;
	struct round *rd;
	struct entry *en;
	bool failed = false;

	ring_make_room(e, g, n);
	rd = &g->ring[n % ROUND_RING];
	rd->n = n;
	rd->count = 0;
	while ((en = g->dirty_head) != NULL) {
		uint64_t cur = en->sym->st.seq;

		g->dirty_head = en->dirty_next;
		en->dirty = false;
		if (cur == en->seq)
			continue;
		/* A symbol emptied (a new life of the data) has nothing to
		 * send: its next data comes from 0, as a snapshot. */
		if (cur != 0 && round_append(rd, en->idx, en->seq))
			failed = true;
		en->seq = cur;
		en->changed_round = n;
	}
	g->dirty_tail = NULL;
	if (failed) {
		/* Out of memory for the round: nobody can be told what it
		 * changed, so every client catches up on its own. */
		while (g->behind)
			if (start_catching_up(e, g->behind))
				break;
	}
	if (!rd->count) {
		rd->n = 0;
		return;
	}
	g->round = n;
	e->stats.rounds++;
	if (g->kept_from > n)
		g->kept_from = n;
	/* Frames to an older round are of no more use to newcomers. */
	engine__frames_drop(g);
	if (g->idle && g->idle->next)
		shared_frame(e, g, n - 1);
	for (c = g->idle; c; c = next) {
		next = c->next;
		engine__member_unlink(c);
		member_behind(c, n - 1);
		engine__ready_push(e, c);
	}
	for (c = g->catching_up; c; c = c->next)
		if (c->stalled) {
			c->stalled = false;
			engine__ready_push(e, c);
		}
}

void
engine__symbol_reset(struct engine *e, struct symbol *sym)
{
	struct entry *en;

	for (en = sym->entries; en; en = en->sym_next) {
		struct engine_client *c;

		en->seq = 0;
		en->reset_round = en->g->round + 1;
		for (c = en->g->catching_up; c; c = c->next)
			if (en->idx < c->held_len)
				c->held[en->idx] = 0;
		if (sym->st.seq)
			entry_mark_dirty(e, en);
	}
}

void
engine__fanout_clear(struct engine *e)
{
	size_t b;

	for (b = 0; b <= e->group_mask; b++) {
		struct group *g;

		for (g = e->groups[b]; g; g = g->hash_next) {
			struct engine_client *c;
			uint32_t i;

			for (i = 0; i < g->nentries; i++) {
				struct entry *en = g->entries[i];

				en->seq = 0;
				en->dirty = false;
				en->reset_round = g->round + 1;
			}
			g->dirty_head = g->dirty_tail = NULL;
			g->dirty = false;
			engine__rounds_forget(g);
			/* What a client holds is of the old life, and every
			 * entry now holds nothing: the same thing. */
			while ((c = g->behind ? g->behind : g->catching_up)) {
				engine__member_drop(c);
				c->stalled = false;
				c->round = g->round;
				engine__member_push(c, MEMBER_IDLE);
			}
		}
	}
	e->dirty_groups = NULL;
}

void
engine__fanout_flush(struct engine *e)
{
	struct symbol *sym;
	struct group *g;
	struct engine_client *c;

	while ((sym = e->dirty_head) != NULL) {
		struct entry *en;

		e->dirty_head = sym->dirty_next;
		sym->dirty_next = NULL;
		sym->dirty = false;
		for (en = sym->entries; en; en = en->sym_next)
			entry_mark_dirty(e, en);
		engine__symbol_release_if_unused(e, sym);
	}
	e->dirty_tail = NULL;
	while ((g = e->dirty_groups) != NULL) {
		e->dirty_groups = g->dirty_next;
		g->dirty = false;
		round_close(e, g);
	}

	/* Each client is taken off the list before its callback, so a
	 * callback that destroys any client leaves the list consistent. A
	 * client whose pending updates were written since it was queued
	 * (say, right after subscribing) is not woken for nothing. */
	while ((c = e->ready) != NULL) {
		engine__ready_remove(e, c);
		if (engine_client_has_pending(c) && e->config.client_ready)
			e->config.client_ready(c->user, e->config.ctx);
	}
}

/* ---------------------------------------------------------------- writing */

static void
count_sent(struct engine *e, uint32_t updates, uint32_t fresh,
           uint64_t conflated)
{
	e->stats.updates_sent += updates;
	e->stats.encodings += fresh;
	e->stats.encodings_shared += updates - fresh;
	e->stats.ticks_conflated += conflated;
}

/* The client holds every entry's latest seq: back to the group's rhythm.
 * (A catching-up client has no frame under way to drop.) */
void
engine__rejoin(struct engine_client *c)
{
	engine__member_drop(c);
	c->round = c->g->round;
	engine__member_push(c, MEMBER_IDLE);
}

/* Send the next chunk of the frame under way. */
static size_t
frame_next_chunk(struct engine *e, struct engine_client *c, const char **out)
{
	struct frame *f = c->frame;
	struct chunk *ch = &f->chunks[c->chunk++];

	if (ch->sent) {
		count_sent(e, ch->updates, 0, ch->conflated);
		e->stats.frames_shared++;
	} else {
		count_sent(e, ch->updates, ch->fresh, ch->conflated);
		ch->sent = true;
	}
	*out = f->buf + ch->off;
	c->frame_id = ch->id;
	if (c->chunk == f->nchunks) {
		/* Done: the client holds the frame's round. */
		uint64_t to = f->to_round;

		c->frame = NULL;
		engine__member_unlink(c);
		if (to == c->g->round) {
			c->round = to;
			engine__member_push(c, MEMBER_IDLE);
		} else {
			member_behind(c, to);
		}
		/* The bytes must stay valid until the next call: when the
		 * group has let go of the frame already, this client's
		 * reference is the last, so it is dropped then. */
		c->done_frame = f;
	}
	return ch->len;
}

struct direct_ctx {
	struct engine *e;
	struct engine_client *c;
	struct frame_writer w;
	uint64_t *written_idx; /* entries written, for a switch to held[] */
	uint32_t nwritten;
	bool full;
};

static bool
add_direct(const struct merge_update *u, void *ctx)
{
	struct direct_ctx *d = ctx;

	if (!engine__writer_add(&d->w, u->enc, u->len)) {
		d->full = true;
		return false;
	}
	count_sent(d->e, 1, u->fresh, u->conflated);
	d->written_idx[d->nwritten++] = u->en->idx;
	return true;
}

/*
 * A client alone at its round: the merge goes straight into the caller's
 * buffer. When it does not all fit, the client catches up from there on:
 * its seqs are worked out for its round, then moved on for what was
 * written.
 */
static size_t
write_merge_direct(struct engine *e, struct engine_client *c, char *buf)
{
	struct group *g = c->g;
	struct direct_ctx d;
	uint64_t r = c->round;
	uint32_t i;

	d.e = e;
	d.c = c;
	d.nwritten = 0;
	d.full = false;
	d.written_idx =
	        malloc((g->nentries ? g->nentries : 1) * sizeof *d.written_idx);
	if (!d.written_idx)
		return 0;
	engine__writer_init(&d.w, buf, e->frame_cap);
	merge_rounds(e, g, r, add_direct, &d);
	if (!d.full) {
		engine__member_unlink(c);
		c->round = g->round;
		engine__member_push(c, MEMBER_IDLE);
	} else if (start_catching_up(e, c) == 0) {
		for (i = 0; i < d.nwritten; i++)
			c->held[d.written_idx[i]] =
			        g->entries[d.written_idx[i]]->sym->st.seq;
		/* What did not fit is the rest of this batch. */
		c->batch_left = g->nentries;
	} else {
		/* Out of memory: nothing was sent after all. */
		d.w.n = 0;
	}
	free(d.written_idx);
	return engine__writer_end(&d.w);
}

/*
 * A catching-up client: every entry whose seq it does not hold, as many as
 * fit, visited in turn from where the last frame stopped. In entry order
 * from the first each time, a client whose changes outgrow a frame (a wide
 * watchlist under max_hz) was sent the first entries again and again while
 * the last waited for seconds. Back to the group's rhythm once one frame
 * holds a whole pass.
 */
static size_t
write_catching_up(struct engine *e, struct engine_client *c, char *buf)
{
	struct group *g = c->g;
	struct frame_writer w;
	char scratch[ENCODING_MAX];
	uint32_t n = g->nentries, todo, k, i;
	bool whole_pass = !c->batch_left || c->batch_left >= n;

	todo = whole_pass ? n : c->batch_left;
	i = c->catch_next < n ? c->catch_next : 0;
	engine__writer_init(&w, buf, e->frame_cap);
	for (k = 0; k < todo; k++, i = i + 1 < n ? i + 1 : 0) {
		struct entry *en = g->entries[i];
		uint64_t cur = en->sym->st.seq;
		uint64_t held = i < c->held_len ? c->held[i] : 0;
		uint64_t from = held > cur ? 0 : held;
		const char *enc;
		size_t len;
		bool fresh;

		if (cur == 0 || held == cur)
			continue;
		enc = engine__update(e, en->sym, from, scratch, &len, &fresh);
		if (!engine__writer_add(&w, enc, len))
			break;
		count_sent(e, 1, fresh, from ? cur - from - 1 : 0);
		if (i >= c->held_len) {
			uint64_t *p = realloc(c->held, n * sizeof *p);

			if (!p)
				break;
			memset(p + c->held_len, 0,
			       (n - c->held_len) * sizeof *p);
			c->held = p;
			c->held_len = n;
		}
		c->held[i] = cur;
	}
	c->catch_next = i;
	c->batch_left = todo - k;
	/* Rejoining needs every entry held at its latest, which only a
	 * whole pass in one frame shows, and the group's latest round to be
	 * what it holds: no change waiting for the next flush, which wakes
	 * it again. */
	if (whole_pass && k == todo && !g->dirty)
		engine__rejoin(c);
	else if (whole_pass && k == todo)
		c->stalled = true;
	return engine__writer_end(&w);
}

size_t
engine_client_frame(struct engine_client *c, int64_t now_us, char *scratch,
                    const char **out, int64_t *next_due_us)
{
	struct engine *e = c->e;
	struct group *g = c->g;
	char *buf = scratch + e->headroom;
	size_t n = 0;
	bool continuing;

	if (next_due_us)
		*next_due_us = 0;
	*out = buf;
	c->frame_id = 0;
	engine__frame_unref(c->done_frame);
	c->done_frame = NULL;
	/* Ticks applied and not flushed yet would make what a client takes
	 * newer than its group's latest round: flush first. (The pipeline
	 * always flushes right after applying; this is for other callers.) */
	if (e->dirty_head)
		engine__fanout_flush(e);
	if (c->frame)
		return frame_next_chunk(e, c, out);
	if (!g || c->state == MEMBER_IDLE)
		return 0;
	continuing = c->batch_left != 0;
	if (c->min_interval_us && c->last_frame_us != NEVER_SENT &&
	    !continuing && now_us - c->last_frame_us < c->min_interval_us) {
		/* Held back: what waits keeps absorbing ticks, so when it
		 * goes it is one merged frame. */
		if (next_due_us)
			*next_due_us = c->last_frame_us + c->min_interval_us;
		return 0;
	}
	if (c->state == MEMBER_BEHIND) {
		/* Another client at the same round will want the same frame
		 * (or did: it is kept while it takes them to the latest). */
		bool alone = !(c->prev && c->prev->round == c->round) &&
		             !(c->next && c->next->round == c->round);
		struct frame *f = shared_frame_find(g, c->round);

		if (!f && !alone)
			f = shared_frame(e, g, c->round);

		if (f) {
			f->refs++;
			c->frame = f;
			c->chunk = 0;
			n = frame_next_chunk(e, c, out);
		} else {
			n = write_merge_direct(e, c, buf);
		}
	} else {
		n = write_catching_up(e, c, buf);
	}
	/* max_hz counts batches: the frames that go on with one do not
	 * start another interval. */
	if (n && !continuing)
		c->last_frame_us = now_us;
	/* More left than one frame holds is due at once. */
	if (next_due_us && engine_client_has_pending(c) && c->min_interval_us &&
	    n == 0)
		*next_due_us = now_us;
	return n;
}

uint64_t
engine_client_frame_id(const struct engine_client *c)
{
	return c->frame_id;
}

size_t
engine_client_write(struct engine_client *c, int64_t now_us, char *buf,
                    size_t cap, int64_t *next_due_us)
{
	const char *out;
	size_t n;

	n = engine_client_frame(c, now_us, c->e->scratch, &out, next_due_us);
	if (n > cap)
		return 0;
	memcpy(buf, out, n);
	return n;
}

bool
engine_client_has_pending(const struct engine_client *c)
{
	return c->frame || c->state == MEMBER_BEHIND ||
	       c->state == MEMBER_CATCHING_UP;
}
