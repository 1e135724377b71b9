/* Unit tests of the SQLite state store: round trips, migrations, revisions, events, transactions,
 * durability across a process that dies before or after commit, and two connections on one file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/engine.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[96];
	pid_t child; /* a child still running, killed by teardown */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/state.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[128];
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct store *open_ok(const char *path)
{
	struct store *s = NULL;
	int rc = store_open(path, &s);
	if (rc != 0)
		fail_msg("store_open: %d %s", rc, store_errmsg(s));
	return s;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add_inst(struct engine_state *st, uint64_t id, int rev, enum engine_inst_state state, int64_t t)
{
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 4;
		st->inst = realloc(st->inst, st->cap * sizeof *st->inst);
	}
	struct engine_inst *in = &st->inst[st->n++];
	memset(in, 0, sizeof *in);
	in->id = id;
	in->revision = rev;
	in->state = state;
	in->created_at = t + 1;
	in->healthy_at = t + 2;
	in->unhealthy_at = t + 3;
	in->changed_at = t + 4;
	in->port = 40000 + (int)id;
	snprintf(in->cause, sizeof in->cause, "cause of %llu", (unsigned long long)id);
	snprintf(in->zone, sizeof in->zone, "zone-%llu", (unsigned long long)id);
	in->restarts = (int)(id % 7) + 1;
	in->start_at = t + 5;
	in->owes_restart = id % 2 == 0;
}

/* A state where every field differs from its default. */
static void full_state(struct engine_state *st)
{
	engine_state_init(st);
	st->target_rev = 3;
	st->stable_rev = 2;
	st->latest_rev = 4;
	st->replicas = 5;
	st->next_inst_id = UINT64_C(0xfffffffffffffff0); /* above INT64_MAX: bit pattern survives */
	st->next_rollout_id = 8;
	st->verdict = VERDICT_INCONCLUSIVE;
	snprintf(st->verdict_reason, sizeof st->verdict_reason, "only 3 requests");
	struct engine_rollout *ro = &st->ro;
	ro->id = 7;
	ro->kind = RO_KIND_UNDO;
	ro->state = RO_PAUSED;
	ro->from_rev = 2;
	ro->to_rev = 3;
	ro->rollback_rev = 1;
	ro->batch = 2;
	ro->fast = true;
	ro->failures = 1;
	ro->hold = 4;
	ro->pause = PAUSE_ANALYSIS;
	ro->pause_until = 1001;
	ro->paused_at = 1002;
	ro->progress_at = 1003;
	ro->started_at = 1004;
	ro->ended_at = 1005;
	ro->watch_until = 1006;
	ro->zone_step = 3;
	/* A full buffer without a terminator must not be over-read. */
	memset(ro->reason, 'r', sizeof ro->reason);
	add_inst(st, 12, 3, INST_UNHEALTHY, 100);
	add_inst(st, 10, 2, INST_READY, 200); /* not in id order: the order is kept */
	add_inst(st, 11, 3, INST_DRAINING, 300);
}

static void assert_ro_equal(const struct engine_rollout *a, const struct engine_rollout *b)
{
	assert_int_equal(a->id, b->id);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->from_rev, b->from_rev);
	assert_int_equal(a->to_rev, b->to_rev);
	assert_int_equal(a->rollback_rev, b->rollback_rev);
	assert_int_equal(a->batch, b->batch);
	assert_int_equal(a->fast, b->fast);
	assert_int_equal(a->failures, b->failures);
	assert_int_equal(a->hold, b->hold);
	assert_int_equal(a->pause, b->pause);
	assert_int_equal(a->pause_until, b->pause_until);
	assert_int_equal(a->paused_at, b->paused_at);
	assert_int_equal(a->progress_at, b->progress_at);
	assert_int_equal(a->started_at, b->started_at);
	assert_int_equal(a->ended_at, b->ended_at);
	assert_int_equal(a->watch_until, b->watch_until);
	assert_int_equal(a->zone_step, b->zone_step);
	/* A reason that filled the whole buffer comes back truncated by one, NUL-terminated. */
	assert_int_equal(strncmp(a->reason, b->reason, sizeof a->reason - 1), 0);
}

