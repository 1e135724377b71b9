/* The daemon's durable state: one SQLite database (DATA/state.db, WAL, synchronous=FULL) holding
 * services, revisions, rollouts, instances and events. docs/store.md describes tables and migrations. */
#ifndef ROLLOUT_STORE_STORE_H
#define ROLLOUT_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/engine.h"

/* Project error codes, in the negative-errno space (engine uses -1000..). Other SQLite errors are
 * mapped to errno values: busy/locked -EBUSY, I/O -EIO (or the OS errno), full -ENOSPC,
 * read-only/permission -EACCES, out of memory -ENOMEM, unique/primary key -EEXIST.
 * store_errmsg() always has the words. */
enum {
	STORE_ESQL = -1100,	/* any other SQLite error */
	STORE_ECORRUPT = -1101, /* not a database, corrupt, or a value this version cannot read */
	STORE_ESCHEMA = -1102,	/* the file's schema is newer than this binary's */
};

/* Schema version this binary writes (PRAGMA user_version after migrations). */
#define STORE_SCHEMA_VERSION 4
/* Busy timeout set at open, in milliseconds (the daemon lowers it: its loop must not wait). */
#define STORE_BUSY_TIMEOUT_MS 5000
/* WAL bounds set at open: a checkpoint runs when the WAL reaches this many pages, and a WAL
 * reset by a checkpoint is truncated to at most this many bytes. */
#define STORE_WAL_AUTOCHECKPOINT_PAGES 100
#define STORE_WAL_SIZE_LIMIT	       (1024 * 1024)
/* store_events returns at most this many rows per call. */
#define STORE_EVENTS_MAX 1000

struct store;

/* Opens or creates the database file at `path` (the daemon passes DATA/state.db), sets WAL,
 * synchronous=FULL, foreign keys, the busy timeout and the WAL bounds, and applies pending
 * migrations, each in its own transaction. A new file is created 0600 (its -wal and -shm take its
 * mode); an existing one readable by others is narrowed to 0600. The -wal and -shm files are kept
 * on close (persistent WAL), so a later open needs no new disk space. Returns 0 or a negative
 * code. Like sqlite3_open, *out is set even on failure (NULL only when path is NULL) so
 * store_errmsg(*out) can say why: the caller always calls store_free(*out). */
int store_open(const char *path, struct store **out);
/* Same with a given list of migrations (n_mig SQL scripts, script i takes the schema from
 * version i to i+1 and must end by setting PRAGMA user_version = i+1). For tests. */
int store_open_migrations(const char *path, const char *const *mig, size_t n_mig, struct store **out);
/* Rolls back an open transaction, finalizes statements, closes. store_free(NULL) is a no-op.
 * A store must not be used across fork() without exec (SQLite's locks are per process). */
void store_free(struct store *s);
/* The last error, "path: what" ("" when none). Valid until the next store call. */
const char *store_errmsg(const struct store *s);
/* Changes how long a write waits for another connection's lock before -EBUSY. */
void store_set_busy_timeout(struct store *s, int ms);
/* Copies every WAL frame into the database file and truncates the WAL to zero bytes (PRAGMA
 * wal_checkpoint(TRUNCATE)). -EBUSY when a reader or writer of another connection kept it from
 * finishing (nothing is lost: the next one finishes it), -EALREADY inside a transaction. */
int store_checkpoint(struct store *s);

/* Explicit transaction (BEGIN IMMEDIATE: takes the write lock now, waiting up to the busy
 * timeout). Every function below works inside one, or alone as its own transaction. A function
 * that fails inside a transaction has undone its own partial writes (a savepoint) and leaves the
 * transaction open; the caller decides. store_begin when one is open: -EALREADY. store_commit
 * with none: -EINVAL. store_rollback with none: 0. */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);

/* Saves the engine state of `service`: upserts the service row (updated_at = now), upserts the
 * current rollout row when st->ro.id != 0, and makes the instance rows exactly st->inst[0..n)
 * (rows of other ids are deleted; driver data of kept rows is kept). -EINVAL for a value out of
 * range. */
int store_save_state(struct store *s, const char *service, const struct engine_state *st, int64_t now);
/* The inverse. `st` must be valid (engine_state_init'ed, or loaded before): it is reset with
 * engine_state_init, its instance buffer reused and grown with xgrow; the caller still owns it
 * (engine_state_clear). A service row that exists but was never saved (only a spec or a
 * revision) loads as a fresh state. -ENOENT, st untouched, when there is no such service. */
