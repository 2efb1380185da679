/*
 * epoch: the name of one life of the data (SPEC §2): made when a database
 * is created, or when the server has to begin a new life (a server with no
 * store, seqs it could not keep; see "Seqs" in store.h).
 */
#ifndef PUBLISHER_EPOCH_H
#define PUBLISHER_EPOCH_H

#include <stddef.h>

/* Characters of an epoch made here (16 hex digits), without the NUL. */
#define EPOCH_TEXT_LEN 16

/* A fresh epoch, from /dev/urandom (or, failing that, the clock and the
 * pid): EPOCH_TEXT_LEN hex digits and a NUL into out, which holds len
 * bytes (at least EPOCH_TEXT_LEN + 1, else it is cut short). */
void epoch_make(char *out, size_t len);

#endif