static void assert_state_equal(const struct engine_state *a, const struct engine_state *b)
{
	assert_int_equal(a->target_rev, b->target_rev);
	assert_int_equal(a->stable_rev, b->stable_rev);
	assert_int_equal(a->latest_rev, b->latest_rev);
	assert_int_equal(a->replicas, b->replicas);
	assert_true(a->next_inst_id == b->next_inst_id);
	assert_true(a->next_rollout_id == b->next_rollout_id);
	assert_int_equal(a->verdict, b->verdict);
	assert_string_equal(a->verdict_reason, b->verdict_reason);
	assert_ro_equal(&a->ro, &b->ro);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct engine_inst *x = &a->inst[i], *y = &b->inst[i];
		assert_int_equal(x->id, y->id);
		assert_int_equal(x->revision, y->revision);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->created_at, y->created_at);
		assert_int_equal(x->healthy_at, y->healthy_at);
		assert_int_equal(x->unhealthy_at, y->unhealthy_at);
		assert_int_equal(x->changed_at, y->changed_at);
		assert_int_equal(x->port, y->port);
		assert_string_equal(x->cause, y->cause);
		assert_string_equal(x->zone, y->zone);
		assert_int_equal(x->restarts, y->restarts);
		assert_int_equal(x->start_at, y->start_at);
		assert_int_equal(x->owes_restart, y->owes_restart);
	}
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state in, out;
	full_state(&in);
	assert_int_equal(store_save_state(s, "web", &in, 5000), 0);

	engine_state_init(&out);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_state_equal(&out, &in);
	assert_int_equal(strnlen(out.ro.reason, sizeof out.ro.reason), sizeof out.ro.reason - 1);

	/* Driver data survives a later save of the same instances. */
	assert_int_equal(store_set_proc(s, "web", 11, 4242, UINT64_C(0xfedcba9876543210), "h1.example"), 0);
	assert_int_equal(store_set_proc(s, "web", 99, 1, 1, NULL), -ENOENT);
	in.inst[2].state = INST_DRAINED;
	in.inst[2].changed_at = 9999;
	assert_int_equal(store_save_state(s, "web", &in, 6000), 0);
	store_free(s);

	/* From disk, with a new connection. */
	s = open_ok(f->path);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_state_equal(&out, &in);
	int pid = 0;
	uint64_t start = 0;
	char *host = NULL;
	assert_int_equal(store_get_proc(s, "web", 11, &pid, &start), 0);
	assert_int_equal(pid, 4242);
	assert_true(start == UINT64_C(0xfedcba9876543210));
	assert_int_equal(store_get_proc_host(s, "web", 11, &host), 0);
	assert_string_equal(host, "h1.example");
	free(host);
	assert_int_equal(store_get_proc(s, "web", 10, &pid, &start), -ENOENT); /* no pid set */
	assert_int_equal(store_get_proc_host(s, "web", 10, &host), 0);
	assert_null(host);
	assert_int_equal(store_get_proc(s, "web", 99, &pid, &start), -ENOENT);

	/* A state with no rollout keeps the old rollout row but loads with none current. */
	in.ro.id = 0;
	in.ro.state = RO_NONE;
	in.ro.kind = RO_KIND_DEPLOY;
	memset(&in.ro, 0, sizeof in.ro);
	assert_int_equal(store_save_state(s, "web", &in, 7000), 0);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	struct engine_state fresh;
	engine_state_init(&fresh);
	assert_ro_equal(&out.ro, &fresh.ro);
	struct engine_rollout *ros = NULL;
	size_t n = 0;
	assert_int_equal(store_list_rollouts(s, "web", &ros, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ros[0].id, 7);
	free(ros);

	engine_state_clear(&fresh);
	engine_state_clear(&in);
	engine_state_clear(&out);
	store_free(s);
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state st, out;
	full_state(&st);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	st.inst[1].state = (enum engine_inst_state)77;
	st.replicas = 9;
	assert_int_equal(store_save_state(s, "web", &st, 2), -EINVAL);
	assert_true(strlen(store_errmsg(s)) > 0);
	st.inst[1].state = INST_READY;
	st.ro.state = (enum engine_ro_state) - 3;
	assert_int_equal(store_save_state(s, "web", &st, 2), -EINVAL);
	st.ro.state = RO_PAUSED;
	st.ro.pause = (enum engine_pause_reason)9;
	assert_int_equal(store_save_state(s, "web", &st, 2), -EINVAL);
	assert_int_equal(store_save_state(s, "", &st, 2), -EINVAL);
	/* Nothing of the failed saves stayed. */
	engine_state_init(&out);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_int_equal(out.replicas, 5);
	/* A row this version cannot read is reported, not guessed. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "UPDATE instances SET state = 'zombie' WHERE id = 10", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_load_state(s, "web", &out), STORE_ECORRUPT);
	assert_non_null(strstr(store_errmsg(s), "zombie"));
	engine_state_clear(&st);
	engine_state_clear(&out);
	store_free(s);
}

static void test_instance_deletion(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state st, out;
	full_state(&st);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	assert_int_equal(store_set_proc(s, "web", 11, 311, 3110, NULL), 0);
	assert_int_equal(store_set_proc(s, "web", 10, 310, 3100, NULL), 0);
	/* Drop the middle one (id 10), add id 13. */
	st.inst[1] = st.inst[2];
	st.n = 2;
	add_inst(&st, 13, 3, INST_PENDING, 400);
	assert_int_equal(store_save_state(s, "web", &st, 2), 0);
	engine_state_init(&out);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_state_equal(&out, &st);
	int pid;
	uint64_t start;
	assert_int_equal(store_get_proc(s, "web", 10, &pid, &start), -ENOENT);
	assert_int_equal(store_get_proc(s, "web", 11, &pid, &start), 0);
	assert_int_equal(pid, 311);
	/* Another service's instances are not touched. */
	assert_int_equal(store_save_state(s, "api", &st, 3), 0);
	st.n = 0;
	assert_int_equal(store_save_state(s, "web", &st, 4), 0);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(store_load_state(s, "api", &out), 0);
	assert_int_equal(out.n, 3);
	engine_state_clear(&st);
	engine_state_clear(&out);
	store_free(s);
}

