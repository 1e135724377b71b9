/* The SQLite state store: schema migrations, cached prepared statements, and the mapping between
 * the engine's structs and rows. Every value goes through a bound parameter. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "util/xmalloc.h"

/* Version 1. STRICT tables: a value of the wrong type is an error, not a silent conversion.
 * services' state columns are NULL until the first store_save_state. uint64 values (ids, hash,
 * proc_start) are stored as their int64 bit pattern. */
static const char MIG_1[] =
    "CREATE TABLE services (\n"
    "  name TEXT PRIMARY KEY NOT NULL,\n"
    "  target_rev INTEGER, stable_rev INTEGER, latest_rev INTEGER, replicas INTEGER,\n"
    "  next_inst_id INTEGER, next_rollout_id INTEGER,\n"
    "  rollout_id INTEGER,\n"
    "  verdict TEXT, verdict_reason TEXT,\n"
    "  spec_yaml TEXT,\n"
    "  updated_at INTEGER\n"
    ") STRICT;\n"
    "CREATE TABLE revisions (\n"
    "  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,\n"
    "  rev INTEGER NOT NULL,\n"
    "  hash INTEGER NOT NULL,\n"
    "  version TEXT,\n"
    "  spec_yaml TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (service, rev)\n"
    ") STRICT;\n"
    "CREATE INDEX revisions_by_hash ON revisions(service, hash);\n"
    "CREATE TABLE rollouts (\n"
    "  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,\n"
    "  id INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL, state TEXT NOT NULL,\n"
    "  from_rev INTEGER NOT NULL, to_rev INTEGER NOT NULL, rollback_rev INTEGER NOT NULL,\n"
    "  batch INTEGER NOT NULL, fast INTEGER NOT NULL, failures INTEGER NOT NULL, hold INTEGER NOT NULL,\n"
    "  pause TEXT NOT NULL, pause_until INTEGER NOT NULL, paused_at INTEGER NOT NULL,\n"
    "  progress_at INTEGER NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL,\n"
    "  watch_until INTEGER NOT NULL,\n"
    "  reason TEXT NOT NULL,\n"
    "  PRIMARY KEY (service, id)\n"
    ") STRICT;\n"
    "CREATE TABLE instances (\n"
    "  service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,\n"
    "  id INTEGER NOT NULL,\n"
    "  slot INTEGER NOT NULL,\n" /* index in engine_state.inst, so a load gives the same order */
    "  revision INTEGER NOT NULL, state TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL, healthy_at INTEGER NOT NULL, unhealthy_at INTEGER NOT NULL,\n"
    "  changed_at INTEGER NOT NULL,\n"
    "  port INTEGER NOT NULL, cause TEXT NOT NULL,\n"
    "  pid INTEGER, proc_start INTEGER, host TEXT,\n"
    "  PRIMARY KEY (service, id)\n"
    ") STRICT;\n"
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  service TEXT,\n"
    "  ts INTEGER NOT NULL, kind TEXT NOT NULL, inst_id INTEGER NOT NULL, text TEXT NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX events_by_service ON events(service, id);\n"
    "PRAGMA user_version = 1;\n";

/* Version 2: zones (strategy.zones): each instance's zone, the rollout's zone step. */
static const char MIG_2[] = "ALTER TABLE instances ADD COLUMN zone TEXT NOT NULL DEFAULT '';\n"
			    "ALTER TABLE rollouts ADD COLUMN zone_step INTEGER NOT NULL DEFAULT 0;\n"
			    "PRAGMA user_version = 2;\n";

/* Version 3: crash-loop backoff (core/backoff.h): each instance's restart count, when its start
 * (or its replacement's) is due, and whether a replacement has taken them over yet. */
static const char MIG_3[] = "ALTER TABLE instances ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;\n"
			    "ALTER TABLE instances ADD COLUMN start_at INTEGER NOT NULL DEFAULT 0;\n"
			    "ALTER TABLE instances ADD COLUMN owes_restart INTEGER NOT NULL DEFAULT 0;\n"
			    "PRAGMA user_version = 3;\n";

/* Version 4: what a rollout changed the replicas from and to (a scale's history line). */
static const char MIG_4[] = "ALTER TABLE rollouts ADD COLUMN from_replicas INTEGER NOT NULL DEFAULT 0;\n"
			    "ALTER TABLE rollouts ADD COLUMN to_replicas INTEGER NOT NULL DEFAULT 0;\n"
			    "PRAGMA user_version = 4;\n";

static const char *const MIGRATIONS[] = {MIG_1, MIG_2, MIG_3, MIG_4};
_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == STORE_SCHEMA_VERSION,
	       "one migration per schema version");

/* Every statement the store runs, prepared once on first use and kept in struct store. */
enum sid {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_SERVICE_ENSURE,
	S_SERVICE_SAVE,
	S_SERVICE_LOAD,
	S_SERVICE_SET_SPEC,
	S_SERVICE_GET_SPEC,
	S_SERVICE_LIST,
	S_ROLLOUT_SAVE,
	S_ROLLOUT_LOAD,
	S_ROLLOUT_LIST,
	S_INST_SAVE,
	S_INST_IDS,
	S_INST_DELETE,
	S_INST_LOAD,
	S_PROC_SET,
	S_PROC_GET,
	S_REV_PUT,
	S_REV_FIND,
	S_REV_GET,
	S_REV_LIST,
	S_EVENT_ADD,
	S_EVENTS_ALL,
	S_EVENTS_SERVICE,
	S_EVENTS_PRUNE,
	S_EVENTS_PRUNE_SERVICE,
	S__COUNT
};

#define RO_COLS                                                                                              \
	"id, kind, state, from_rev, to_rev, rollback_rev, batch, fast, failures, hold, pause, "              \
	"pause_until, paused_at, progress_at, started_at, ended_at, watch_until, reason, zone_step, "       \
	"from_replicas, to_replicas"

