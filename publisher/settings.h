/*
 * settings: a table of settings, each one row with its name, bounds,
 * default, help and target, from which setting a value (from a flag or a
 * config file line), the defaults, the config file reader, spelling
 * suggestions and the help text all come. Redis's config.c is the model.
 *
 * Owns no state: the table is the caller's (publisher/cli.c holds the
 * publisher's), and each row's target is a field of the caller's options,
 * found by offsetof from a base pointer, so that every module keeps its
 * own options struct (server_options, store_options, export_options…) and
 * none of them knows where its values came from. Who calls it: cli.c
 * alone, at start-up, with the publisher's table.
 *
 *   static const struct setting rows[] = {
 *       SETTING_UINT("heartbeat-ms", "N", FOR_SERVE, struct cli,
 *                    server.heartbeat_ms, 100, 3600000, "milliseconds",
 *                    "5000", "heartbeat an idle client every N ms"),
 *       ...
 *   };
 *   struct settings_run run = {.rows = rows, .count = n, .base = &cli,
 *                              .scope = FOR_SERVE, .scope_name = "serve",
 *                              .err = err, .errlen = errlen};
 *   settings_defaults(&run);
 *   settings_read_file(&run, "publisher.conf", text, sizeof text);
 *   settings_set(&run, settings_find(&run, "heartbeat-ms", 12, NULL),
 *                "--heartbeat-ms", "250");
 *
 * Messages name the setting as the user wrote it (--heartbeat-ms on the
 * command line, heartbeat-ms in a file) with the value quoted, and say what
 * would be accepted: "--heartbeat-ms '99': must be a whole number of
 * milliseconds from 100 to 3600000".
 */
#ifndef PUBLISHER_SETTINGS_H
#define PUBLISHER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum setting_kind {
	SETTING_KIND_UINT,   /* a whole number in [min, max]: unsigned,
	                      * size_t or uint64_t target */
	SETTING_KIND_NUMBER, /* a plain decimal number > 0, and >= min when
	                      * min > 0: double target */
	SETTING_KIND_STRING, /* const char * target, pointing into argv or
	                      * the config text (never copied) */
	SETTING_KIND_CHOICE, /* one of choices[]: int (or enum) target */
	SETTING_KIND_SWITCH, /* takes no value: bool target set true */
	SETTING_KIND_LIST,   /* may be repeated: const char *[max] target
	                      * with a size_t count at count_offset */
	SETTING_KIND_CUSTOM, /* parse() fills the target */
};

struct setting_choice {
	const char *name;
	int value;
};

struct setting {
	const char *name;    /* "heartbeat-ms": --heartbeat-ms on the
	                      * command line, heartbeat-ms in a file */
	const char *alias;   /* a short flag ("-o") or NULL */
	const char *metavar; /* "N", "HOST:PORT"; NULL for a switch */
	unsigned scopes;     /* the commands that take it: the caller's
	                      * bits, matched against settings_run.scope */
	const char *section; /* the help heading it is listed under */
	enum setting_kind kind;
	size_t offset, size; /* the target, from settings_run.base */
	uint64_t min, max;   /* UINT: bounds; NUMBER: min (0 means > 0);
	                      * LIST: max is the capacity */
	size_t count_offset; /* LIST: the size_t that counts the values */
	const struct setting_choice *choices; /* CHOICE: ends with {NULL} */
	/* CUSTOM: parse value into target, or return -1 with what is wrong
	 * in why (the caller puts the name and value in front). LIST: when
	 * set, checks each value the same way (target is NULL). */
	int (*parse)(const char *value, void *target, char *why, size_t whylen);
	const char *unit;         /* UINT: "milliseconds" in "a whole number of
	                           * milliseconds from 100 to 3600000" */
	const char *expect;       /* NUMBER: what a bad value is told ("must
	                           * be a number > 0"); UINT and LIST: a hint
	                           * after the message */
	const char *default_text; /* as a user would type it, applied by
	                           * settings_defaults(); NULL: zero */
	const char *help;         /* one paragraph; wrapped by the help */
	bool hide_default;        /* the help states the default itself */
};

/* Rows, by kind. T is the base type (struct cli), F the field. */
#define SETTING_TARGET(T, F) offsetof(T, F), sizeof(((T *)0)->F)

#define SETTING_UINT(name, metavar, scopes, section, T, F, min, max, unit,     \
                     def, help)                                                \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_UINT,       \
		        SETTING_TARGET(T, F), min, max, 0, NULL, NULL, unit,   \
		        NULL, def, help, false                                 \
	}
#define SETTING_NUMBER(name, metavar, scopes, section, T, F, min, expect, def, \
                       help)                                                   \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_NUMBER,     \
		        SETTING_TARGET(T, F), min, 0, 0, NULL, NULL, NULL,     \
		        expect, def, help, false                               \
	}
