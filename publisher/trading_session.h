/*
 * trading_session: when each symbol's trading day begins, as the --session
 * settings say, and so which session a tick's ts falls in.
 *
 * What it is for: open, high, low, volume and trades start again with
 * every session, and prev_close, the close of the session before, is what
 * a change is measured against (symbol_state.h). Equities open at 09:30
 * in New York, FX rolls over at 17:00 New York time, and both follow New
 * York's daylight saving time. A setting names a pattern of symbols, a
 * time zone and the wall time its sessions begin:
 *
 *   AAPL=America/New_York@09:30    one symbol
 *   EUR*=America/New_York@17:00    every symbol that begins "EUR"
 *   *=Asia/Tokyo@09:00             every symbol
 *
 * The first setting whose pattern matches a symbol is its rule; a symbol
 * none matches has UTC days (00:00 UTC to 00:00 UTC). A session of a day
 * runs from that day's start time to the next day's; a day whose clocks
 * are set forward over the start time begins when they jump, one whose
 * clocks are set back over it at its first instant.
 *
 * What it owns: the rules and the time zones they load (time_zone.h).
 *
 * Who calls it: cli.c checks each --session value with
 * trading_session_check(); main.c makes the sessions once at start-up and
 * hands their rule (trading_sessions_rule()) to the pipeline's engine (an
 * edge's too), the store (and an import's) and the Redis publisher, which
 * all fold ticks with it, and the sessions themselves to the server,
 * whose `symbols` reply names each symbol's zone (trading_sessions_zone()).
 * Lookups take no lock and change nothing: the rule is safe on every
 * thread, for as long as the sessions live.
 */
#ifndef PUBLISHER_TRADING_SESSION_H
#define PUBLISHER_TRADING_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "symbol_state.h"

/* Settings at most. */
#define TRADING_SESSION_MAX 64

struct trading_session_options {
	/* PATTERN=ZONE@HH:MM, first match wins (strings borrowed until
	 * trading_sessions_create() returns). */
	const char *specs[TRADING_SESSION_MAX];
	size_t count;
};

struct trading_sessions;

/*
 * Check one setting, PATTERN=ZONE@HH:MM (the zone is loaded, so a zone
 * this machine does not have is refused). Returns 0, or -1 with what is
 * wrong in why, in words that say what would be accepted.
 */
int trading_session_check(const char *spec, char *why, size_t whylen);

/* The rules of opt (none: UTC days for every symbol). Returns NULL with
 * the cause in err (a bad setting, as trading_session_check() says it,
 * or out of memory). */
struct trading_sessions *
trading_sessions_create(const struct trading_session_options *opt, char *err,
                        size_t errlen);

/* NULL is a no-op. */
void trading_sessions_destroy(struct trading_sessions *s);

/* The session of symbol that ts (µs) falls in. */
void trading_sessions_span(const struct trading_sessions *s, const char *symbol,
                           int64_t ts, struct session_span *out);

/* The IANA name of the time zone symbol's sessions follow, as its setting
 * gives it ("America/New_York"), or "UTC" for a symbol no setting matches
 * (and for s NULL). Borrowed: valid while s lives. The `symbols` reply
 * carries it, so a dashboard can show times in the instrument's zone. */
const char *trading_sessions_zone(const struct trading_sessions *s,
                                  const char *symbol);

/* s as the rule a fold takes (symbol_state.h); valid while s lives. */
struct session_rule trading_sessions_rule(const struct trading_sessions *s);

/* The rules as one line of text, for a log: "AAPL=America/New_York@09:30,
 * *=UTC@00:00" (the last is the default), cut to fit len. */
void trading_sessions_describe(const struct trading_sessions *s, char *out,
                               size_t len);

#endif