static const char *const SQL[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT store_op",
    [S_RELEASE] = "RELEASE store_op",
    [S_ROLLBACK_TO] = "ROLLBACK TO store_op",
    [S_SERVICE_ENSURE] = "INSERT INTO services(name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
    [S_SERVICE_SAVE] =
	"INSERT INTO services(name, target_rev, stable_rev, latest_rev, replicas, next_inst_id,"
	" next_rollout_id, rollout_id, verdict, verdict_reason, updated_at)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
	" ON CONFLICT(name) DO UPDATE SET target_rev = excluded.target_rev,"
	" stable_rev = excluded.stable_rev, latest_rev = excluded.latest_rev,"
	" replicas = excluded.replicas, next_inst_id = excluded.next_inst_id,"
	" next_rollout_id = excluded.next_rollout_id, rollout_id = excluded.rollout_id,"
	" verdict = excluded.verdict, verdict_reason = excluded.verdict_reason,"
	" updated_at = excluded.updated_at",
    [S_SERVICE_LOAD] = "SELECT target_rev, stable_rev, latest_rev, replicas, next_inst_id, next_rollout_id,"
		       " rollout_id, verdict, verdict_reason FROM services WHERE name = ?1",
    [S_SERVICE_SET_SPEC] = "INSERT INTO services(name, spec_yaml) VALUES (?1, ?2)"
			   " ON CONFLICT(name) DO UPDATE SET spec_yaml = excluded.spec_yaml",
    [S_SERVICE_GET_SPEC] = "SELECT spec_yaml FROM services WHERE name = ?1",
    [S_SERVICE_LIST] = "SELECT name FROM services ORDER BY name",
    [S_ROLLOUT_SAVE] =
	"INSERT INTO rollouts(service, " RO_COLS ")"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,"
	" ?21, ?22)"
	" ON CONFLICT(service, id) DO UPDATE SET kind = excluded.kind, state = excluded.state,"
	" from_rev = excluded.from_rev, to_rev = excluded.to_rev, rollback_rev = excluded.rollback_rev,"
	" batch = excluded.batch, fast = excluded.fast, failures = excluded.failures,"
	" hold = excluded.hold, pause = excluded.pause, pause_until = excluded.pause_until,"
	" paused_at = excluded.paused_at, progress_at = excluded.progress_at,"
	" started_at = excluded.started_at, ended_at = excluded.ended_at,"
	" watch_until = excluded.watch_until, reason = excluded.reason, zone_step = excluded.zone_step,"
	" from_replicas = excluded.from_replicas, to_replicas = excluded.to_replicas",
    [S_ROLLOUT_LOAD] = "SELECT " RO_COLS " FROM rollouts WHERE service = ?1 AND id = ?2",
    [S_ROLLOUT_LIST] = "SELECT " RO_COLS " FROM rollouts WHERE service = ?1 ORDER BY id DESC",
    [S_INST_SAVE] =
	"INSERT INTO instances(service, id, slot, revision, state, created_at, healthy_at,"
	" unhealthy_at, changed_at, port, cause, zone, restarts, start_at, owes_restart)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
	" ON CONFLICT(service, id) DO UPDATE SET slot = excluded.slot, revision = excluded.revision,"
	" state = excluded.state, created_at = excluded.created_at, healthy_at = excluded.healthy_at,"
	" unhealthy_at = excluded.unhealthy_at, changed_at = excluded.changed_at,"
	" port = excluded.port, cause = excluded.cause, zone = excluded.zone, restarts = excluded.restarts,"
	" start_at = excluded.start_at, owes_restart = excluded.owes_restart",
    [S_INST_IDS] = "SELECT id FROM instances WHERE service = ?1",
    [S_INST_DELETE] = "DELETE FROM instances WHERE service = ?1 AND id = ?2",
    [S_INST_LOAD] = "SELECT id, revision, state, created_at, healthy_at, unhealthy_at, changed_at, port,"
		    " cause, zone, restarts, start_at, owes_restart FROM instances WHERE service = ?1 ORDER BY slot",
    [S_PROC_SET] = "UPDATE instances SET pid = ?3, proc_start = ?4, host = ?5 WHERE service = ?1 AND id = ?2",
    [S_PROC_GET] = "SELECT pid, proc_start, host FROM instances WHERE service = ?1 AND id = ?2",
    [S_REV_PUT] = "INSERT INTO revisions(service, rev, hash, version, spec_yaml, created_at)"
		  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_REV_FIND] = "SELECT rev FROM revisions WHERE service = ?1 AND hash = ?2 ORDER BY rev DESC LIMIT 1",
    [S_REV_GET] = "SELECT spec_yaml FROM revisions WHERE service = ?1 AND rev = ?2",
    [S_REV_LIST] = "SELECT rev, hash, version, created_at FROM revisions WHERE service = ?1 ORDER BY rev",
    [S_EVENT_ADD] = "INSERT INTO events(service, ts, kind, inst_id, text) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_EVENTS_ALL] = "SELECT id, service, ts, kind, inst_id, text FROM events WHERE id > ?1"
		     " ORDER BY id LIMIT ?2",
    [S_EVENTS_SERVICE] = "SELECT id, service, ts, kind, inst_id, text FROM events"
			 " WHERE service = ?3 AND id > ?1 ORDER BY id LIMIT ?2",
    [S_EVENTS_PRUNE_SERVICE] = "DELETE FROM events WHERE service = ?1 AND id <= (SELECT id FROM events"
			       " WHERE service = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    [S_EVENTS_PRUNE] = "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
		       " (PARTITION BY service ORDER BY id DESC) AS rn FROM events) WHERE rn > ?1)",
};

struct store {
	sqlite3 *db;
	char *path;
	bool in_tx; /* store_begin was called and not yet committed or rolled back */
	sqlite3_stmt *stmt[S__COUNT];
	char err[512];
};

/* Names of the two enums engine.h gives no names for; stored as text like the others. */
static const char *const VERDICT_NAMES[] = {"none", "pass", "fail", "inconclusive"};
static const char *const PAUSE_NAMES[] = {"none", "user", "canary", "timed", "analysis", "analysis_zone"};

static int name_parse(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

/* Records SQLite's message for rc and returns rc as a negative code (see store.h). */
static int sql_fail(struct store *s, int rc)
{
	const char *msg = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	int sys = s->db != NULL ? sqlite3_system_errno(s->db) : 0;
	snprintf(s->err, sizeof s->err, "%s: %s", s->path, msg);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : -EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_ECORRUPT;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			return -EEXIST;
		return STORE_ESQL;
	default:
		return STORE_ESQL;
	}
}

/* Records a message of our own and returns code. */
static int fail(struct store *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct store *s, int code, const char *fmt, ...)
{
	int k = snprintf(s->err, sizeof s->err, "%s: ", s->path);
	if (k < 0 || (size_t)k >= sizeof s->err)
		k = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err + k, sizeof s->err - (size_t)k, fmt, ap);
	va_end(ap);
	return code;
}

