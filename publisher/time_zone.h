/*
 * time_zone: an IANA time zone (America/New_York, Europe/London, ...) read
 * from its TZif file, and the offset from UTC it has at any instant.
 *
 * What it is for: trading sessions start at a local wall time ("09:30 in
 * New York"), so the instant a session starts moves with daylight saving
 * time. The C library can only answer that through the process's TZ
 * (setenv + tzset + localtime_r), which is one setting for the whole
 * process and not safe while other threads read it. This module reads a
 * zone's file itself (RFC 8536: the transitions, then the POSIX TZ rule
 * of its footer for the times after the last one), so any number of zones
 * are in use at once and every lookup is a pure function of the loaded
 * zone: safe on any thread once loaded.
 *
 * What it owns: each struct time_zone and its transition table, freed by
 * time_zone_free().
 *
 * Who calls it: trading_session.c, which loads the zones the --session
 * settings name (at start-up, before any thread starts) and asks them for
 * offsets when a symbol's ticks reach the end of a session.
 */
#ifndef PUBLISHER_TIME_ZONE_H
#define PUBLISHER_TIME_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the zone files are when TZDIR does not say otherwise. */
#define TIME_ZONE_DIR "/usr/share/zoneinfo"

struct time_zone;

/* A zone name as IANA spells them: letters, digits and "/_+-", parts
 * separated by '/', none empty, "." or "..": never a path that leaves the
 * zone directory. */
bool time_zone_name_valid(const char *name);

/*
 * Load the zone `name` from $TZDIR (TIME_ZONE_DIR when TZDIR is not set).
 * "UTC" and "Etc/UTC" need no file. Returns the zone, or NULL with the
 * cause in err ("unknown time zone 'America/New_Yrok' (no file
 * /usr/share/zoneinfo/America/New_Yrok)", "... is not a TZif file").
 * The caller frees it with time_zone_free().
 */
struct time_zone *time_zone_load(const char *name, char *err, size_t errlen);

/*
 * The same from TZif bytes in memory (what a zone file holds), named
 * name (copied) in messages; for tests, and for time_zone_load().
 */
struct time_zone *time_zone_parse(const char *name, const unsigned char *data,
                                  size_t len, char *err, size_t errlen);

/* NULL is a no-op. */
void time_zone_free(struct time_zone *z);

/* The name it was loaded as. */
const char *time_zone_name(const struct time_zone *z);

/* Seconds east of UTC in force at utc (seconds since the epoch): local
 * time = utc + offset. -18000 for New York in winter, -14400 in summer. */
int32_t time_zone_offset(const struct time_zone *z, int64_t utc);

/*
 * The instant (UTC seconds) at which the zone's clocks show `local`
 * (seconds since the epoch, read as a wall clock). A wall time that comes
 * twice (clocks set back) is its first instant; one that never comes
 * (clocks set forward over it) is the instant the clocks jumped.
 */
int64_t time_zone_instant(const struct time_zone *z, int64_t local);

#endif
