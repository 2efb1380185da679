/*
 * settings: setting values from a table of rows (see settings.h). Every
 * value, whether it comes from a flag, a config file line or a row's
 * default, goes through settings_set(), so a default is checked exactly
 * as a user's value is.
 */
#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

/* How much of a bad value is quoted back. */
#define QUOTE "'%.80s'"

/* The help's layout: option names from column 2, text from column 26. */
#define HELP_WIDTH  79
#define HELP_INDENT 26

static void *
target_of(const struct settings_run *run, const struct setting *row)
{
	return (char *)run->base + row->offset;
}

/* ---------------------------------------------------------------- values */

/* A whole decimal number in [min, max]; no sign, no spaces, no suffix. */
int
settings_parse_whole(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A plain decimal number (digits with at most one '.'), finite and > 0.
 * The shape is checked before strtod() so that "inf", "0x10" or "1e999"
 * are refused instead of silently accepted.
 */
int
settings_parse_positive(const char *s, double *out)
{
	const char *p;
	char *end;
	int dots = 0, digits = 0;
	double v;

	for (p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (*p >= '0' && *p <= '9')
			digits++;
		else
			return -1;
	}
	if (!digits || dots > 1)
		return -1;
	v = strtod(s, &end);
	if (*end || !isfinite(v) || v <= 0)
		return -1;
	*out = v;
	return 0;
}

static void
store_uint(void *target, size_t size, uint64_t v)
{
	if (size == sizeof(uint32_t)) {
		uint32_t u = (uint32_t)v;

		memcpy(target, &u, sizeof u);
	} else {
		memcpy(target, &v, sizeof v);
	}
}

/* An enum, an int or a bool: choices fit any of them. */
static void
store_int(void *target, size_t size, int v)
{
	if (size == sizeof(bool))
		*(bool *)target = v != 0;
	else
		memcpy(target, &v, sizeof v);
}

static int
set_uint(const struct settings_run *run, const struct setting *row,
         const char *shown, const char *v)
{
	uint64_t n;

	if (settings_parse_whole(v, row->min, row->max, &n))
		return errf(run->err, run->errlen,
		            "%s " QUOTE ": must be a whole number%s%s from "
		            "%llu to %llu%s",
		            shown, v, row->unit ? " of " : "",
		            row->unit ? row->unit : "",
		            (unsigned long long)row->min,
		            (unsigned long long)row->max,
		            row->expect ? row->expect : "");
	store_uint(target_of(run, row), row->size, n);
	return 0;
}

static int
set_number(const struct settings_run *run, const struct setting *row,
           const char *shown, const char *v)
{
	double d;

	if (settings_parse_positive(v, &d) || d < (double)row->min)
		return errf(run->err, run->errlen, "%s " QUOTE ": %s", shown, v,
		            row->expect);
	memcpy(target_of(run, row), &d, sizeof d);
	return 0;
}

/* "expected error, warn, info or debug" */
static void
choices_text(const struct setting_choice *c, char *out, size_t len)
{
	size_t n = 0, i, used = 0;

	while (c[n].name)
		n++;
	out[0] = '\0';
	for (i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s",
		                         i == 0       ? ""
		                         : i == n - 1 ? " or "
		                                      : ", ",
		                         c[i].name);
}

static int
set_choice(const struct settings_run *run, const struct setting *row,
           const char *shown, const char *v)
{
	const struct setting_choice *c;
	char list[200];

	for (c = row->choices; c->name; c++)
		if (!strcmp(c->name, v)) {
			store_int(target_of(run, row), row->size, c->value);
			return 0;
		}
	choices_text(row->choices, list, sizeof list);
	return errf(run->err, run->errlen, "%s " QUOTE ": expected %s", shown,
	            v, list);
}

static int
set_list(const struct settings_run *run, const struct setting *row,
         const char *shown, const char *v, bool replace)
{
	const char **slots = target_of(run, row);
	size_t *count = (size_t *)((char *)run->base + row->count_offset);
	char why[300];

	if (row->parse && row->parse(v, NULL, why, sizeof why))
		return errf(run->err, run->errlen, "%s " QUOTE ": %s", shown, v,
		            why);
	if (replace)
		*count = 0;
	if (*count == row->max)
		return errf(run->err, run->errlen,
		            "%s given more than %llu times%s", shown,
		            (unsigned long long)row->max,
		            row->expect ? row->expect : "");
	slots[(*count)++] = v;
	return 0;
}

int
settings_set(const struct settings_run *run, const struct setting *row,
             const char *shown, const char *value, bool from_file)
{
	size_t i = (size_t)(row - run->rows);
	bool replace = run->given && run->given[i] == 1 && !from_file;
	char why[300];
	int rc;

	if (row->kind == SETTING_KIND_SWITCH) {
		if (value)
			return errf(run->err, run->errlen, "%s takes no value",
			            shown);
	} else if (!value || !*value) {
		return errf(run->err, run->errlen, "%s needs a value", shown);
	}
	switch (row->kind) {
	case SETTING_KIND_UINT:
		rc = set_uint(run, row, shown, value);
		break;
	case SETTING_KIND_NUMBER:
		rc = set_number(run, row, shown, value);
		break;
	case SETTING_KIND_STRING:
		memcpy(target_of(run, row), &value, sizeof value);
		rc = 0;
		break;
	case SETTING_KIND_CHOICE:
		rc = set_choice(run, row, shown, value);
		break;
	case SETTING_KIND_SWITCH:
		*(bool *)target_of(run, row) = true;
		rc = 0;
		break;
	case SETTING_KIND_LIST:
		rc = set_list(run, row, shown, value, replace);
		break;
	case SETTING_KIND_CUSTOM:
		rc = row->parse(value, target_of(run, row), why, sizeof why);
		if (rc)
			errf(run->err, run->errlen, "%s " QUOTE ": %s", shown,
			     value, why);
		break;
	default:
		rc = errf(run->err, run->errlen,
		          "internal error: setting %s has no kind", row->name);
	}
	if (rc == 0 && run->given)
		run->given[i] = from_file ? 1 : 2;
	return rc;
}

int
settings_defaults(const struct settings_run *run)
{
	size_t i;
	char shown[80];

	for (i = 0; i < run->count; i++) {
		const struct setting *row = &run->rows[i];

		if (!(row->scopes & run->scope) || !row->default_text)
			continue;
		snprintf(shown, sizeof shown, "default of %s", row->name);
		if (settings_set(run, row, shown, row->default_text, false))
			return -1;
		if (run->given)
			run->given[i] = 0;
	}
	return 0;
}

/* ------------------------------------------------------------- the names */

static bool
name_is(const char *name, const char *s, size_t len)
{
	return name && strlen(name) == len && !strncmp(name, s, len);
}

const struct setting *
settings_find(const struct settings_run *run, const char *name, size_t namelen,
              const struct setting **other)
{
	size_t i;

	if (other)
		*other = NULL;
	for (i = 0; i < run->count; i++) {
		const struct setting *row = &run->rows[i];

		if (!name_is(row->name, name, namelen) &&
		    !name_is(row->alias, name, namelen))
			continue;
		if (row->scopes & run->scope)
			return row;
		if (other && !*other)
			*other = row;
	}
	return NULL;
}

/* Edit distance of two short strings, capped: enough to spot a typo. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t row[32], la = strlen(a), lb = strlen(b), i, j;

	if (la >= sizeof row / sizeof row[0] ||
	    lb >= sizeof row / sizeof row[0])
		return (size_t)-1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const struct setting *
settings_suggest(const struct settings_run *run, const char *name)
{
	const struct setting *guess = NULL;
	size_t i, best = 3; /* suggest only at distance 1 or 2 */

	for (i = 0; i < run->count; i++) {
		size_t dist;

		if (!(run->rows[i].scopes & run->scope))
			continue;
		dist = edit_distance(name, run->rows[i].name);
		if (dist < best) {
			best = dist;
			guess = &run->rows[i];
		}
	}
	return guess;
}

