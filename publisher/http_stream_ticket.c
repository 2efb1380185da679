/*
 * http_stream_ticket.c: one-use tickets (POST /stream/ticket). A browser's
 * EventSource cannot send headers, and a token in a URL ends up in proxy
 * logs: a ticket stands for the token's claims, once, for TICKET_TTL_US.
 * At most TICKETS_MAX wait, oldest first in one list.
 */
#include "http_stream_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* ---------------------------------------------------------- tickets */

static void
ticket_free(struct server *s, struct stream_ticket *t)
{
	auth_claims_free(&t->claims);
	free(t);
	s->ticket_count--;
}

/* The ticket of that id, or NULL. */
struct stream_ticket *
http_stream__ticket_find(struct server *s, const char *id)
{
	struct stream_ticket *t;

	for (t = s->tickets; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

/* Take the ticket's claims (it is used up). -1: no such ticket. */
int
http_stream__ticket_take(struct server *s, const char *id,
                         struct auth_claims *claims)
{
	struct stream_ticket **pp, *prev = NULL;

	for (pp = &s->tickets; *pp; prev = *pp, pp = &(*pp)->next) {
		struct stream_ticket *t = *pp;

		if (strcmp(t->id, id))
			continue;
		*pp = t->next;
		if (s->tickets_tail == t)
			s->tickets_tail = prev;
		*claims = t->claims;
		memset(&t->claims, 0, sizeof t->claims);
		ticket_free(s, t);
		return 0;
	}
	return -1;
}

/* POST /stream/ticket: a token (any of the ways /ws takes one) for a
 * one-use ticket. */
int
http_stream__issue_ticket(struct server *s, struct http_request *h)
{
	struct stream_ticket *t;
	struct auth_claims claims;
	char why[300], who[PEER_MAX + 16], body[128];
	enum refusal r = REFUSED_COUNT;
	int n;

	memset(&claims, 0, sizeof claims);
	if (!origin_allowed(s, h->wsi, why, sizeof why))
		r = REFUSED_ORIGIN;
	else if (s->auth && authenticate(s, h->wsi, &claims, why, sizeof why))
		r = REFUSED_UNAUTHORIZED;
	else if (s->ticket_count >= TICKETS_MAX) {
		r = REFUSED_SERVER_FULL;
		snprintf(why, sizeof why, "%d tickets not yet used",
		         TICKETS_MAX);
	}
	if (r != REFUSED_COUNT) {
		auth_claims_free(&claims);
		s->m.refused_api[r]++;
		snprintf(who, sizeof who, "http (%s)", h->peer);
		log_refusal(who, "POST /stream/ticket", r, why);
		if (write_refusal(h->wsi, r, false))
			return -1;
		h->answered = true;
		return 0;
	}
	t = calloc(1, sizeof *t);
	if (!t || http_stream__random_key(t->id)) {
		free(t);
		auth_claims_free(&claims);
		return -1;
	}
	t->claims = claims;
	t->expires_us = clock_mono_us() + TICKET_TTL_US;
	if (s->tickets_tail)
		s->tickets_tail->next = t;
	else
		s->tickets = t;
	s->tickets_tail = t;
	s->ticket_count++;
	n = snprintf(body, sizeof body,
	             "{\"ticket\":\"%s\",\"expires_ms\":%lld}", t->id,
	             (long long)(TICKET_TTL_US / 1000));
	return http_stream__respond(s, h, 200, "application/json", body,
	                            (size_t)n);
}

void
http_stream__tickets_expire(struct server *s, int64_t now_mono_us)
{
	while (s->tickets && s->tickets->expires_us <= now_mono_us) {
		struct stream_ticket *t = s->tickets;

		s->tickets = t->next;
		if (!s->tickets)
			s->tickets_tail = NULL;
		ticket_free(s, t);
	}
}

void
http_stream__tickets_free(struct server *s)
{
	while (s->tickets) {
		struct stream_ticket *t = s->tickets;

		s->tickets = t->next;
		ticket_free(s, t);
	}
	s->tickets_tail = NULL;
}