/* The cached statement id, prepared on first use, reset and unbound: ready to bind. */
static int prep(struct store *s, enum sid id, sqlite3_stmt **out)
{
	if (s->stmt[id] == NULL) {
		int rc =
		    sqlite3_prepare_v3(s->db, SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
		if (rc != SQLITE_OK)
			return sql_fail(s, rc);
	}
	*out = s->stmt[id];
	return 0;
}

/* Leaves a statement reusable and drops its bindings (they may point into caller memory). */
static void done(sqlite3_stmt *q)
{
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
}

/* Binding helpers: return the sqlite code, checked once by bind_check. */
static int b_text(sqlite3_stmt *q, int i, const char *v)
{
	return v != NULL ? sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(q, i);
}

/* A fixed char array of the engine, which may be full without a terminator. */
static int b_buf(sqlite3_stmt *q, int i, const char *v, size_t cap)
{
	return sqlite3_bind_text(q, i, v, (int)strnlen(v, cap), SQLITE_TRANSIENT);
}

static int b_i64(sqlite3_stmt *q, int i, int64_t v) { return sqlite3_bind_int64(q, i, v); }

static int b_u64(sqlite3_stmt *q, int i, uint64_t v) { return sqlite3_bind_int64(q, i, (int64_t)v); }

/* Steps a statement that returns no rows and resets it. */
static int run(struct store *s, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);
	int ret = rc == SQLITE_DONE ? 0 : sql_fail(s, rc);
	done(q);
	return ret;
}

static int run_id(struct store *s, enum sid id)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, id, &q);
	return rc < 0 ? rc : run(s, q);
}

/* Steps once: 1 for a row, 0 for the end, or a negative code (the statement is then reset). */
static int next_row(struct store *s, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	rc = sql_fail(s, rc);
	done(q);
	return rc;
}

/* The statement's bind calls were OR-ed; any failure is reported with the db's message. */
static int bind_check(struct store *s, sqlite3_stmt *q, int rc)
{
	if (rc == SQLITE_OK)
		return 0;
	rc = sql_fail(s, sqlite3_errcode(s->db));
	done(q);
	return rc;
}

static char *col_strdup(sqlite3_stmt *q, int i)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* Copies a text column into a fixed array, truncating. */
static void col_buf(sqlite3_stmt *q, int i, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* Write scope of one public function: alone it is a transaction of its own (BEGIN IMMEDIATE);
 * inside the caller's transaction it is a savepoint, so a failure undoes only its own writes. */
static int wr_enter(struct store *s, bool *own)
{
	*own = sqlite3_get_autocommit(s->db) != 0;
	return run_id(s, *own ? S_BEGIN : S_SAVEPOINT);
}

/* Ends the scope opened by wr_enter: commits or releases on rc == 0, else undoes. Returns rc or
 * the commit's error. The message of the first error is kept. */
static int wr_leave(struct store *s, bool own, int rc)
{
	if (own) {
		if (rc == 0)
			rc = run_id(s, S_COMMIT);
		/* Some errors (I/O, full, busy on commit) end the transaction by themselves. */
		if (rc < 0 && !sqlite3_get_autocommit(s->db)) {
			char keep[sizeof s->err];
			memcpy(keep, s->err, sizeof keep);
			run_id(s, S_ROLLBACK);
			memcpy(s->err, keep, sizeof keep);
		}
		return rc;
	}
	if (rc < 0 && !sqlite3_get_autocommit(s->db)) {
		char keep[sizeof s->err];
		memcpy(keep, s->err, sizeof keep);
		run_id(s, S_ROLLBACK_TO);
		run_id(s, S_RELEASE);
		memcpy(s->err, keep, sizeof keep);
		return rc;
	}
	if (rc < 0)
		return rc;
	return run_id(s, S_RELEASE);
}

/* Read scope: several SELECTs that must see one snapshot. Alone, a deferred BEGIN (a WAL reader
 * never blocks nor is blocked); inside a transaction, nothing. */
static int rd_enter(struct store *s, bool *own)
{
	*own = sqlite3_get_autocommit(s->db) != 0;
	return *own ? run_id(s, S_BEGIN_READ) : 0;
}

static int rd_leave(struct store *s, bool own, int rc)
{
	if (own && !sqlite3_get_autocommit(s->db)) {
		int rc2 = run_id(s, rc == 0 ? S_COMMIT : S_ROLLBACK);
		if (rc == 0)
			rc = rc2;
	}
	return rc;
}

/* Runs one pragma that returns at most one row; *text (may be NULL) gets a copy of its value. */
static int pragma(struct store *s, const char *sql, char *text, size_t cap)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(s, rc);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && text != NULL)
		col_buf(q, 0, text, cap);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_fail(s, rc);
	sqlite3_finalize(q);
	return rc;
}

static int user_version(struct store *s, int *v)
{
	char buf[32];
	int rc = pragma(s, "PRAGMA user_version", buf, sizeof buf);
	if (rc == 0)
		*v = atoi(buf);
	return rc;
}

/* Applies migrations past the file's user_version, one transaction each. The version is read
 * under the write lock, so two processes opening a new file do not both migrate. */
static int migrate(struct store *s, const char *const *mig, size_t n_mig)
{
	int cur = 0;
	int rc0 = user_version(s, &cur);
	if (rc0 < 0)
		return rc0;
	if (cur >= 0 && (size_t)cur == n_mig)
		return 0; /* the common case takes no write lock */
	for (;;) {
		int rc = run_id(s, S_BEGIN), v = 0;
		if (rc < 0)
			return rc;
		rc = user_version(s, &v);
		if (rc == 0 && v < 0)
			rc = fail(s, STORE_ECORRUPT, "schema version %d is not valid", v);
		if (rc == 0 && (size_t)v > n_mig)
			rc = fail(s, STORE_ESCHEMA,
				  "schema version %d is newer than this rollout's (%zu): upgrade rollout", v,
				  n_mig);
		if (rc == 0 && (size_t)v == n_mig)
			return wr_leave(s, true, 0);
		if (rc == 0) {
			char *msg = NULL;
			int erc = sqlite3_exec(s->db, mig[v], NULL, NULL, &msg);
			if (erc != SQLITE_OK) {
				rc = sql_fail(s, erc);
				fail(s, rc, "migration %d: %s", v + 1,
				     msg != NULL ? msg : sqlite3_errstr(erc));
			}
			sqlite3_free(msg);
		}
		int after = 0;
		if (rc == 0)
			rc = user_version(s, &after);
		if (rc == 0 && after != v + 1)
			rc = fail(s, STORE_ESQL, "migration %d did not set user_version to %d", v + 1, v + 1);
		rc = wr_leave(s, true, rc);
		if (rc < 0)
			return rc;
	}
}

