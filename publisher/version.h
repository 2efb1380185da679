/*
 * version: the release of this tree, in one place: the CLI prints it
 * (--version, cli.c) and the server names itself with it in its hello
 * message (server.c). Owns nothing: two macros.
 */
#ifndef PUBLISHER_VERSION_H
#define PUBLISHER_VERSION_H

#define PUBLISHER_VERSION "0.1.0"
#define PUBLISHER_NAME_VERSION "publisher " PUBLISHER_VERSION

#endif
