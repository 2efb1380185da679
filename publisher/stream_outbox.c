/*
 * stream_outbox.c: numbered frames kept for a client that may ask again
 * (stream_outbox.h). A list from the oldest frame kept to the newest
 * finished one; `unsent` marks the first not yet written, so the frames
 * before it are the written ones a cursor may still ask for.
 */
#include "stream_outbox.h"

#include <stdlib.h>
#include <string.h>

struct outbox_frame {
	struct outbox_frame *next;
	uint64_t number;
	size_t len;
	char data[];
};

struct stream_outbox {
	size_t retain_bytes;
	struct outbox_frame *head, *tail; /* finished frames, oldest first */
	struct outbox_frame *unsent;      /* first not yet written, or NULL */
	size_t written_bytes;             /* of the frames before unsent */
	size_t unsent_bytes;
	uint64_t last;      /* number of the newest finished frame */
	uint64_t last_sent; /* number of the newest frame written */
	char *open;         /* the frame being put together */
	size_t open_len, open_cap;
};

struct stream_outbox *
stream_outbox_create(size_t retain_bytes)
{
	struct stream_outbox *o = calloc(1, sizeof *o);

	if (o)
		o->retain_bytes = retain_bytes;
	return o;
}

void
stream_outbox_destroy(struct stream_outbox *o)
{
	struct outbox_frame *f, *next;

	if (!o)
		return;
	for (f = o->head; f; f = next) {
		next = f->next;
		free(f);
	}
	free(o->open);
	free(o);
}

static void
drop_head(struct stream_outbox *o)
{
	struct outbox_frame *f = o->head;

	o->head = f->next;
	if (!o->head)
		o->tail = NULL;
	o->written_bytes -= f->len;
	free(f);
}

/* Keep at most retain_bytes of written frames. */
static void
trim(struct stream_outbox *o)
{
	while (o->head && o->head != o->unsent &&
	       o->written_bytes > o->retain_bytes)
		drop_head(o);
}

static int
finish(struct stream_outbox *o, const char *data, size_t len)
{
	struct outbox_frame *f = malloc(sizeof *f + len);

	if (!f)
		return -1;
	f->next = NULL;
	f->number = ++o->last;
	f->len = len;
	memcpy(f->data, data, len);
	if (o->tail)
		o->tail->next = f;
	else
		o->head = f;
	o->tail = f;
	if (!o->unsent)
		o->unsent = f;
	o->unsent_bytes += len;
	return 0;
}

int
stream_outbox_add(struct stream_outbox *o, const char *data, size_t len,
                  bool last)
{
	int rc;

	/* A whole frame in one piece, the common case, is copied once. */
	if (last && !o->open_len)
		return finish(o, data, len);
	if (o->open_len + len > o->open_cap) {
		size_t cap = o->open_cap ? o->open_cap : 4096;
		char *p;

		while (cap < o->open_len + len)
			cap *= 2;
		p = realloc(o->open, cap);
		if (!p) {
			o->open_len = 0;
			return -1;
		}
		o->open = p;
		o->open_cap = cap;
	}
	memcpy(o->open + o->open_len, data, len);
	o->open_len += len;
	if (!last)
		return 0;
	rc = finish(o, o->open, o->open_len);
	o->open_len = 0;
	/* A long reply's buffer is not kept for the next one. */
	if (o->open_cap > 65536) {
		free(o->open);
		o->open = NULL;
		o->open_cap = 0;
	}
	return rc;
}

bool
stream_outbox_next(const struct stream_outbox *o, struct stream_frame *f)
{
	if (!o->unsent)
		return false;
	f->number = o->unsent->number;
	f->data = o->unsent->data;
	f->len = o->unsent->len;
	return true;
}

void
stream_outbox_sent(struct stream_outbox *o)
{
	struct outbox_frame *f = o->unsent;

	if (!f)
		return;
	o->unsent = f->next;
	o->unsent_bytes -= f->len;
	o->written_bytes += f->len;
	o->last_sent = f->number;
	trim(o);
}

size_t
stream_outbox_unsent_bytes(const struct stream_outbox *o)
{
	return o->unsent_bytes;
}

uint64_t
stream_outbox_last_sent(const struct stream_outbox *o)
{
	return o->last_sent;
}

uint64_t
stream_outbox_last(const struct stream_outbox *o)
{
	return o->last;
}

bool
stream_outbox_rewind(struct stream_outbox *o, uint64_t cursor)
{
	struct outbox_frame *f;
	size_t written = 0, unsent = 0;

	if (cursor > o->last)
		return false;
	/* Every frame after the cursor must still be here: the oldest kept
	 * is at most cursor + 1 (none kept: the cursor is the last). */
	if (o->head ? o->head->number > cursor + 1 : cursor != o->last)
		return false;
	o->unsent = NULL;
	for (f = o->head; f; f = f->next) {
		if (f->number <= cursor) {
			written += f->len;
			continue;
		}
		if (!o->unsent)
			o->unsent = f;
		unsent += f->len;
	}
	o->written_bytes = written;
	o->unsent_bytes = unsent;
	o->last_sent = cursor;
	return true;
}

void
stream_outbox_ack(struct stream_outbox *o, uint64_t cursor)
{
	if (cursor > o->last_sent)
		cursor = o->last_sent;
	while (o->head && o->head != o->unsent && o->head->number <= cursor)
		drop_head(o);
}

size_t
stream_outbox_bytes(const struct stream_outbox *o)
{
	return o->written_bytes + o->unsent_bytes + o->open_len;
}