/* The database file and its -wal and -shm are the daemon's alone (they hold every spec): a new
 * file is created here 0600 before SQLite opens it (SQLite would make it 0644, and the -wal and
 * -shm it makes copy the file's mode); existing ones open to others are narrowed to 0600. Only
 * O_EXCL creation opens a descriptor: closing one on a file another connection of this process
 * has open would drop that connection's POSIX locks. 0, or a negative errno with the message. */
static int own_files(struct store *s)
{
	int fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EEXIST)
		return fail(s, -errno, "cannot create: %s", strerror(errno));
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		char *p = xasprintf("%s%s", s->path, suffix[i]);
		struct stat st;
		int r = 0;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0)
			r = chmod(p, st.st_mode & 0700);
		if (r < 0 && errno != EROFS && errno != EPERM)
			r = fail(s, -errno, "cannot make %s private (chmod 0600): %s", p, strerror(errno));
		else
			r = 0;
		free(p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Incremental auto_vacuum, so pruned events give their pages back (release_pages). A new file
 * gets it before its first table (store_open sets the pragma first); an older file is converted
 * once with a VACUUM. Best effort: a file that cannot be converted now (another connection
 * reading, no room for the copy) works as before and is tried again at the next open. */
static void vacuum_mode(struct store *s)
{
	char mode[16] = "";
	if (pragma(s, "PRAGMA auto_vacuum", mode, sizeof mode) < 0 || atoi(mode) == 2)
		return;
	if (sqlite3_exec(s->db, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM", NULL, NULL, NULL) != SQLITE_OK)
		s->err[0] = '\0';
}

int store_open_migrations(const char *path, const char *const *mig, size_t n_mig, struct store **out)
{
	if (path == NULL) {
		*out = NULL;
		return -EINVAL;
	}
	struct store *s = xcalloc(1, sizeof *s);
	*out = s;
	s->path = xstrdup(path);
	int rc = own_files(s);
	if (rc < 0)
		return rc;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		return s->db != NULL ? sql_fail(s, rc)
				     : fail(s, -ENOMEM, "cannot allocate a database handle");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* Keep -wal (truncated) and -shm on close: opening again then needs no new disk space, so a
	 * daemon restarted on a full disk can still read its state. */
	int persist = 1;
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	char mode[16] = "";
	/* Before the first table (a new file) auto_vacuum takes without a VACUUM; on a file with a
	 * schema, setting it would wait for the write lock, so it is not even tried there. */
	int ver = 0;
	rc = user_version(s, &ver);
	if (rc == 0 && ver == 0)
		rc = pragma(s, "PRAGMA auto_vacuum = INCREMENTAL", NULL, 0);
	if (rc == 0)
		rc = pragma(s, "PRAGMA journal_mode = WAL", mode, sizeof mode);
	if (rc == 0 && strcmp(mode, "wal") != 0)
		rc = fail(s, STORE_ESQL, "cannot use WAL mode (journal_mode is %s)", mode);
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %d", STORE_WAL_AUTOCHECKPOINT_PAGES);
	if (rc == 0)
		rc = pragma(s, sql, NULL, 0);
	snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %d", STORE_WAL_SIZE_LIMIT);
	if (rc == 0)
		rc = pragma(s, sql, NULL, 0);
	if (rc == 0)
		rc = pragma(s, "PRAGMA synchronous = FULL", NULL, 0);
	if (rc == 0)
		rc = pragma(s, "PRAGMA foreign_keys = ON", NULL, 0);
	if (rc == 0)
		rc = migrate(s, mig, n_mig);
	if (rc == 0)
		vacuum_mode(s);
	return rc;
}

int store_open(const char *path, struct store **out)
{
	return store_open_migrations(path, MIGRATIONS, STORE_SCHEMA_VERSION, out);
}

void store_free(struct store *s)
{
	if (s == NULL)
		return;
	if (s->db != NULL && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < S__COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

const char *store_errmsg(const struct store *s) { return s != NULL ? s->err : "no store"; }

void store_set_busy_timeout(struct store *s, int ms) { sqlite3_busy_timeout(s->db, ms); }

int store_checkpoint(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return fail(s, -EALREADY, "checkpoint: a transaction is open");
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(s, rc);
}

int store_begin(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return fail(s, -EALREADY, "a transaction is already open");
	return run_id(s, S_BEGIN);
}

int store_commit(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return fail(s, -EINVAL, "no transaction to commit");
	/* A failed COMMIT (busy) may leave the transaction open: the caller retries or rolls back. */
	return run_id(s, S_COMMIT);
}

int store_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return 0;
	return run_id(s, S_ROLLBACK);
}

static int ensure_service(struct store *s, const char *service)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_SERVICE_ENSURE, &q);
	if (rc < 0)
		return rc;
	rc = bind_check(s, q, b_text(q, 1, service));
	return rc < 0 ? rc : run(s, q);
}

static bool bad_name(const char *service) { return service == NULL || service[0] == '\0'; }

/* Whether name (from an engine_*_name function) parses back to v: the value is in range. */
static bool round_trips(const char *name, int (*parse)(const char *), int v)
{
	return name != NULL && parse(name) == v;
}

static int save_rollout(struct store *s, const char *service, const struct engine_rollout *ro)
{
	const char *kind = engine_ro_kind_name(ro->kind);
	const char *state = engine_ro_state_name(ro->state);
	if (!round_trips(kind, engine_ro_kind_parse, (int)ro->kind) ||
	    !round_trips(state, engine_ro_state_parse, (int)ro->state) ||
	    (unsigned)ro->pause >= sizeof PAUSE_NAMES / sizeof PAUSE_NAMES[0])
		return fail(s, -EINVAL, "%s: rollout %llu: kind, state or pause out of range", service,
			    (unsigned long long)ro->id);
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_ROLLOUT_SAVE, &q);
	if (rc < 0)
		return rc;
	rc = b_text(q, 1, service) | b_u64(q, 2, ro->id) | b_text(q, 3, kind) | b_text(q, 4, state) |
	     b_i64(q, 5, ro->from_rev) | b_i64(q, 6, ro->to_rev) | b_i64(q, 7, ro->rollback_rev) |
	     b_i64(q, 8, ro->batch) | b_i64(q, 9, ro->fast) | b_i64(q, 10, ro->failures) |
	     b_i64(q, 11, ro->hold) | b_text(q, 12, PAUSE_NAMES[ro->pause]) | b_i64(q, 13, ro->pause_until) |
	     b_i64(q, 14, ro->paused_at) | b_i64(q, 15, ro->progress_at) | b_i64(q, 16, ro->started_at) |
	     b_i64(q, 17, ro->ended_at) | b_i64(q, 18, ro->watch_until) |
	     b_buf(q, 19, ro->reason, sizeof ro->reason) | b_i64(q, 20, ro->zone_step) |
	     b_i64(q, 21, ro->from_replicas) | b_i64(q, 22, ro->to_replicas);
	rc = bind_check(s, q, rc);
	return rc < 0 ? rc : run(s, q);
}

static int save_inst(struct store *s, const char *service, const struct engine_inst *in, size_t slot)
{
	const char *state = engine_inst_state_name(in->state);
	if (!round_trips(state, engine_inst_state_parse, (int)in->state))
		return fail(s, -EINVAL, "%s: instance %llu: state out of range", service,
			    (unsigned long long)in->id);
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_INST_SAVE, &q);
	if (rc < 0)
		return rc;
	rc = b_text(q, 1, service) | b_u64(q, 2, in->id) | b_i64(q, 3, (int64_t)slot) |
	     b_i64(q, 4, in->revision) | b_text(q, 5, state) | b_i64(q, 6, in->created_at) |
	     b_i64(q, 7, in->healthy_at) | b_i64(q, 8, in->unhealthy_at) | b_i64(q, 9, in->changed_at) |
	     b_i64(q, 10, in->port) | b_buf(q, 11, in->cause, sizeof in->cause) |
	     b_buf(q, 12, in->zone, sizeof in->zone) | b_i64(q, 13, in->restarts) | b_i64(q, 14, in->start_at) |
	     b_i64(q, 15, in->owes_restart);
	rc = bind_check(s, q, rc);
	return rc < 0 ? rc : run(s, q);
}

