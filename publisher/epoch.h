/*
 * epoch: the name of one life of the data. Within one epoch a (symbol,
 * seq) pair names one state forever, so a client that resumes with the
 * epoch and the seqs it holds gets deltas, and under another epoch it gets
 * snapshots (README, Protocol: "resume"). An epoch is made when a database
 * is created, or when the server has to begin a new life (a server with no
 * store, seqs it could not keep, a replay that seeks back; see "Seqs" in
 * store.h).
 *
 * What it owns: nothing; epoch_make() fills the caller's buffer.
 *
 * Who calls it: store.c (a new database), store_reserve.c (on open, a
 * database that lost values clients had seen), store_rewind.c (a seek
 * back with a store), pipeline_seqs.c (reservations that could not be
 * written, a seek back without a store) and main.c (a server without a
 * store).
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
