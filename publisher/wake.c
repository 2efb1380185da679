/*
 * wake.c: a uv_async_t with a plain callback (see wake.h).
 */
#include "wake.h"

#include <stdlib.h>

struct wake {
	uv_async_t async;
	void (*fn)(void *ctx);
	void *ctx;
};

static void
on_async(uv_async_t *handle)
{
	struct wake *w = handle->data;

	w->fn(w->ctx);
}

struct wake *
wake_new(uv_loop_t *loop, void (*fn)(void *ctx), void *ctx)
{
	struct wake *w = calloc(1, sizeof *w);

	if (!w)
		return NULL;
	w->fn = fn;
	w->ctx = ctx;
	w->async.data = w;
	if (uv_async_init(loop, &w->async, on_async)) {
		free(w);
		return NULL;
	}
	return w;
}

void
wake_signal(void *w)
{
	uv_async_send(&((struct wake *)w)->async);
}

static void
on_closed(uv_handle_t *handle)
{
	free(handle->data);
}

void
wake_free(struct wake *w)
{
	if (w)
		uv_close((uv_handle_t *)&w->async, on_closed);
}