static int raw_user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int v = -1;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static void test_migrations(void **state)
{
	struct fixture *f = *state;
	/* An empty file, as a crash right after creation would leave. */
	int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct store *s = open_ok(f->path);
	assert_int_equal(store_set_service_spec(s, "web", "service: web\n"), 0);
	store_free(s);
	assert_int_equal(raw_user_version(f->path), STORE_SCHEMA_VERSION);
	/* WAL is persistent in the file. */
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);

	/* Reopening changes nothing. */
	s = open_ok(f->path);
	char *spec = NULL;
	assert_int_equal(store_get_service_spec(s, "web", &spec), 0);
	assert_string_equal(spec, "service: web\n");
	free(spec);
	store_free(s);
	assert_int_equal(raw_user_version(f->path), STORE_SCHEMA_VERSION);

	/* A second migration that fails half way leaves version 1 and none of its changes. */
	const char *const migs[] = {
	    "CREATE TABLE t1 (a INTEGER); PRAGMA user_version = 1;",
	    "CREATE TABLE t2 (a INTEGER); INSERT INTO nosuch VALUES (1); PRAGMA user_version = 2;",
	};
	char other[128];
	snprintf(other, sizeof other, "%s/other.db", f->dir);
	int rc = store_open_migrations(other, migs, 2, &s);
	assert_int_equal(rc, STORE_ESQL);
	assert_non_null(strstr(store_errmsg(s), "migration 2"));
	store_free(s);
	assert_int_equal(raw_user_version(other), 1);
	assert_int_equal(raw_exec(other, "SELECT * FROM t1"), SQLITE_OK);
	assert_int_not_equal(raw_exec(other, "SELECT * FROM t2"), SQLITE_OK);
	/* A migration that forgets to set its version is refused. */
	const char *const forgetful[] = {migs[0], "CREATE TABLE t3 (a INTEGER);"};
	assert_int_equal(store_open_migrations(other, forgetful, 2, &s), STORE_ESQL);
	store_free(s);
	assert_int_equal(raw_user_version(other), 1);

	/* A file from a newer rollout is refused, untouched. */
	assert_int_equal(raw_exec(other, "PRAGMA user_version = 99"), SQLITE_OK);
	assert_int_equal(store_open(other, &s), STORE_ESCHEMA);
	assert_non_null(strstr(store_errmsg(s), "newer"));
	store_free(s);
	assert_int_equal(raw_user_version(other), 99);

	/* Not a database at all. */
	fd = open(other, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	char junk[4096];
	memset(junk, 'x', sizeof junk);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", other);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", other);
	unlink(wal);
	assert_int_equal(store_open(other, &s), STORE_ECORRUPT);
	assert_true(strlen(store_errmsg(s)) > 0);
	store_free(s);
	unlink(other);

	/* A directory that does not exist: an errno, and a message naming the file. */
	assert_true(store_open("/nonexistent-dir/state.db", &s) < 0);
	assert_non_null(strstr(store_errmsg(s), "/nonexistent-dir/state.db"));
	store_free(s);
	store_free(NULL);
}