/* Deletes the instance rows of service whose id is not among st's instances. */
static int delete_gone(struct store *s, const char *service, const struct engine_state *st)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_INST_IDS, &q);
	if (rc < 0)
		return rc;
	rc = bind_check(s, q, b_text(q, 1, service));
	if (rc < 0)
		return rc;
	uint64_t *gone = NULL;
	size_t n = 0, cap = 0;
	while ((rc = next_row(s, q)) == 1) {
		uint64_t id = (uint64_t)sqlite3_column_int64(q, 0);
		bool kept = false;
		for (size_t i = 0; i < st->n && !kept; i++)
			kept = st->inst[i].id == id;
		if (!kept) {
			xgrow((void **)&gone, &cap, n + 1, sizeof *gone);
			gone[n++] = id;
		}
	}
	if (rc == 0)
		done(q);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = prep(s, S_INST_DELETE, &q);
		if (rc == 0)
			rc = bind_check(s, q, b_text(q, 1, service) | b_u64(q, 2, gone[i]));
		if (rc == 0)
			rc = run(s, q);
	}
	free(gone);
	return rc;
}

int store_save_state(struct store *s, const char *service, const struct engine_state *st, int64_t now)
{
	if (bad_name(service) || (unsigned)st->verdict >= sizeof VERDICT_NAMES / sizeof VERDICT_NAMES[0])
		return fail(s, -EINVAL, "save_state: bad service name or verdict");
	bool own;
	int rc = wr_enter(s, &own);
	if (rc < 0)
		return rc;
	sqlite3_stmt *q = NULL;
	rc = prep(s, S_SERVICE_SAVE, &q);
	if (rc == 0) {
		rc = b_text(q, 1, service) | b_i64(q, 2, st->target_rev) | b_i64(q, 3, st->stable_rev) |
		     b_i64(q, 4, st->latest_rev) | b_i64(q, 5, st->replicas) | b_u64(q, 6, st->next_inst_id) |
		     b_u64(q, 7, st->next_rollout_id) | b_u64(q, 8, st->ro.id) |
		     b_text(q, 9, VERDICT_NAMES[st->verdict]) |
		     b_buf(q, 10, st->verdict_reason, sizeof st->verdict_reason) | b_i64(q, 11, now);
		rc = bind_check(s, q, rc);
	}
	if (rc == 0)
		rc = run(s, q);
	if (rc == 0 && st->ro.id != 0)
		rc = save_rollout(s, service, &st->ro);
	/* The rollout a command ended (superseded by another) is recorded as it ended. */
	if (rc == 0 && st->prev.id != 0 && st->prev.id != st->ro.id)
		rc = save_rollout(s, service, &st->prev);
	if (rc == 0)
		rc = delete_gone(s, service, st);
	for (size_t i = 0; i < st->n && rc == 0; i++)
		rc = save_inst(s, service, &st->inst[i], i);
	return wr_leave(s, own, rc);
}

/* Fills ro from a row of RO_COLS. */
static int row_rollout(struct store *s, sqlite3_stmt *q, struct engine_rollout *ro)
{
	const char *kind = (const char *)sqlite3_column_text(q, 1);
	const char *state = (const char *)sqlite3_column_text(q, 2);
	const char *pause = (const char *)sqlite3_column_text(q, 10);
	int k = kind != NULL ? engine_ro_kind_parse(kind) : -1;
	int st = state != NULL ? engine_ro_state_parse(state) : -1;
	int p =
	    pause != NULL ? name_parse(PAUSE_NAMES, sizeof PAUSE_NAMES / sizeof PAUSE_NAMES[0], pause) : -1;
	if (k < 0 || st < 0 || p < 0)
		return fail(s, STORE_ECORRUPT, "rollout %lld: unknown kind, state or pause (%s, %s, %s)",
			    (long long)sqlite3_column_int64(q, 0), kind ? kind : "NULL",
			    state ? state : "NULL", pause ? pause : "NULL");
	memset(ro, 0, sizeof *ro);
	ro->id = (uint64_t)sqlite3_column_int64(q, 0);
	ro->kind = (enum engine_ro_kind)k;
	ro->state = (enum engine_ro_state)st;
	ro->from_rev = sqlite3_column_int(q, 3);
	ro->to_rev = sqlite3_column_int(q, 4);
	ro->rollback_rev = sqlite3_column_int(q, 5);
	ro->batch = sqlite3_column_int(q, 6);
	ro->fast = sqlite3_column_int(q, 7) != 0;
	ro->failures = sqlite3_column_int(q, 8);
	ro->hold = sqlite3_column_int(q, 9);
	ro->pause = (enum engine_pause_reason)p;
	ro->pause_until = sqlite3_column_int64(q, 11);
	ro->paused_at = sqlite3_column_int64(q, 12);
	ro->progress_at = sqlite3_column_int64(q, 13);
	ro->started_at = sqlite3_column_int64(q, 14);
	ro->ended_at = sqlite3_column_int64(q, 15);
	ro->watch_until = sqlite3_column_int64(q, 16);
	col_buf(q, 17, ro->reason, sizeof ro->reason);
	ro->zone_step = sqlite3_column_int(q, 18);
	ro->from_replicas = sqlite3_column_int(q, 19);
	ro->to_replicas = sqlite3_column_int(q, 20);
	return 0;
}

