/*
 * cli: the command line (README, Command line) and the config file, parsed
 * into the options struct of each module that takes them.
 *
 *   publisher serve  [--config FILE] [options]
 *   publisher replay FILE [--speed X|max] [--loop] [--config FILE] [options]
 *   publisher export --db FILE [--symbol S]... [--from T] [--to T]
 *                    [--format csv|jsonl] [-o FILE]
 *   publisher import FILE... --db FILE
 *   publisher [COMMAND] --help | --version
 *
 * Every option is one row of the settings table in cli.c (see settings.h):
 * its name is the flag without "--" and the name in a config file, and its
 * target a field of server_options, store_options, feed_replay_options,
 * export_options, import_options, trading_session_options or
 * node_options below. A config file is read
 * first and the flags override it.
 *
 * What it owns: no state of its own. cli_parse() fills the caller's struct
 * cli and allocates nothing: its strings point into argv or into the
 * struct's config_text (the --config file is read there), so both must
 * outlive the options.
 *
 * Who calls it: main.c, once at start-up before any thread starts (and
 * cli.c, which implements it). The modules never see the command line,
 * only their own options: no other file includes this header.
 */
#ifndef PUBLISHER_CLI_H
#define PUBLISHER_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export.h"
#include "feed.h"
#include "import.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "trading_session.h"

/* The largest config file read, in bytes. */
#define CLI_CONFIG_MAX (64 * 1024)

enum cli_command {
	CLI_SERVE,
	CLI_REPLAY, /* serve with the replay feed of FILE */
	CLI_EXPORT,
	CLI_IMPORT, /* FILE... into --db */
	CLI_HELP,
	CLI_VERSION,
};

/* Scale-out (publisher/redis_link.h). */
enum serve_role {
	ROLE_STANDALONE, /* the default: no Redis */
	ROLE_INGEST,     /* feed + store + engine, publishes to Redis */
	ROLE_EDGE,       /* no feed: follows Redis and serves clients */
};

/* What main.c wires a node from, besides the modules' own options. */
struct node_options {
	const char *config;    /* --config FILE, already read; or NULL */
	const char *feed_spec; /* serve's --feed; "none" for an edge */
	enum log_level log_level;
	const char *port_file; /* if set, the bound port is written there */
	/* --role, --redis HOST:PORT (required for ingest and edge),
	 * --redis-prefix (NULL: the link's default). An edge has no feed and
	 * no store unless given --db FILE; main.c opens an edge's store with
	 * the ingest's epoch. */
	enum serve_role role;
	char redis_host[256]; /* "" when --redis is not given */
	int redis_port;
	const char *redis_prefix;
};

struct cli {
	enum cli_command command;
	/* CLI_HELP: the command whose help was asked for ("publisher serve
	 * --help"), or CLI_HELP for the whole help. */
	enum cli_command help_for;
	struct node_options node;
	struct server_options server;
	struct store_options store;        /* path: --db, "none" for none */
	struct feed_replay_options replay; /* replay's FILE, --speed, --loop */
	struct export_options export;
	struct import_options import;     /* FILE... (argv), --db */
	struct trading_session_options sessions; /* --session, repeated */
	char config_text[CLI_CONFIG_MAX]; /* the --config file's lines */
};

/*
 * Parse argv (and the --config file it names). Returns 0, or -1 with a
 * one-line message in err that names the bad option or value (the caller
 * prints it with the usage hint and exits 2).
 */
int cli_parse(int argc, char **argv, struct cli *out, char *err, size_t errlen);

/* Print the help of one command (serve, replay, export, import), or the whole
 * help for CLI_HELP. */
void cli_print_help(FILE *to, enum cli_command command);

/* "publisher X.Y.Z" */
extern const char cli_version_string[];

#endif