static void test_revisions(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	uint64_t a = UINT64_C(0xa0a0a0a0a0a0a0a0), b = 0xb;
	assert_int_equal(store_put_revision(s, "web", 1, a, "1", "yaml1", 100), 0);
	assert_int_equal(store_put_revision(s, "web", 2, b, NULL, "yaml2", 200), 0);
	assert_int_equal(store_put_revision(s, "web", 3, a, "3", "yaml3", 300), 0);
	assert_int_equal(store_put_revision(s, "api", 1, b, "x", "yamlapi", 300), 0);
	assert_int_equal(store_put_revision(s, "web", 2, a, "2b", "other", 400), -EEXIST);
	assert_non_null(strstr(store_errmsg(s), "UNIQUE"));

	int rev = 0;
	assert_int_equal(store_find_revision(s, "web", a, &rev), 0);
	assert_int_equal(rev, 3);
	assert_int_equal(store_find_revision(s, "web", b, &rev), 0);
	assert_int_equal(rev, 2);
	assert_int_equal(store_find_revision(s, "web", 0xc, &rev), -ENOENT);
	assert_int_equal(store_find_revision(s, "nosuch", a, &rev), -ENOENT);

	char *y = NULL;
	assert_int_equal(store_get_revision(s, "web", 2, &y), 0);
	assert_string_equal(y, "yaml2");
	free(y);
	assert_int_equal(store_get_revision(s, "web", 9, &y), -ENOENT);

	struct store_revision *v = NULL;
	size_t n = 0;
	assert_int_equal(store_list_revisions(s, "web", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].rev, 1);
	assert_true(v[0].hash == a);
	assert_string_equal(v[0].version, "1");
	assert_int_equal(v[0].created_at, 100);
	assert_int_equal(v[1].rev, 2);
	assert_null(v[1].version);
	assert_int_equal(v[2].rev, 3);
	store_revisions_free(v, n);

	/* The service spec, and a service with only revisions loads as a fresh state. */
	assert_int_equal(store_get_service_spec(s, "web", &y), -ENOENT);
	assert_int_equal(store_set_service_spec(s, "web", "spec v1"), 0);
	assert_int_equal(store_set_service_spec(s, "web", "spec v2"), 0);
	assert_int_equal(store_get_service_spec(s, "web", &y), 0);
	assert_string_equal(y, "spec v2");
	free(y);
	assert_int_equal(store_get_service_spec(s, "nosuch", &y), -ENOENT);
	struct engine_state st, fresh;
	engine_state_init(&fresh);
	full_state(&st);
	assert_int_equal(store_load_state(s, "web", &st), 0);
	assert_state_equal(&st, &fresh);
	/* No such service: -ENOENT and the state untouched. */
	full_state(&fresh);
	engine_state_clear(&st);
	full_state(&st);
	assert_int_equal(store_load_state(s, "nosuch", &st), -ENOENT);
	assert_state_equal(&st, &fresh);
	/* Saving the state keeps the spec. */
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	assert_int_equal(store_get_service_spec(s, "web", &y), 0);
	assert_string_equal(y, "spec v2");
	free(y);
	engine_state_clear(&st);
	engine_state_clear(&fresh);
	store_free(s);
}

struct ev {
	int64_t id, ts;
	char service[16], kind[32], text[64];
	uint64_t inst_id;
};

struct evs {
	struct ev v[16];
	size_t n;
	size_t stop_after;     /* return 42 after this many (0: never) */
	struct store *reenter; /* when set, the callback calls the store */
};

static int collect(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst_id,
		   const char *text)
{
	struct evs *e = ctx;
	if (e->n >= 16)
		return -ENOSPC;
	struct ev *x = &e->v[e->n++];
	x->id = id;
	x->ts = ts;
	snprintf(x->service, sizeof x->service, "%s", service ? service : "(null)");
	snprintf(x->kind, sizeof x->kind, "%s", kind);
	snprintf(x->text, sizeof x->text, "%s", text);
	x->inst_id = inst_id;
	if (e->reenter != NULL) {
		int64_t nid;
		if (store_add_event(e->reenter, "web", ts + 1000, "echo", 0, text, &nid) != 0)
			return -EIO;
	}
	return e->stop_after != 0 && e->n == e->stop_after ? 42 : 0;
}

/* Retention: each service (and the daemon-wide events) keeps its newest `keep`, whatever the others. */
static void test_prune_events(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	for (int i = 0; i < 12; i++) {
		char text[16];
		snprintf(text, sizeof text, "w%d", i);
		assert_int_equal(store_add_event(s, "web", i, "k", 0, text, NULL), 0);
		if (i < 2)
			assert_int_equal(store_add_event(s, "api", i, "k", 0, "a", NULL), 0);
		if (i < 5)
			assert_int_equal(store_add_event(s, NULL, i, "k", 0, "d", NULL), 0);
	}
	size_t n = 0;
	assert_int_equal(store_prune_events(s, 3, &n), 0);
	assert_int_equal(n, (12 - 3) + 0 + (5 - 3));
	struct evs e = {0};
	assert_int_equal(store_events(s, "web", 0, 16, collect, &e), 0);
	assert_int_equal(e.n, 3);
	assert_string_equal(e.v[0].text, "w9"); /* the newest three, oldest first */
	assert_string_equal(e.v[2].text, "w11");
	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "api", 0, 16, collect, &e), 0);
	assert_int_equal(e.n, 2);
	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, NULL, 0, 16, collect, &e), 0);
	assert_int_equal(e.n, 3 + 2 + 3);
	assert_int_equal(store_prune_events(s, 3, &n), 0);
	assert_int_equal(n, 0);
	assert_int_not_equal(store_prune_events(s, 0, NULL), 0);
	store_free(s);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t v = -1;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static int64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