/* Reads the service row into *st (already reset); *ro_id gets the current rollout id. 1 when
 * the state was saved, 0 when the row exists but holds no state, -ENOENT, or an error. */
static int load_service(struct store *s, const char *service, struct engine_state *st, uint64_t *ro_id)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_SERVICE_LOAD, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service));
	if (rc == 0)
		rc = next_row(s, q);
	if (rc <= 0) {
		if (rc == 0)
			done(q);
		return rc == 0 ? -ENOENT : rc;
	}
	if (sqlite3_column_type(q, 0) == SQLITE_NULL) {
		done(q);
		return 0;
	}
	const char *verdict = (const char *)sqlite3_column_text(q, 7);
	int v = verdict != NULL
		    ? name_parse(VERDICT_NAMES, sizeof VERDICT_NAMES / sizeof VERDICT_NAMES[0], verdict)
		    : -1;
	if (v < 0) {
		rc = fail(s, STORE_ECORRUPT, "service %s: unknown verdict %s", service,
			  verdict ? verdict : "NULL");
		done(q);
		return rc;
	}
	/* The engine sizes its buffers by replicas: a value no spec can have is a corrupt row. */
	int64_t replicas = sqlite3_column_int64(q, 3);
	if (replicas < 0 || replicas > SPEC_REPLICAS_MAX) {
		rc = fail(s, STORE_ECORRUPT, "service %s: replicas %lld is out of range (0 to %d)", service,
			  (long long)replicas, SPEC_REPLICAS_MAX);
		done(q);
		return rc;
	}
	st->target_rev = sqlite3_column_int(q, 0);
	st->stable_rev = sqlite3_column_int(q, 1);
	st->latest_rev = sqlite3_column_int(q, 2);
	st->replicas = sqlite3_column_int(q, 3);
	st->next_inst_id = (uint64_t)sqlite3_column_int64(q, 4);
	st->next_rollout_id = (uint64_t)sqlite3_column_int64(q, 5);
	*ro_id = (uint64_t)sqlite3_column_int64(q, 6);
	st->verdict = (enum engine_verdict)v;
	col_buf(q, 8, st->verdict_reason, sizeof st->verdict_reason);
	done(q);
	return 1;
}

static int load_rollout(struct store *s, const char *service, uint64_t id, struct engine_rollout *ro)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_ROLLOUT_LOAD, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | b_u64(q, 2, id));
	if (rc == 0)
		rc = next_row(s, q);
	if (rc == 0)
		rc = fail(s, STORE_ECORRUPT, "service %s: current rollout %llu has no row", service,
			  (unsigned long long)id);
	else if (rc == 1)
		rc = row_rollout(s, q, ro);
	done(q);
	return rc;
}

static int load_insts(struct store *s, const char *service, struct engine_state *st)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_INST_LOAD, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service));
	if (rc < 0)
		return rc;
	while ((rc = next_row(s, q)) == 1) {
		const char *state = (const char *)sqlite3_column_text(q, 2);
		int is = state != NULL ? engine_inst_state_parse(state) : -1;
		if (is < 0) {
			rc = fail(s, STORE_ECORRUPT, "service %s: instance %lld: unknown state %s", service,
				  (long long)sqlite3_column_int64(q, 0), state ? state : "NULL");
			done(q);
			return rc;
		}
		xgrow((void **)&st->inst, &st->cap, st->n + 1, sizeof *st->inst);
		struct engine_inst *in = &st->inst[st->n++];
		memset(in, 0, sizeof *in);
		in->id = (uint64_t)sqlite3_column_int64(q, 0);
		in->revision = sqlite3_column_int(q, 1);
		in->state = (enum engine_inst_state)is;
		in->created_at = sqlite3_column_int64(q, 3);
		in->healthy_at = sqlite3_column_int64(q, 4);
		in->unhealthy_at = sqlite3_column_int64(q, 5);
		in->changed_at = sqlite3_column_int64(q, 6);
		in->port = sqlite3_column_int(q, 7);
		col_buf(q, 8, in->cause, sizeof in->cause);
		col_buf(q, 9, in->zone, sizeof in->zone);
		in->restarts = sqlite3_column_int(q, 10);
		in->start_at = sqlite3_column_int64(q, 11);
		in->owes_restart = sqlite3_column_int(q, 12) != 0;
	}
	if (rc == 0)
		done(q);
	return rc;
}

int store_load_state(struct store *s, const char *service, struct engine_state *st)
{
	if (bad_name(service))
		return fail(s, -EINVAL, "load_state: bad service name");
	bool own;
	int rc = rd_enter(s, &own);
	if (rc < 0)
		return rc;
	struct engine_state fresh;
	engine_state_init(&fresh);
	/* Keep the caller's instance buffer; the fresh one (if init allocated one) goes. */
	free(fresh.inst);
	fresh.inst = st->inst;
	fresh.cap = st->cap;
	fresh.n = 0;
	uint64_t ro_id = 0;
	rc = load_service(s, service, &fresh, &ro_id);
	if (rc == 1 && ro_id != 0)
		rc = load_rollout(s, service, ro_id, &fresh.ro);
	if (rc >= 0)
		rc = load_insts(s, service, &fresh);
	rc = rd_leave(s, own, rc);
	if (rc == -ENOENT) {
		/* st untouched, but it may own a grown buffer now. */
		st->inst = fresh.inst;
		st->cap = fresh.cap;
		return rc;
	}
	*st = fresh;
	return rc < 0 ? rc : 0;
}

