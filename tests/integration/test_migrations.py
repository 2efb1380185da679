"""Opening a database (README: Storage): an older schema is migrated on open
and keeps its data; a newer schema, or a file that is not an SQLite
database, is refused with exit 1 and left untouched; a new database gets
an epoch of its own, which it keeps when reopened."""

import hashlib
import os
import random
import re
import sqlite3

from harness import BASE, Client, Server, check, check_same_snapshot, check_ticks, gen_ticks, \
	history, ingest, make_db, run_cli, snapshots


def file_sha(path):
	with open(path, "rb") as f:
		return hashlib.sha256(f.read()).hexdigest()


async def test_newer_schema_db_refused_exit_1_untouched():
	maker = await make_db()
	db = maker.db
	con = sqlite3.connect(db)
	ours = con.execute("pragma user_version").fetchone()[0]
	check(isinstance(ours, int) and ours >= 1, "the server left user_version %r; want >= 1" % ours)
	con.execute("pragma user_version = 999")
	con.commit()
	con.close()
	before = file_sha(db)
	argv = Server(feed="none", db=db, name="refuser").argv()
	rc, out, err = await run_cli(argv[1:], timeout=10)
	check(rc == 1, "serve on a schema-999 db: exit %s, want 1 (stderr %r)" % (rc, err[-300:]))
	check(re.search(r"\b999\b", err) and re.search(r"\b%d\b" % ours, err.replace("999", "")),
	      "stderr does not name both versions (999 and %d): %r" % (ours, err[-300:]))
	check(file_sha(db) == before, "serve changed the schema-999 database file")
	rc, out, err2 = await run_cli(["export", "--db", db], timeout=10)
	check(rc == 1, "export on a schema-999 db: exit %s, want 1 (stderr %r)" % (rc, err2[-300:]))
	check(file_sha(db) == before, "export changed the schema-999 database file")
	return err.strip().splitlines()[-1][:140] if err.strip() else ""


async def test_not_a_database_refused_exit_1_untouched():
	holder = Server(feed="none", name="refuser")
	db = os.path.join(holder.tmp, "notes.db")
	with open(db, "w") as f:
		line = "this is a text file, not a SQLite database\n"
		f.write((line * (4096 // len(line) + 1))[:4096])
	before = file_sha(db)
	holder.db = db
	rc, out, err = await run_cli(holder.argv()[1:], timeout=10)
	check(rc == 1, "serve on a text file: exit %s, want 1 (stderr %r)" % (rc, err[-300:]))
	check(db in err or "database" in err.lower(),
	      "stderr names neither the file nor says it is not a database: %r" % err[-300:])
	check(file_sha(db) == before and os.path.getsize(db) == 4096, "serve changed the text file")
	rc, out, err2 = await run_cli(["export", "--db", db], timeout=10)
	check(rc == 1, "export on a text file: exit %s, want 1 (stderr %r)" % (rc, err2[-300:]))
	check(file_sha(db) == before, "export changed the text file")
	return err.strip().splitlines()[-1][:140] if err.strip() else ""


async def test_older_schema_db_is_migrated_on_open_keeping_data():
	# A database as a build that knew only 001_init left it: no views of
	# 002, user_version 1. Opening it runs 002 and keeps epoch, seqs, state.
	srv = await Server(feed="stdin", name="old-build").start()
	ticks = gen_ticks(random.Random(3), ["AAPL", "MSFT"], 60, BASE)
	c = await ingest(srv, ticks)
	epoch = c.epoch
	_, before = await snapshots(srv, ["AAPL", "MSFT"])
	check(await srv.stop() == 0, "SIGTERM exit code")
	con = sqlite3.connect(srv.db)
	latest = con.execute("pragma user_version").fetchone()[0]
	views = [r[0] for r in con.execute("select name from sqlite_master where type='view'")]
	check(latest >= 2 and views, "test premise: a db of version >= 2 with views (have %s, %s)"
	      % (latest, views))
	for v in views:
		con.execute('drop view "%s"' % v)
	# ... and no table or column of a later migration (003_gaps,
	# 004_seq_reservations, 005_imports, 006_sessions).
	con.execute("drop table if exists gaps")
	con.execute("drop table if exists reservations")
	con.execute("drop table if exists imports")  # 005_imports
	for col in ("prev_close", "prev_close_seq", "session"):  # 006_sessions
		con.execute("alter table state drop column %s" % col)
	con.execute("pragma user_version = 1")
	con.commit()
	con.close()
	srv2 = await Server(feed="none", db=srv.db, name="new-build").start()
	c2 = await Client.connect(srv2)
	check(c2.epoch == epoch, "epoch after migration %r, want %r" % (c2.epoch, epoch))
	_, after = await snapshots(srv2, ["AAPL", "MSFT"], name="snapper-2")
	for s in before:
		check_same_snapshot(after[s], before[s], "%s after migrating from version 1" % s)
	r = await history(c2, symbol="AAPL", limit=1000)
	check_ticks(r.get("ticks"), [t for t in ticks if t["symbol"] == "AAPL"], 1, "AAPL history after migration")
	con = sqlite3.connect(srv.db)
	try:
		v2 = con.execute("pragma user_version").fetchone()[0]
		views2 = sorted(r[0] for r in con.execute("select name from sqlite_master where type='view'"))
	finally:
		con.close()
	check(v2 == latest and views2 == sorted(views), "after opening a version-1 db: user_version %s, "
	      "views %s; want %s and %s" % (v2, views2, latest, sorted(views)))


async def test_new_database_gets_new_epoch():
	a = await Server(feed="none", name="db-a").start()
	b = await Server(feed="none", name="db-b").start()
	ca, cb = await Client.connect(a), await Client.connect(b)
	check(ca.epoch and cb.epoch and ca.epoch != cb.epoch,
	      "two new databases share the epoch %r / %r" % (ca.epoch, cb.epoch))
	check(await a.stop() == 0, "SIGTERM exit code")
	a2 = await Server(feed="none", db=a.db, name="db-a-again").start()
	c2 = await Client.connect(a2)
	check(c2.epoch == ca.epoch, "epoch of a reopened empty db %r, want %r" % (c2.epoch, ca.epoch))