/* A crash loop's events: one service's are cut to the newest N by an index seek, the others'
 * stay, and the file gives the pages back (incremental auto_vacuum, a file from before it is
 * converted at open). */
static void test_prune_service_events_shrinks(void **state)
{
	struct fixture *f = *state;
	/* A file made without auto_vacuum, as every file before schema 3 was. */
	assert_int_equal(raw_exec(f->path, "CREATE TABLE old (a INTEGER)"), SQLITE_OK);
	assert_int_equal(raw_int(f->path, "PRAGMA auto_vacuum"), 0);
	struct store *s = open_ok(f->path);
	assert_int_equal(raw_int(f->path, "PRAGMA auto_vacuum"), 2);
	char text[400];
	memset(text, 'e', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	assert_int_equal(store_begin(s), 0);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(store_add_event(s, "web", i, "instance_failed", 0, text, NULL), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_add_event(s, "api", i, "k", 0, "a", NULL), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(raw_exec(f->path, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
	int64_t big = file_size(f->path);
	assert_true(big > 20000 * 400);

	size_t n = 0;
	assert_int_equal(store_prune_service_events(s, "web", 100, &n), 0);
	assert_int_equal(n, 20000 - 100);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE service = 'web'"), 100);
	assert_int_equal(raw_int(f->path, "SELECT min(ts) FROM events WHERE service = 'web'"), 19900);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE service = 'api'"), 5);
	assert_int_equal(raw_int(f->path, "PRAGMA freelist_count"), 0);
	assert_int_equal(raw_exec(f->path, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
	assert_true(file_size(f->path) < big / 10);
	/* Nothing more to cut: nothing goes. Bad arguments change nothing. */
	assert_int_equal(store_prune_service_events(s, "web", 100, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_prune_service_events(s, "web", 1000, &n), 0);
	assert_int_equal(n, 0);
	assert_int_not_equal(store_prune_service_events(s, "web", 0, NULL), 0);
	assert_int_not_equal(store_prune_service_events(s, NULL, 5, NULL), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 105);
	store_free(s);
}

static void test_events(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	int64_t ids[5];
	assert_int_equal(store_add_event(s, "web", 10, "rollout_started", 0, "go", &ids[0]), 0);
	assert_int_equal(store_add_event(s, "api", 11, "paused", 0, "wait", &ids[1]), 0);
	assert_int_equal(store_add_event(s, "web", 12, "instance_failed", 7, "exit 1", &ids[2]), 0);
	assert_int_equal(store_add_event(s, NULL, 13, "daemon", 0, "started", &ids[3]), 0);
	assert_int_equal(store_add_event(s, "web", 9, "complete", 0, "done", &ids[4]), 0); /* older ts */
	for (int i = 1; i < 5; i++)
		assert_true(ids[i] > ids[i - 1]);

	struct evs e = {0};
	assert_int_equal(store_events(s, NULL, 0, 0, collect, &e), 0);
	assert_int_equal(e.n, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(e.v[i].id, ids[i]); /* by id, not by ts */
	assert_string_equal(e.v[2].kind, "instance_failed");
	assert_int_equal(e.v[2].inst_id, 7);
	assert_string_equal(e.v[2].text, "exit 1");
	assert_int_equal(e.v[2].ts, 12);
	assert_string_equal(e.v[3].service, "(null)");

	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "web", ids[0], 0, collect, &e), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.v[0].id, ids[2]);
	assert_int_equal(e.v[1].id, ids[4]);

	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, NULL, ids[1], 2, collect, &e), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.v[0].id, ids[2]);
	assert_int_equal(e.v[1].id, ids[3]);

	memset(&e, 0, sizeof e);
	e.stop_after = 2;
	assert_int_equal(store_events(s, NULL, 0, 0, collect, &e), 42);
	assert_int_equal(e.n, 2);

	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "web", ids[4], 0, collect, &e), 0);
	assert_int_equal(e.n, 0);

	/* A callback may use the store (the rows were read before it ran). */
	memset(&e, 0, sizeof e);
	e.reenter = s;
	assert_int_equal(store_events(s, "api", 0, 0, collect, &e), 0);
	assert_int_equal(e.n, 1);
	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "web", ids[4], 0, collect, &e), 0);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0].kind, "echo");
	int64_t last = e.v[0].id;

	/* Intent events: EVENT and ROLLOUT recorded, START not. */
	struct engine_intent iv[3];
	memset(iv, 0, sizeof iv);
	iv[0].kind = INTENT_START;
	iv[0].inst_id = 5;
	iv[1].kind = INTENT_EVENT;
	iv[1].event = EV_INSTANCE_STARTING;
	iv[1].inst_id = 5;
	snprintf(iv[1].text, sizeof iv[1].text, "starting 5");
	iv[2].kind = INTENT_ROLLOUT;
	iv[2].event = EV_PAUSED;
	memset(iv[2].text, 'p', sizeof iv[2].text); /* full, no terminator */
	struct engine_out out = {iv, 3, 3};
	assert_int_equal(store_add_intent_events(s, "web", 777, &out), 0);
	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "web", last, 0, collect, &e), 0);
	assert_int_equal(e.n, 2);
	assert_string_equal(e.v[0].kind, engine_event_name(EV_INSTANCE_STARTING));
	assert_int_equal(e.v[0].inst_id, 5);
	assert_int_equal(e.v[0].ts, 777);
	assert_string_equal(e.v[0].text, "starting 5");
	assert_string_equal(e.v[1].kind, engine_event_name(EV_PAUSED));
	assert_int_equal(strlen(e.v[1].text), sizeof e.v[1].text - 1); /* collect truncates to 63 */

	/* A bad intent records none of the step's events. */
	iv[2].event = (enum engine_event_kind)99;
	assert_int_equal(store_add_intent_events(s, "web", 778, &out), -EINVAL);
	memset(&e, 0, sizeof e);
	assert_int_equal(store_events(s, "web", last, 0, collect, &e), 0);
	assert_int_equal(e.n, 2);
	store_free(s);
}

