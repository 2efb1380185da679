/*
 * engine_private.h: what the engine's files share, and nobody else.
 *
 *   engine.c            symbols: the table, ticks, states, restore, clear
 *   engine_group.c      subscription groups: their table, entries, members
 *   engine_fanout.c     rounds, the flush's fan-out, each client's frames
 *   engine_subscribe.c  clients, and changes of what they subscribe to
 *   engine_encode.c     snapshot/delta encodings and the frames they go in
 *
 * Included by those five files, and by tests/unit/test_engine.c (which
 * looks at the symbol table's size). It owns nothing itself: it defines
 * the structs below, which the functions of engine.h allocate and
 * engine_destroy() frees.
 *
 * How the pieces point at each other:
 *
 *  - struct symbol: one per symbol name, allocated on its own so pointers to
 *    it stay valid while the table grows. It sits in a chained hash table
 *    keyed by name, holds the symbol_state, the list of the group entries
 *    that name it, a link in the engine's dirty list and the two cached
 *    encodings (its latest snapshot and latest delta).
 *  - struct group: the clients that subscribed to one and the same set of
 *    symbols (explicit names, and maybe "*" under one entitlement filter).
 *    It holds an entry per symbol of the set, the rounds it has closed that
 *    a client still needs, and its clients in three lists by where they
 *    stand: idle (hold the latest round), behind (hold an older round,
 *    sorted oldest first) and catching up (hold seqs of their own).
 *  - struct entry: one (group, symbol): the symbol's seq as of the group's
 *    latest round, and the round in which that last changed.
 *  - struct round: the changes one flush made to a group: (entry, the seq
 *    it had before) pairs. A client in round r reaches round R by taking,
 *    for each entry changed in r+1..R, the delta from the seq it had before
 *    its first change there.
 *  - struct frame: encoded updates, cut into chunks of at most the frame
 *    cap, each with its own headroom, shared (reference counted) by the
 *    clients that send it.
 */
#ifndef PUBLISHER_ENGINE_PRIVATE_H
#define PUBLISHER_ENGINE_PRIVATE_H

#include <stdlib.h>

#include "engine.h"

/* A field key as written in an update, `,"last_size":`, padded to a fixed
 * size so that it is copied with one fixed-length memcpy. */
#define KEY_MAX 16

/* The longest text of a u64 or i64 ("-9223372036854775808"). */
#define INT_TEXT_MAX 20

/* The longest update the encoder can write: the longer of the two openings,
 * a full-length symbol, from, seq and ts at their longest, and every field at
 * its longest key and value, then the closing brace. */
#define ENCODING_BOUND                                                         \
	(sizeof("{\"type\":\"snapshot\",\"symbol\":\"") - 1 +                  \
	 TICK_SYMBOL_MAX + sizeof("\",\"from\":") - 1 + INT_TEXT_MAX +         \
	 sizeof(",\"seq\":") - 1 + INT_TEXT_MAX + sizeof(",\"ts\":") - 1 +     \
	 INT_TEXT_MAX + STATE_FIELD_COUNT * (KEY_MAX + DECIMAL_MAX_TEXT) + 1)

/* Scratch space for one encoding. The slack above ENCODING_BOUND lets the
 * encoder copy fixed-size keys and symbol names past the true end. */
#define ENCODING_MAX 1024

/* Rounds a group keeps for clients that are behind; one further behind
 * catches up on its own (see engine_fanout.c). */
#define ROUND_RING 64

/* One cached encoding: the bytes of the update from `from` (0 for a
 * snapshot) to `seq`. seq 0 means empty. */
struct enc_cache {
	char *buf;
	size_t len;
	size_t cap;
	uint64_t from;
	uint64_t seq;
	bool used; /* sent to some client since it was made */
};

struct entry;
struct group;

struct symbol {
	struct symbol *hash_next;
	uint64_t hash;
	size_t name_len;
	struct symbol_state st;

	struct entry *entries; /* through sym_prev/sym_next */
	size_t nentries;

	struct symbol *dirty_next;
	bool dirty;

	struct enc_cache snapshot;
	struct enc_cache delta;
};

struct entry {
	struct symbol *sym;
	struct group *g;
	uint32_t idx;     /* in g->entries */
	bool is_explicit; /* named in the group's set (else brought by *) */
	bool dirty;       /* changed since the group's latest round */
	uint64_t seq;     /* the symbol's seq as of the latest round;
	                   * 0: no data, or history replaced */
	uint64_t changed_round; /* the round that last changed seq */
	uint64_t reset_round;   /* the round whose change replaced the
	                         * symbol's history: no delta from before */
	struct entry *sym_prev, *sym_next;
	struct entry *dirty_next;
	uint64_t mark; /* merge scratch: stamp of the last merge */
};