#define SETTING_STRING(name, metavar, scopes, section, T, F, def, help)        \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_STRING,     \
		        SETTING_TARGET(T, F), 0, 0, 0, NULL, NULL, NULL, NULL, \
		        def, help, false                                       \
	}
#define SETTING_CHOICE(name, metavar, scopes, section, T, F, choices, def,     \
                       help)                                                   \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_CHOICE,     \
		        SETTING_TARGET(T, F), 0, 0, 0, choices, NULL, NULL,    \
		        NULL, def, help, false                                 \
	}
#define SETTING_SWITCH(name, scopes, section, T, F, help)                      \
	{                                                                      \
		name, NULL, NULL, scopes, section, SETTING_KIND_SWITCH,        \
		        SETTING_TARGET(T, F), 0, 0, 0, NULL, NULL, NULL, NULL, \
		        NULL, help, false                                      \
	}
#define SETTING_LIST(name, metavar, scopes, section, T, F, count_field, check, \
                     hint, help)                                               \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_LIST,       \
		        SETTING_TARGET(T, F), 0,                               \
		        sizeof(((T *)0)->F) / sizeof(((T *)0)->F[0]),          \
		        offsetof(T, count_field), NULL, check, NULL, hint,     \
		        NULL, help, false                                      \
	}
#define SETTING_CUSTOM(name, metavar, scopes, section, T, F, parse, def, help) \
	{                                                                      \
		name, NULL, metavar, scopes, section, SETTING_KIND_CUSTOM,     \
		        SETTING_TARGET(T, F), 0, 0, 0, NULL, parse, NULL,      \
		        NULL, def, help, false                                 \
	}

/* Where the settings of one run go, and what is known of them so far. */
struct settings_run {
	const struct setting *rows;
	size_t count;
	void *base;             /* targets are offsets from here */
	unsigned scope;         /* the command's bit */
	const char *scope_name; /* "serve", for messages */
	/* Per row: 0 = default, 1 = set by the config file, 2 = by a flag.
	 * A flag replaces what the file gave a list; it does not add. */
	unsigned char *given; /* count entries, zeroed by the caller */
	char *err;
	size_t errlen;
};

/* A whole decimal number in [min, max]: digits only, no sign, spaces or
 * suffix, no overflow. Returns 0 with *out set, or -1. For the parsers of
 * custom rows, so that every number is read by one rule. */
int settings_parse_whole(const char *s, uint64_t min, uint64_t max,
                         uint64_t *out);

/* A plain decimal number, finite and > 0: digits with at most one '.', so
 * that "inf", "0x10" or "1e999" are refused. Returns 0 with *out set, or
 * -1. */
int settings_parse_positive(const char *s, double *out);

/* The row named name (namelen bytes: "heartbeat-ms", or its alias "-o")
 * that applies to run->scope; NULL when none does. When none applies and
 * other is given, *other is set to a row of that name for another scope
 * (for "does not apply to" messages), else NULL. */
const struct setting *settings_find(const struct settings_run *run,
                                    const char *name, size_t namelen,
                                    const struct setting **other);

/* The row of run->scope whose name is closest to name (a typo of one or
 * two characters), or NULL. */
const struct setting *settings_suggest(const struct settings_run *run,
                                       const char *name);

/* Set every row of run->scope to its default (default_text parsed as a
 * user's value would be); rows without one are left as the caller set
 * them. Returns 0, or -1 with the message in run->err (a table bug). */
int settings_defaults(const struct settings_run *run);

/* Set one row from a value as typed (NULL for a switch). shown is the name
 * as the user wrote it, for the message. from_file: the value came from
 * the config file (a later flag then replaces a list instead of adding).
 * Returns 0, or -1 with the message in run->err. */
int settings_set(const struct settings_run *run, const struct setting *row,
                 const char *shown, const char *value, bool from_file);

/*
 * Read a config file: one setting per line, "name value" with the names
 * of the flags without their "--" (as redis.conf), a switch alone on its
 * line; blank lines and lines starting with # are skipped; the value is
 * the rest of the line with surrounding blanks (and one pair of double
 * quotes) removed. A list setting may appear on several lines. The file
 * is read into text (capacity cap), which must outlive the values.
 * Returns 0, or -1 with "config 'FILE' line N: ..." in run->err.
 */
int settings_read_file(const struct settings_run *run, const char *path,
                       char *text, size_t cap);

/* The rows of run->scope under their section headings, wrapped to fit
 * 80 columns, each with its default. */
void settings_print_help(const struct settings_run *run, FILE *to);

#endif