static void test_lists(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	char **names = NULL;
	size_t n = 99;
	assert_int_equal(store_list_services(s, &names, &n), 0);
	assert_int_equal(n, 0);
	store_names_free(names, n);

	struct engine_state st;
	full_state(&st);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	st.ro.id = 8;
	st.ro.state = RO_COMPLETE;
	assert_int_equal(store_save_state(s, "web", &st, 2), 0);
	st.ro.id = 9;
	st.ro.kind = RO_KIND_ROLLBACK;
	assert_int_equal(store_save_state(s, "web", &st, 3), 0);
	st.ro.id = 1;
	assert_int_equal(store_save_state(s, "api", &st, 3), 0);
	assert_int_equal(store_set_service_spec(s, "batch", "x"), 0);

	assert_int_equal(store_list_services(s, &names, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "api");
	assert_string_equal(names[1], "batch");
	assert_string_equal(names[2], "web");
	store_names_free(names, n);

	struct engine_rollout *v = NULL;
	assert_int_equal(store_list_rollouts(s, "web", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].id, 9);
	assert_int_equal(v[0].kind, RO_KIND_ROLLBACK);
	assert_int_equal(v[1].id, 8);
	assert_int_equal(v[1].state, RO_COMPLETE);
	assert_int_equal(v[2].id, 7);
	assert_int_equal(v[2].state, RO_PAUSED);
	free(v);
	assert_int_equal(store_list_rollouts(s, "nosuch", &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	engine_state_clear(&st);
	store_free(s);
}

static void test_transactions(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state st, out;
	full_state(&st);
	engine_state_init(&out);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);

	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_begin(s), -EALREADY);
	st.replicas = 50;
	assert_int_equal(store_save_state(s, "web", &st, 2), 0);
	assert_int_equal(store_add_event(s, "web", 2, "scaled", 0, "to 50", NULL), 0);
	assert_int_equal(store_load_state(s, "web", &out), 0); /* sees its own writes */
	assert_int_equal(out.replicas, 50);
	assert_int_equal(store_rollback(s), 0);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_int_equal(out.replicas, 5);
	struct evs e = {0};
	assert_int_equal(store_events(s, NULL, 0, 0, collect, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(store_rollback(s), 0);
	assert_int_equal(store_commit(s), -EINVAL);

	/* A failing call inside a transaction undoes only itself. */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_put_revision(s, "web", 1, 1, "1", "y1", 1), 0);
	st.inst[0].state = (enum engine_inst_state)55;
	st.replicas = 60;
	assert_int_equal(store_save_state(s, "web", &st, 3), -EINVAL);
	st.inst[0].state = INST_READY;
	st.replicas = 61;
	st.n = 1;
	assert_int_equal(store_save_state(s, "web", &st, 3), 0);
	/* This one fails after writing the service row: the savepoint takes it back. */
	st.replicas = 62;
	st.n = 3;
	st.inst[2].state = (enum engine_inst_state)55;
	assert_int_equal(store_save_state(s, "web", &st, 4), -EINVAL);
	assert_int_equal(store_put_revision(s, "web", 1, 1, "1", "y1", 1), -EEXIST);
	assert_int_equal(store_commit(s), 0);
	int rev;
	assert_int_equal(store_find_revision(s, "web", 1, &rev), 0);
	assert_int_equal(rev, 1);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_int_equal(out.replicas, 61);
	assert_int_equal(out.n, 1);
	engine_state_clear(&st);
	engine_state_clear(&out);
	store_free(s);
}

/* Child processes: no cmocka inside, only exit codes. */
static void child_save(const char *path, int replicas, bool commit)
{
	struct store *s = NULL;
	struct engine_state st;
	if (store_open(path, &s) != 0)
		_exit(2);
	full_state(&st);
	st.replicas = replicas;
	st.n = 1;
	if (store_begin(s) != 0 || store_save_state(s, "web", &st, 2) != 0)
		_exit(3);
	if (store_add_event(s, "web", 2, "scaled", 0, "child", NULL) != 0)
		_exit(4);
	if (commit && store_commit(s) != 0)
		_exit(5);
	_exit(commit ? 9 : 0); /* no close, no checkpoint: as kill -9 would leave it */
}

static int run_child(struct fixture *f, int replicas, bool commit)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_save(f->path, replicas, commit);
	f->child = pid;
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	f->child = 0;
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_durability(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state st, out;
	full_state(&st);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	store_free(s); /* no connection crosses a fork */

	assert_int_equal(run_child(f, 40, false), 0);
	s = open_ok(f->path);
	engine_state_init(&out);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_state_equal(&out, &st);
	struct evs e = {0};
	assert_int_equal(store_events(s, NULL, 0, 0, collect, &e), 0);
	assert_int_equal(e.n, 0);
	store_free(s);

	assert_int_equal(run_child(f, 41, true), 9);
	s = open_ok(f->path);
	assert_int_equal(store_load_state(s, "web", &out), 0);
	assert_int_equal(out.replicas, 41);
	assert_int_equal(out.n, 1);
	assert_int_equal(store_events(s, NULL, 0, 0, collect, &e), 0);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0].text, "child");
	engine_state_clear(&st);
	engine_state_clear(&out);
	store_free(s);
}