struct change {
	uint32_t idx;  /* entry */
	uint64_t from; /* its seq before this round */
};

struct round {
	uint64_t n; /* 0: the slot is free */
	struct change *changes;
	uint32_t count, cap;
};

struct chunk {
	size_t off; /* of the payload in frame->buf */
	size_t len;
	uint32_t first_up; /* its updates are ups[first_up ..] */
	uint32_t updates;
	uint32_t fresh;     /* updates encoded for this chunk, not cached */
	uint64_t conflated; /* sum of seq - from - 1 over its deltas */
	uint64_t id;        /* names these bytes (engine_client_frame_id) */
	bool sent;          /* sent to some client already */
};

/* Which entry an update of a frame moved, and to which seq: what a client
 * holds after part of a frame (see seqs_held()). */
struct frame_update {
	uint32_t idx;
	uint64_t to;
};

struct frame {
	int refs;
	uint64_t from_round, to_round; /* what it brings a client from/to */
	char *buf;
	size_t len, cap;
	struct chunk *chunks;
	uint32_t nchunks, chunks_cap;
	struct frame_update *ups;
	uint32_t nups, ups_cap;
	bool failed; /* out of memory while building: do not use */
};

/* Where a client stands in its group. */
enum member_state {
	MEMBER_NONE,        /* subscribed to nothing: no group */
	MEMBER_IDLE,        /* holds the group's latest round */
	MEMBER_BEHIND,      /* holds an older round (still kept) */
	MEMBER_CATCHING_UP, /* holds seqs of its own (held[]) */
};

struct group {
	struct group *hash_next;
	uint64_t key_hash;
	/* The key: which symbols the clients subscribed to. Explicit names
	 * and names excluded from the wildcard are sorted by pointer. */
	bool wildcard;
	char *filter_key; /* NULL: no filter (see engine_client_set_filter) */
	struct symbol **named;
	size_t nnamed;
	struct symbol **excluded;
	size_t nexcluded;
	/* The wildcard's filter, borrowed from one of the clients. */
	bool (*allowed)(const char *symbol, void *ctx);
	void *allowed_ctx;

	struct entry **entries;
	uint32_t nentries, entries_cap;

	struct entry *dirty_head, *dirty_tail;
	struct group *dirty_next;
	bool dirty;

	uint64_t round;     /* latest round; 0 before the first */
	uint64_t kept_from; /* rounds kept_from..round are in the ring */
	struct round ring[ROUND_RING];
	/* The latest round's frame, and merged frames to it from older rounds,
	 * made when two or more clients need the same one. */
	struct frame *frames[ROUND_RING];
	uint32_t nframes;

	struct engine_client *idle, *behind, *behind_tail, *catching_up;
	size_t nmembers;

	struct group *wc_prev, *wc_next; /* the engine's wildcard groups */
};

struct engine_client {
	struct engine *e;
	void *user;

	struct group *g;
	enum member_state state;
	uint64_t round; /* MEMBER_IDLE, MEMBER_BEHIND */
	uint64_t *held; /* MEMBER_CATCHING_UP: seq held per entry */
	uint32_t held_len;
	/* MEMBER_CATCHING_UP: the entry its next frame starts at (entries
	 * are visited in turn, so none waits while those before it keep
	 * changing), and how many entries the batch under way still has to
	 * visit: a batch cut by the frame cap goes on in the next frame at
	 * once, max_hz or not (0: no batch under way). */
	uint32_t catch_next;
	uint32_t batch_left;
	struct engine_client *prev, *next; /* in the group's list */

	struct frame *frame; /* being sent chunk by chunk */
	uint32_t chunk;
	struct frame *done_frame; /* sent; released at the next call */
	uint64_t frame_id;        /* of the bytes the last call returned */

	bool (*allowed)(const char *symbol, void *ctx);
	void *allowed_ctx;
	char *filter_key;
	int64_t min_interval_us; /* 0 = no max_hz */
	int64_t last_frame_us;   /* for max_hz; INT64_MIN before the first */

	bool stalled; /* caught up, but the group had a round to close */
	bool ready_queued;
	struct engine_client *ready_prev, *ready_next; /* owed client_ready */
	struct engine_client *all_prev, *all_next;     /* every client */
};

struct engine {
	struct engine_config config;
	size_t frame_cap, headroom;

	struct symbol **buckets;
	size_t bucket_mask;
	size_t nsymbols;      /* in the table, placeholders included */
	size_t nsymbols_data; /* with seq > 0 */
	size_t max_symbols;   /* bound on nsymbols_data; SIZE_MAX: none */
	struct symbol *dirty_head, *dirty_tail;