int store_set_proc(struct store *s, const char *service, uint64_t inst_id, int pid, uint64_t proc_start,
		   const char *host)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_PROC_SET, &q);
	if (rc == 0)
		rc = bind_check(s, q,
				b_text(q, 1, service) | b_u64(q, 2, inst_id) | b_i64(q, 3, pid) |
				    b_u64(q, 4, proc_start) | b_text(q, 5, host));
	if (rc == 0)
		rc = run(s, q);
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = fail(s, -ENOENT, "%s: no instance %llu", service, (unsigned long long)inst_id);
	return rc;
}

/* Positions the PROC_GET statement on the instance's row: 0 (caller resets), or -ENOENT. */
static int proc_row(struct store *s, const char *service, uint64_t inst_id, sqlite3_stmt **out)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_PROC_GET, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | b_u64(q, 2, inst_id));
	if (rc == 0)
		rc = next_row(s, q);
	if (rc == 0) {
		done(q);
		return fail(s, -ENOENT, "%s: no instance %llu", service, (unsigned long long)inst_id);
	}
	*out = q;
	return rc < 0 ? rc : 0;
}

int store_get_proc(struct store *s, const char *service, uint64_t inst_id, int *pid, uint64_t *proc_start)
{
	sqlite3_stmt *q = NULL;
	int rc = proc_row(s, service, inst_id, &q);
	if (rc < 0)
		return rc;
	if (sqlite3_column_type(q, 0) == SQLITE_NULL) {
		rc = fail(s, -ENOENT, "%s: instance %llu has no process", service,
			  (unsigned long long)inst_id);
	} else {
		*pid = sqlite3_column_int(q, 0);
		*proc_start = (uint64_t)sqlite3_column_int64(q, 1);
	}
	done(q);
	return rc;
}

int store_get_proc_host(struct store *s, const char *service, uint64_t inst_id, char **host)
{
	sqlite3_stmt *q = NULL;
	int rc = proc_row(s, service, inst_id, &q);
	if (rc < 0)
		return rc;
	*host = col_strdup(q, 2);
	done(q);
	return 0;
}

int store_put_revision(struct store *s, const char *service, int rev, uint64_t hash, const char *version,
		       const char *spec_yaml, int64_t now)
{
	if (bad_name(service) || rev <= 0 || spec_yaml == NULL)
		return fail(s, -EINVAL, "put_revision: bad service name, revision or spec");
	bool own;
	int rc = wr_enter(s, &own);
	if (rc < 0)
		return rc;
	rc = ensure_service(s, service);
	sqlite3_stmt *q = NULL;
	if (rc == 0)
		rc = prep(s, S_REV_PUT, &q);
	if (rc == 0)
		rc = bind_check(s, q,
				b_text(q, 1, service) | b_i64(q, 2, rev) | b_u64(q, 3, hash) |
				    b_text(q, 4, version) | b_text(q, 5, spec_yaml) | b_i64(q, 6, now));
	if (rc == 0)
		rc = run(s, q);
	return wr_leave(s, own, rc);
}

int store_find_revision(struct store *s, const char *service, uint64_t hash, int *rev)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_REV_FIND, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | b_u64(q, 2, hash));
	if (rc == 0)
		rc = next_row(s, q);
	if (rc < 0)
		return rc;
	if (rc == 1)
		*rev = sqlite3_column_int(q, 0);
	done(q);
	if (rc == 0)
		return fail(s, -ENOENT, "service %s: no revision with hash %016llx", service,
			    (unsigned long long)hash);
	return 0;
}

/* Runs a statement bound to (?1 text, ?2 int) or (?1 text) and copies the first column of its
 * first row. -ENOENT when there is no row or the value is NULL. */
static int get_text(struct store *s, enum sid id, const char *service, const int *num, const char *what,
		    char **out)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, id, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | (num != NULL ? b_i64(q, 2, *num) : SQLITE_OK));
	if (rc == 0)
		rc = next_row(s, q);
	if (rc < 0)
		return rc;
	char *t = rc == 1 ? col_strdup(q, 0) : NULL;
	done(q);
	if (t == NULL)
		return fail(s, -ENOENT, "service %s: no %s", service, what);
	*out = t;
	return 0;
}

int store_get_revision(struct store *s, const char *service, int rev, char **spec_yaml)
{
	return get_text(s, S_REV_GET, service, &rev, "such revision", spec_yaml);
}

int store_set_service_spec(struct store *s, const char *service, const char *spec_yaml)
{
	if (bad_name(service) || spec_yaml == NULL)
		return fail(s, -EINVAL, "set_service_spec: bad service name or spec");
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_SERVICE_SET_SPEC, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | b_text(q, 2, spec_yaml));
	return rc < 0 ? rc : run(s, q);
}

int store_get_service_spec(struct store *s, const char *service, char **spec_yaml)
{
	return get_text(s, S_SERVICE_GET_SPEC, service, NULL, "spec", spec_yaml);
}

int store_list_services(struct store *s, char ***names, size_t *n)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_SERVICE_LIST, &q);
	if (rc < 0)
		return rc;
	char **v = NULL;
	size_t len = 0, cap = 0;
	while ((rc = next_row(s, q)) == 1) {
		xgrow((void **)&v, &cap, len + 1, sizeof *v);
		v[len++] = col_strdup(q, 0);
	}
	if (rc < 0) {
		store_names_free(v, len);
		return rc;
	}
	done(q);
	*names = v;
	*n = len;
	return 0;
}

void store_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int store_list_rollouts(struct store *s, const char *service, struct engine_rollout **v, size_t *n)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_ROLLOUT_LIST, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service));
	if (rc < 0)
		return rc;
	struct engine_rollout *a = NULL;
	size_t len = 0, cap = 0;
	while ((rc = next_row(s, q)) == 1) {
		xgrow((void **)&a, &cap, len + 1, sizeof *a);
		rc = row_rollout(s, q, &a[len]);
		if (rc < 0) {
			done(q);
			break;
		}
		len++;
	}
	if (rc < 0) {
		free(a);
		return rc;
	}
	done(q);
	*v = a;
	*n = len;
	return 0;
}

