/*
 * schema_sql: the migrations of schema/NNN_name.sql, compiled in.
 *
 * schema/embed.sh generates the array from the .sql files at build time, in
 * number order; it refuses a gap or a repeated number, so
 * schema_migrations[i].version == i + 1 and the newest version this build
 * knows is schema_migration_count.
 */
#ifndef SCHEMA_SCHEMA_SQL_H
#define SCHEMA_SCHEMA_SQL_H

struct schema_migration {
	int version;      /* NNN of the file name */
	const char *name; /* the rest of it, without ".sql" */
	const char *sql;  /* the file's text */
};

extern const struct schema_migration schema_migrations[];
extern const int schema_migration_count;

#endif