int store_load_state(struct store *s, const char *service, struct engine_state *st);

/* Driver data of an instance row: pid, start time (from /proc, to tell a reused pid), host (NULL
 * for local). The row must exist (saved by store_save_state): else -ENOENT. */
int store_set_proc(struct store *s, const char *service, uint64_t inst_id, int pid, uint64_t proc_start,
		   const char *host);
/* -ENOENT when there is no such instance or no pid was set. */
int store_get_proc(struct store *s, const char *service, uint64_t inst_id, int *pid, uint64_t *proc_start);
/* *host is a new string (caller frees) or NULL when the row has none. -ENOENT: no such instance. */
int store_get_proc_host(struct store *s, const char *service, uint64_t inst_id, char **host);

/* Records revision `rev` (immutable: -EEXIST when (service, rev) exists). Creates the service
 * row if needed. version may be NULL. */
int store_put_revision(struct store *s, const char *service, int rev, uint64_t hash, const char *version,
		       const char *spec_yaml, int64_t now);
/* The highest revision of `service` whose template hash is `hash`; -ENOENT when none. */
int store_find_revision(struct store *s, const char *service, uint64_t hash, int *rev);
/* *spec_yaml: a new string, caller frees. -ENOENT when none. */
int store_get_revision(struct store *s, const char *service, int rev, char **spec_yaml);
/* The latest applied spec of a service (creates the service row if needed). */
int store_set_service_spec(struct store *s, const char *service, const char *spec_yaml);
/* *spec_yaml: a new string, caller frees. -ENOENT when no such service or no spec set. */
int store_get_service_spec(struct store *s, const char *service, char **spec_yaml);

/* Every service name, sorted. *names: a new array of new strings; free with store_names_free. */
int store_list_services(struct store *s, char ***names, size_t *n);
void store_names_free(char **names, size_t n);
/* Every rollout of a service, newest (highest id) first. *v: a new array (caller frees; NULL
 * when n is 0). An unknown service has none. */
int store_list_rollouts(struct store *s, const char *service, struct engine_rollout **v, size_t *n);

struct store_revision {
	int rev;
	uint64_t hash;
	char *version; /* may be NULL */
	int64_t created_at;
};
/* Every revision of a service, oldest first. *v: free with store_revisions_free. */
int store_list_revisions(struct store *s, const char *service, struct store_revision **v, size_t *n);
void store_revisions_free(struct store_revision *v, size_t n);

/* Appends an event (service may be NULL for daemon-wide events; inst_id 0 for none). *id_out
 * (may be NULL) gets its id; ids only grow, never reused. */
int store_add_event(struct store *s, const char *service, int64_t ts, const char *kind, uint64_t inst_id,
		    const char *text, int64_t *id_out);
/* Retention: deletes all but the newest `keep` (>= 1) events of each service (daemon-wide events
 * counting as one more service). *deleted (may be NULL) gets how many went. 0 or an error. */
int store_prune_events(struct store *s, size_t keep, size_t *deleted);
/* The same for one service: all but its newest `keep` (>= 1) events go, with an index seek (the
 * daemon runs it in the commit of a step that recorded many events). Both give the freed pages
 * back to the file system (incremental auto_vacuum), so the file shrinks again. */
int store_prune_service_events(struct store *s, const char *service, size_t keep, size_t *deleted);
/* Records every INTENT_EVENT and INTENT_ROLLOUT of out as an event at `now`, kind
 * engine_event_name(intent.event), all or none. */
int store_add_intent_events(struct store *s, const char *service, int64_t now, const struct engine_out *out);

/* Called once per event; strings valid only during the call. A non-zero return stops the
 * listing and becomes store_events' return value. */
typedef int (*store_event_cb)(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind,
			      uint64_t inst_id, const char *text);
/* Events with id > after_id, of `service` (NULL: every event), oldest first, at most limit
 * (0 or more than STORE_EVENTS_MAX: STORE_EVENTS_MAX). Rows are read first, then cb is called,
 * so cb may call the store; cb is never called when this returns an error. */
int store_events(struct store *s, const char *service, int64_t after_id, size_t limit, store_event_cb cb,
		 void *ctx);

#endif