/* ----------------------------------------------------------- config file */

/* Read the whole file into text, NUL-terminated. */
static int
slurp(const struct settings_run *run, const char *path, char *text, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return errf(run->err, run->errlen, "config " QUOTE ": %s", path,
		            strerror(errno));
	n = fread(text, 1, cap, f);
	if (ferror(f)) {
		fclose(f);
		return errf(run->err, run->errlen,
		            "config " QUOTE ": cannot read it", path);
	}
	fclose(f);
	if (n == cap)
		return errf(run->err, run->errlen,
		            "config " QUOTE ": larger than %zu bytes", path,
		            cap - 1);
	text[n] = '\0';
	if (strlen(text) != n)
		return errf(run->err, run->errlen,
		            "config " QUOTE ": not a text file (a NUL "
		            "byte)",
		            path);
	return 0;
}

static bool
blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line, already cut at its end: "name value", "name", a comment or
 * nothing. */
static int
read_line(const struct settings_run *run, char *line)
{
	const struct setting *row, *other;
	char *name, *value, *end;
	size_t namelen;

	while (blank(*line))
		line++;
	if (!*line || *line == '#')
		return 0;
	name = line;
	while (*line && !blank(*line))
		line++;
	namelen = (size_t)(line - name);
	while (blank(*line))
		*line++ = '\0';
	value = *line ? line : NULL;
	if (value) {
		end = value + strlen(value);
		while (end > value && blank(end[-1]))
			*--end = '\0';
		if (end - value >= 2 && value[0] == '"' && end[-1] == '"') {
			end[-1] = '\0';
			value++;
		}
	}
	name[namelen] = '\0';
	if (name[0] == '-')
		return errf(run->err, run->errlen,
		            "'%s': write the name without its dashes, "
		            "as 'listen 127.0.0.1:8080'",
		            name);
	row = settings_find(run, name, namelen, &other);
	if (!row && other)
		return errf(run->err, run->errlen,
		            "'%s' does not apply to '%s'", name,
		            run->scope_name);
	if (!row) {
		const struct setting *guess = settings_suggest(run, name);

		if (guess)
			return errf(run->err, run->errlen,
			            "unknown setting '%s' (did you mean "
			            "%s?)",
			            name, guess->name);
		return errf(run->err, run->errlen, "unknown setting '%s'",
		            name);
	}
	return settings_set(run, row, name, value, true);
}