	struct group **groups; /* by key hash */
	size_t group_mask, ngroups;
	struct group *dirty_groups;
	struct group *wildcards;

	struct engine_client *clients;
	struct engine_client *ready;
	size_t nclients;

	uint64_t merge_stamp;
	uint64_t last_chunk_id;
	char *scratch; /* headroom + frame_cap, for engine_client_write */
	struct engine_stats stats;

	char key[STATE_FIELD_COUNT][KEY_MAX];
	uint8_t key_len[STATE_FIELD_COUNT];
};

/* last_frame_us before the first frame, so max_hz never holds it back. */
#define NEVER_SENT INT64_MIN

/* What makes a group: which symbols its clients subscribed to. Explicit
 * names and names excluded from the wildcard are sorted by address. */
struct group_key {
	bool wildcard;
	const char *filter_key;
	struct symbol **named;
	size_t nnamed;
	struct symbol **excluded;
	size_t nexcluded;
};

/*
 * A client's place in its group's lists, and the engine's list of clients
 * owed a client_ready: small, and on the flush's path for every client
 * that becomes pending, so they are inline here rather than calls into
 * another file.
 */
static inline struct engine_client **
engine__list_head(struct group *g, enum member_state state)
{
	switch (state) {
	case MEMBER_IDLE:
		return &g->idle;
	case MEMBER_BEHIND:
		return &g->behind;
	default:
		return &g->catching_up;
	}
}

static inline void
engine__member_unlink(struct engine_client *c)
{
	struct group *g = c->g;

	if (c->prev)
		c->prev->next = c->next;
	else
		*engine__list_head(g, c->state) = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else if (c->state == MEMBER_BEHIND)
		g->behind_tail = c->prev;
	c->prev = c->next = NULL;
}