static void test_two_stores(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_ok(f->path), *b = open_ok(f->path);
	struct engine_state st, out;
	full_state(&st);
	engine_state_init(&out);
	assert_int_equal(store_save_state(a, "web", &st, 1), 0);

	/* a holds the write lock: b's write gives up after its busy timeout; its read does not wait. */
	assert_int_equal(store_begin(a), 0);
	st.replicas = 6;
	assert_int_equal(store_save_state(a, "web", &st, 2), 0);
	store_set_busy_timeout(b, 150);
	int64_t t0 = mono_ms();
	st.replicas = 7;
	assert_int_equal(store_save_state(b, "web", &st, 3), -EBUSY);
	int64_t waited = mono_ms() - t0;
	assert_true(waited >= 100);
	assert_non_null(strstr(store_errmsg(b), "locked"));
	assert_int_equal(store_load_state(b, "web", &out), 0);
	assert_int_equal(out.replicas, 5);
	assert_int_equal(store_commit(a), 0);
	assert_int_equal(store_load_state(b, "web", &out), 0);
	assert_int_equal(out.replicas, 6);
	store_free(a);
	store_free(b); /* no connection crosses a fork (SQLite's rule) */

	/* Another process holds the lock for a while: a new connection waits instead of failing. */
	int sync[2];
	assert_int_equal(pipe(sync), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *c = NULL;
		struct engine_state cs;
		close(sync[0]);
		if (store_open(f->path, &c) != 0)
			_exit(2);
		full_state(&cs);
		cs.replicas = 8;
		if (store_begin(c) != 0 || store_save_state(c, "web", &cs, 4) != 0)
			_exit(3);
		if (write(sync[1], "x", 1) != 1)
			_exit(4);
		usleep(300 * 1000);
		_exit(store_commit(c) == 0 ? 0 : 5);
	}
	f->child = pid;
	close(sync[1]);
	char x;
	assert_int_equal(read(sync[0], &x, 1), 1);
	close(sync[0]);
	/* A new connection, to check the timeout store_open sets. */
	b = open_ok(f->path);
	t0 = mono_ms();
	st.replicas = 9;
	int rc = store_save_state(b, "web", &st, 5);
	waited = mono_ms() - t0;
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	f->child = 0;
	assert_int_equal(rc, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(waited >= 150);
	assert_int_equal(store_load_state(b, "web", &out), 0);
	assert_int_equal(out.replicas, 9);
	engine_state_clear(&st);
	engine_state_clear(&out);
	store_free(b);
}

/* ---- when the disk says no ---------------------------------------------------------------------- */

static int mode_of(const char *path, const char *suffix)
{
	char p[160];
	snprintf(p, sizeof p, "%s%s", path, suffix);
	struct stat st;
	if (stat(p, &st) < 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

/* state.db and its -wal and -shm hold every spec: 0600 whatever the umask; an existing file open
 * to others is narrowed. */
static void test_file_mode(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(022);
	struct store *s = open_ok(f->path);
	assert_int_equal(store_add_event(s, "web", 1, "k", 0, "x", NULL), 0);
	assert_int_equal(mode_of(f->path, ""), 0600);
	assert_int_equal(mode_of(f->path, "-wal"), 0600);
	assert_int_equal(mode_of(f->path, "-shm"), 0600);
	store_free(s);
	assert_int_equal(chmod(f->path, 0644), 0);
	s = open_ok(f->path);
	assert_int_equal(mode_of(f->path, ""), 0600);
	store_free(s);
	umask(old);
}

static off_t size_of(const char *path, const char *suffix)
{
	char p[160];
	snprintf(p, sizeof p, "%s%s", path, suffix);
	struct stat st;
	return stat(p, &st) < 0 ? -1 : st.st_size;
}

/* The WAL stays bounded over many commits (SQLite's default lets it reach 4 MB before a
 * checkpoint, and never shrinks it), and store_checkpoint truncates it to zero. */
static void test_wal_bounded(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	char *text = malloc(16384);
	memset(text, 'x', 16383);
	text[16383] = '\0';
	off_t max = 0;
	for (int i = 0; i < 400; i++) {
		assert_int_equal(store_add_event(s, "web", i, "k", 0, text, NULL), 0);
		off_t w = size_of(f->path, "-wal");
		if (w > max)
			max = w;
	}
	free(text);
	assert_true(max > 0);
	if (max > STORE_WAL_SIZE_LIMIT)
		fail_msg("the WAL reached %lld bytes (limit %d)", (long long)max, STORE_WAL_SIZE_LIMIT);
	assert_int_equal(store_checkpoint(s), 0);
	assert_int_equal(size_of(f->path, "-wal"), 0);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_checkpoint(s), -EALREADY);
	assert_int_equal(store_rollback(s), 0);
	store_free(s);
}

/* The child: a file-size limit of 32 KB, SIGXFSZ ignored: the -shm (which the first connection
 * truncates and grows back to 32 KB, in the space it just freed) fits, a WAL of a 64 KB event does
 * not: a full disk. The state opens and reads, the write fails with an error (no crash, nothing
 * half written), and once the limit is lifted the same handle writes again. Exit status: 0, or
 * the step that failed. */
static int full_disk_child(const char *path)
{
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl;
	getrlimit(RLIMIT_FSIZE, &rl);
	struct rlimit tight = {.rlim_cur = 32768, .rlim_max = rl.rlim_max};
	if (setrlimit(RLIMIT_FSIZE, &tight) < 0)
		return 10;
	struct store *s = NULL;
	if (store_open(path, &s) < 0) {
		fprintf(stderr, "open on a full disk: %s\n", store_errmsg(s));
		return 1;
	}
	struct engine_state st;
	engine_state_init(&st);
	if (store_load_state(s, "web", &st) < 0 || st.replicas != 3)
		return 2;
	static char text[65536];
	memset(text, 'y', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	int rc = store_add_event(s, "web", 2, "k", 0, text, NULL);
	if (rc == 0)
		return 3;
	if (store_errmsg(s)[0] == '\0')
		return 4;
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 11;
	if (store_add_event(s, "web", 3, "k", 0, text, NULL) != 0) {
		fprintf(stderr, "write after the disk has room: %s\n", store_errmsg(s));
		return 5;
	}
	st.replicas = 4;
	if (store_save_state(s, "web", &st, 4) != 0)
		return 6;
	engine_state_clear(&st);
	store_free(s);
	return 0;
}

/* A daemon restarted on a full disk: the file was closed cleanly (so SQLite would have removed
 * its -wal and -shm, and opening again would need disk space for them). */
static void test_full_disk(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	struct engine_state st;
	engine_state_init(&st);
	st.replicas = 3;
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	store_free(s);
	assert_int_equal(size_of(f->path, "-wal"), 0); /* kept, truncated */
	assert_true(size_of(f->path, "-shm") > 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_disk_child(f->path));
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	s = open_ok(f->path);
	assert_int_equal(store_load_state(s, "web", &st), 0);
	assert_int_equal(st.replicas, 4);
	engine_state_clear(&st);
	store_free(s);
}

/* A write waits at most the busy timeout for another connection's lock, fails -EBUSY, and the
 * same handle writes once the lock is gone. */
static void test_busy_short(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f->path);
	store_set_busy_timeout(s, 20);
	sqlite3 *other = NULL;
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	int64_t t0 = mono_ms();
	assert_int_equal(store_add_event(s, "web", 1, "k", 0, "x", NULL), -EBUSY);
	assert_true(mono_ms() - t0 < 1000);
	assert_int_equal(store_begin(s), -EBUSY);
	struct engine_state st;
	engine_state_init(&st);
	assert_int_equal(store_load_state(s, "web", &st), -ENOENT); /* reads go on */
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_save_state(s, "web", &st, 1), 0);
	assert_int_equal(store_commit(s), 0);
	engine_state_clear(&st);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instance_deletion, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revisions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_durability, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_stores, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_short, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune_service_events_shrinks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