int store_list_revisions(struct store *s, const char *service, struct store_revision **v, size_t *n)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_REV_LIST, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service));
	if (rc < 0)
		return rc;
	struct store_revision *a = NULL;
	size_t len = 0, cap = 0;
	while ((rc = next_row(s, q)) == 1) {
		xgrow((void **)&a, &cap, len + 1, sizeof *a);
		a[len].rev = sqlite3_column_int(q, 0);
		a[len].hash = (uint64_t)sqlite3_column_int64(q, 1);
		a[len].version = col_strdup(q, 2);
		a[len].created_at = sqlite3_column_int64(q, 3);
		len++;
	}
	if (rc < 0) {
		store_revisions_free(a, len);
		return rc;
	}
	done(q);
	*v = a;
	*n = len;
	return 0;
}

void store_revisions_free(struct store_revision *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].version);
	free(v);
}

/* One event insert; text is bounded by len (an intent's fixed buffer) or NUL-terminated (-1). */
static int add_event(struct store *s, const char *service, int64_t ts, const char *kind, uint64_t inst_id,
		     const char *text, int len, int64_t *id_out)
{
	sqlite3_stmt *q = NULL;
	int rc = prep(s, S_EVENT_ADD, &q);
	if (rc == 0)
		rc = bind_check(s, q,
				b_text(q, 1, service) | b_i64(q, 2, ts) | b_text(q, 3, kind) |
				    b_u64(q, 4, inst_id) |
				    sqlite3_bind_text(q, 5, text, len, SQLITE_TRANSIENT));
	if (rc == 0)
		rc = run(s, q);
	if (rc == 0 && id_out != NULL)
		*id_out = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_add_event(struct store *s, const char *service, int64_t ts, const char *kind, uint64_t inst_id,
		    const char *text, int64_t *id_out)
{
	if (kind == NULL || text == NULL)
		return fail(s, -EINVAL, "add_event: kind and text are required");
	return add_event(s, service, ts, kind, inst_id, text, -1, id_out);
}

/* Gives the pages that deletes freed back to the file system (auto_vacuum is incremental, see
 * vacuum_mode): the file shrinks at the next checkpoint instead of keeping its largest size. */
static int release_pages(struct store *s)
{
	char *msg = NULL;
	int erc = sqlite3_exec(s->db, "PRAGMA incremental_vacuum", NULL, NULL, &msg);
	sqlite3_free(msg);
	return erc == SQLITE_OK ? 0 : sql_fail(s, erc);
}

int store_prune_events(struct store *s, size_t keep, size_t *deleted)
{
	if (deleted != NULL)
		*deleted = 0;
	if (keep == 0 || keep > INT64_MAX)
		return fail(s, -EINVAL, "prune_events: keep must be at least 1");
	bool own;
	int rc = wr_enter(s, &own);
	sqlite3_stmt *q = NULL;
	if (rc == 0)
		rc = prep(s, S_EVENTS_PRUNE, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_i64(q, 1, (int64_t)keep));
	if (rc == 0)
		rc = run(s, q);
	if (rc == 0 && deleted != NULL)
		*deleted = (size_t)sqlite3_changes(s->db);
	if (rc == 0 && sqlite3_changes(s->db) > 0)
		rc = release_pages(s);
	return wr_leave(s, own, rc);
}

int store_prune_service_events(struct store *s, const char *service, size_t keep, size_t *deleted)
{
	if (deleted != NULL)
		*deleted = 0;
	if (bad_name(service) || keep == 0 || keep > INT64_MAX)
		return fail(s, -EINVAL, "prune_service_events: bad service name, or keep is not at least 1");
	bool own;
	int rc = wr_enter(s, &own);
	sqlite3_stmt *q = NULL;
	if (rc == 0)
		rc = prep(s, S_EVENTS_PRUNE_SERVICE, &q);
	if (rc == 0)
		rc = bind_check(s, q, b_text(q, 1, service) | b_i64(q, 2, (int64_t)keep));
	if (rc == 0)
		rc = run(s, q);
	if (rc == 0 && deleted != NULL)
		*deleted = (size_t)sqlite3_changes(s->db);
	if (rc == 0 && sqlite3_changes(s->db) > 0)
		rc = release_pages(s);
	return wr_leave(s, own, rc);
}

int store_add_intent_events(struct store *s, const char *service, int64_t now, const struct engine_out *out)
{
	if (bad_name(service))
		return fail(s, -EINVAL, "add_intent_events: bad service name");
	bool own;
	int rc = wr_enter(s, &own);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < out->n && rc == 0; i++) {
		const struct engine_intent *in = &out->v[i];
		if (in->kind != INTENT_EVENT && in->kind != INTENT_ROLLOUT)
			continue;
		const char *kind = engine_event_name(in->event);
		if (kind == NULL || strcmp(kind, "?") == 0)
			rc = fail(s, -EINVAL, "intent %zu: event out of range", i);
		else
			rc = add_event(s, service, now, kind, in->inst_id, in->text,
				       (int)strnlen(in->text, sizeof in->text), NULL);
	}
	return wr_leave(s, own, rc);
}

/* One row of store_events, copied out before any callback runs. */
struct ev_row {
	int64_t id, ts;
	uint64_t inst_id;
	char *service, *kind, *text;
};

int store_events(struct store *s, const char *service, int64_t after_id, size_t limit, store_event_cb cb,
		 void *ctx)
{
	if (limit == 0 || limit > STORE_EVENTS_MAX)
		limit = STORE_EVENTS_MAX;
	sqlite3_stmt *q = NULL;
	int rc = prep(s, service != NULL ? S_EVENTS_SERVICE : S_EVENTS_ALL, &q);
	if (rc == 0)
		rc = bind_check(s, q,
				b_i64(q, 1, after_id) | b_i64(q, 2, (int64_t)limit) |
				    (service != NULL ? b_text(q, 3, service) : SQLITE_OK));
	if (rc < 0)
		return rc;
	struct ev_row *v = NULL;
	size_t n = 0, cap = 0;
	while ((rc = next_row(s, q)) == 1) {
		xgrow((void **)&v, &cap, n + 1, sizeof *v);
		v[n].id = sqlite3_column_int64(q, 0);
		v[n].service = col_strdup(q, 1);
		v[n].ts = sqlite3_column_int64(q, 2);
		v[n].kind = col_strdup(q, 3);
		v[n].inst_id = (uint64_t)sqlite3_column_int64(q, 4);
		v[n].text = col_strdup(q, 5);
		n++;
	}
	if (rc == 0)
		done(q);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cb(ctx, v[i].id, v[i].service, v[i].ts, v[i].kind, v[i].inst_id, v[i].text);
	for (size_t i = 0; i < n; i++) {
		free(v[i].service);
		free(v[i].kind);
		free(v[i].text);
	}
	free(v);
	return rc;
}