/* Into the idle or catching-up list (order does not matter there). */
static inline void
engine__member_push(struct engine_client *c, enum member_state state)
{
	struct engine_client **head = engine__list_head(c->g, state);

	c->state = state;
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static inline void
engine__ready_push(struct engine *e, struct engine_client *c)
{
	if (c->ready_queued)
		return;
	c->ready_queued = true;
	c->ready_prev = NULL;
	c->ready_next = e->ready;
	if (e->ready)
		e->ready->ready_prev = c;
	e->ready = c;
}

static inline void
engine__ready_remove(struct engine *e, struct engine_client *c)
{
	if (!c->ready_queued)
		return;
	if (c->ready_prev)
		c->ready_prev->ready_next = c->ready_next;
	else
		e->ready = c->ready_next;
	if (c->ready_next)
		c->ready_next->ready_prev = c->ready_prev;
	c->ready_prev = c->ready_next = NULL;
	c->ready_queued = false;
}

/* ---------------------------------------------------------- engine.c */

struct symbol *engine__symbol_find(const struct engine *e, const char *name,
                                   size_t len);

/* Find or make (a placeholder, seq 0); NULL for an invalid name or out of
 * memory. */
struct symbol *engine__symbol_get(struct engine *e, const char *name,
                                  size_t len);

/* Free a placeholder that no group names any more. */
void engine__symbol_release_if_unused(struct engine *e, struct symbol *sym);

/* ----------------------------------------------------- engine_group.c */

/* Sort by address and drop duplicates; returns the new count. */
size_t engine__sort_unique(struct symbol **v, size_t n);

/* Whether sym is in v[0..n), sorted by address. */
bool engine__contains(struct symbol *const *v, size_t n,
                      const struct symbol *sym);

uint64_t engine__key_hash(const struct group_key *k);

/* The group of key k (hash is engine__key_hash(k)), or NULL. */
struct group *engine__group_find(struct engine *e, const struct group_key *k,
                                 uint64_t hash);

/* A new group of key k with its entries and no member yet (the wildcard's
 * filter is borrowed from c); NULL out of memory. */
struct group *engine__group_create(struct engine *e, const struct group_key *k,
                                   uint64_t hash,
                                   const struct engine_client *c);

/* Unlink and free a group that no client is in any more. */
void engine__group_destroy(struct engine *e, struct group *g);

/* Whether g's wildcard takes sym: not excluded, and allowed by its filter. */
bool engine__group_takes(const struct group *g, const struct symbol *sym);

/* g's entry for sym, or NULL. */
struct entry *engine__entry_of(const struct group *g, const struct symbol *sym);

/* A new entry at the end of g->entries, holding the symbol's current seq;
 * NULL out of memory. */
struct entry *engine__entry_add(struct engine *e, struct group *g,
                                struct symbol *sym, bool is_explicit);

/* Unlink an entry from its symbol and free it (the caller takes it out of
 * g->entries); a placeholder nothing names any more is released. */
void engine__entry_unlink(struct engine *e, struct entry *en);

/* A symbol got its first data: the wildcard groups that allow it take it.
 * Returns 0, or -1 out of memory. */
int engine__attach_wildcards(struct engine *e, struct symbol *sym);

/* Leave the group, dropping the frames and seqs held (the group goes with
 * its last client). */
void engine__member_leave(struct engine *e, struct engine_client *c);

void engine__member_join(struct engine *e, struct engine_client *c,
                         struct group *g);

/* ---------------------------------------------------- engine_fanout.c */

/* The seqs a client holds, one per entry of its group, in a new array of
 * g->nentries (the caller frees it); NULL out of memory. */
uint64_t *engine__seqs_held(struct engine *e, const struct engine_client *c);

/* The client holds every entry's latest seq: back to the group's rhythm. */
void engine__rejoin(struct engine_client *c);

/* The symbol's history was replaced (restore): every group's clients get a
 * snapshot at the next round. */
void engine__symbol_reset(struct engine *e, struct symbol *sym);

/* engine_clear(): the symbols were emptied. Every group forgets its rounds
 * and frames, its entries hold seq 0 (what comes next is a snapshot), and
 * every client stands idle at its group's latest round, owing nothing. */
void engine__fanout_clear(struct engine *e);

/* engine_flush()'s fan-out: close a round in every group a dirty symbol is
 * in, then make the idle clients of those groups pending. */
void engine__fanout_flush(struct engine *e);

/* ------------------------------------------------- engine_subscribe.c */

void engine__client_destroy_all(struct engine *e);

/* ---------------------------------------------------- engine_encode.c */

/* The bytes of the update from `from` (0 = snapshot) to the symbol's
 * current seq, cached per symbol. *fresh: encoded now for the first use. */
const char *engine__update(struct engine *e, struct symbol *sym, uint64_t from,
                           char *scratch, size_t *len, bool *fresh);

void engine__encoding_free(struct symbol *sym);

/* Drop a symbol's cached encodings (its history was replaced). */
void engine__encoding_drop(struct symbol *sym);

/* Build a frame: updates go in chunk by chunk, each chunk at most the frame
 * cap, each with the engine's headroom before it. */
struct frame *engine__frame_new(struct engine *e, uint64_t from_round,
                                uint64_t to_round);

/* Add one update, which moves entry idx to seq `to`; returns 0, or -1
 * out of memory (the frame is failed). */
int engine__frame_add(struct engine *e, struct frame *f, const char *enc,
                      size_t len, bool fresh, uint64_t conflated, uint32_t idx,
                      uint64_t to);

/* Close the last chunk. */
void engine__frame_end(struct frame *f);

void engine__frame_unref(struct frame *f);

/* A frame into a caller's buffer: buf[0..cap) gets '[' or the single
 * update, and the updates that fit. */
struct frame_writer {
	char *buf;
	size_t cap, pos;
	uint32_t n;
};

void engine__writer_init(struct frame_writer *w, char *buf, size_t cap);

/* Returns false (and writes nothing) when the update does not fit. */
bool engine__writer_add(struct frame_writer *w, const char *enc, size_t len);

/* The frame's final length (0 when empty); its first byte is at w->buf. */
size_t engine__writer_end(struct frame_writer *w);

/* ------------------------------------------ members and rounds, inline */

/*
 * What engine_fanout.c, engine_group.c and engine_subscribe.c each do to a
 * client or a group that starts over. Inline for the same reason as the
 * lists above: a client that starts catching up and a group that closes a
 * round are on the flush's path.
 */

/* The client lets go of its place in its group's lists, of the frame under
 * way and of the seqs it held; it is still in its group, in no list. */
static inline void
engine__member_drop(struct engine_client *c)
{
	engine__member_unlink(c);
	engine__frame_unref(c->frame);
	c->frame = NULL;
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
	c->catch_next = 0;
	c->batch_left = 0;
}

/* The group lets go of its frames (made for its latest round). */
static inline void
engine__frames_drop(struct group *g)
{
	uint32_t i;

	for (i = 0; i < g->nframes; i++)
		engine__frame_unref(g->frames[i]);
	g->nframes = 0;
}

/* The group forgets its rounds and frames: the next round it closes is
 * the first it keeps. */
static inline void
engine__rounds_forget(struct group *g)
{
	uint32_t i;

	for (i = 0; i < ROUND_RING; i++) {
		g->ring[i].n = 0;
		g->ring[i].count = 0;
	}
	g->kept_from = g->round + 1;
	engine__frames_drop(g);
}

#endif
