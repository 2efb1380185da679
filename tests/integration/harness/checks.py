"""Assertions every test uses: check(), assert_fields() and summary(), the
short JSON form of a message that failure messages quote."""

import decimal
import json

Decimal = decimal.Decimal


def check(cond, msg):
	if not cond:
		raise AssertionError(msg)


def summary(m, limit=160):
	"""m as JSON, cut to `limit` characters."""
	s = json.dumps(m, default=str)
	return s if len(s) <= limit else s[:limit] + "…"


def assert_fields(got, want, who=""):
	"""Every field of want is in got with the same (decimal) value."""
	bad = []
	for k, v in want.items():
		if k not in got:
			bad.append("%s missing" % k)
		elif Decimal(str(got[k])) != Decimal(str(v)):
			bad.append("%s=%s, want %s" % (k, got[k], v))
	if bad:
		raise AssertionError("%s%s (have %s)" % (who and who + ": ", "; ".join(bad),
							 summary(got, 300)))