int
settings_read_file(const struct settings_run *run, const char *path, char *text,
                   size_t cap)
{
	char *line = text, *nl, why[400];
	unsigned number = 0;

	if (slurp(run, path, text, cap))
		return -1;
	for (; *line; line = nl + 1) {
		number++;
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (read_line(run, line)) {
			snprintf(why, sizeof why, "%s", run->err);
			return errf(run->err, run->errlen,
			            "config " QUOTE " line %u: %s", path,
			            number, why);
		}
		if (!nl)
			break;
	}
	return 0;
}

/* ------------------------------------------------------------------ help */

/* Write words from text, wrapped at HELP_WIDTH, the first line starting
 * at column col, continuation lines at HELP_INDENT. */
static void
wrap(FILE *to, const char *text, size_t col)
{
	const char *p = text;

	while (*p) {
		size_t word = strcspn(p, " ");

		if (col > HELP_INDENT && col + 1 + word > HELP_WIDTH) {
			fprintf(to, "\n%*s", HELP_INDENT, "");
			col = HELP_INDENT;
		} else if (col > HELP_INDENT) {
			fputc(' ', to);
			col++;
		}
		fwrite(p, 1, word, to);
		col += word;
		p += word;
		while (*p == ' ')
			p++;
	}
	fputc('\n', to);
}

static void
print_row(FILE *to, const struct setting *row)
{
	char head[80], text[600];
	int n;

	n = snprintf(head, sizeof head, "  %s%s--%s%s%s",
	             row->alias ? row->alias : "", row->alias ? ", " : "",
	             row->name, row->metavar ? " " : "",
	             row->metavar ? row->metavar : "");
	if (row->default_text && !row->hide_default)
		snprintf(text, sizeof text, "%s (default %s)", row->help,
		         row->default_text);
	else
		snprintf(text, sizeof text, "%s", row->help);
	/* A long name takes its own line; the text starts on the next. */
	if (n + 1 >= HELP_INDENT) {
		fprintf(to, "%s\n%*s", head, HELP_INDENT, "");
	} else {
		fprintf(to, "%-*s", HELP_INDENT, head);
	}
	wrap(to, text, HELP_INDENT);
}

void
settings_print_help(const struct settings_run *run, FILE *to)
{
	const char *section = NULL;
	size_t i;

	for (i = 0; i < run->count; i++) {
		const struct setting *row = &run->rows[i];

		if (!(row->scopes & run->scope))
			continue;
		if (!section || strcmp(section, row->section)) {
			fprintf(to, "%s%s:\n", section ? "\n" : "",
			        row->section);
			section = row->section;
		}
		print_row(to, row);
	}
}
