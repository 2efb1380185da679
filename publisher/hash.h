/*
 * hash.h: the one hash of the publisher's in-memory tables keyed by a
 * symbol name (or any short string), and the step that folds a word into
 * a hash, for keys made of several parts.
 *
 * Who calls it: the engine (its symbol table, and the keys of its
 * subscription groups), the state tables (state_table.c), the store
 * writer's symbols and gaps, the Redis publisher's per-batch and
 * dropped-symbol sets, the seq gate's symbols, the replay feed's
 * per-symbol tables and admission's connections per address. Owns
 * nothing: static inline functions, no state.
 * The values are never stored or sent, so the function may change.
 *
 * Names are at most 32 bytes, so the hash reads eight bytes at a time (a
 * handful of multiplies). The bytes past the last full word are read as
 * fixed-size loads that overlap what was read already, never byte by byte
 * and never with a memcpy of variable size (which is a call into libc):
 * that makes it several times faster than byte-wise FNV-1a on names like
 * "SYM0001.X". The length is part of the seed, so overlapping reads of
 * names of different lengths do not collide for that reason. The final
 * mix spreads the bits so that tables of any power-of-two size can use the
 * low bits.
 */
#ifndef PUBLISHER_HASH_H
#define PUBLISHER_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Fold the word v into the hash h. */
static inline uint64_t
hash_mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0xff51afd7ed558ccdull;
	return h ^ (h >> 32);
}

/* The hash of s[0..len). */
static inline uint64_t
hash_name(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len, w;

	if (len >= 8) {
		const char *last = s + len - 8;

		for (; s < last; s += 8) {
			memcpy(&w, s, 8);
			h = hash_mix(h, w);
		}
		memcpy(&w, last, 8);
	} else if (len >= 4) {
		uint32_t a, b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		w = (uint64_t)a << 32 | b;
	} else if (len) {
		w = (uint64_t)(unsigned char)s[0] << 16 |
		    (uint64_t)(unsigned char)s[len >> 1] << 8 |
		    (unsigned char)s[len - 1];
	} else {
		w = 0;
	}
	h = hash_mix(h, w);
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

#endif
