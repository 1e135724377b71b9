/* The `systemd` preset of `rollout host` (docs/driver.md): an instance is a systemd service made
 * from one template unit per rollout directory, `rollout-<hash>@.service`, whose ExecStart is
 * `rollout host run --dir DIR --name %i`: the command, its environment (secrets included) and its
 * workdir wait in DIR/run/NAME.spec (0600), never in a unit file or on a command line. systemctl is
 * reached through a table (struct host_systemd_ops) so that tests can stand in for it. */
#ifndef ROLLOUT_HOST_HOST_SYSTEMD_H
#define ROLLOUT_HOST_HOST_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How systemctl is run: argv (argv[0] is "systemctl", NULL-terminated); its stdout into out (len
 * bytes, NUL-terminated, may be NULL); returns its exit status, or a negative errno when it could
 * not run. */
struct host_systemd_ops {
	int (*systemctl)(char *const argv[], char *out, size_t len);
};

/* The real one: `systemctl` from PATH (with --user when not root). */
extern const struct host_systemd_ops host_systemd_real;

/* What a start needs: argv with the port already in place, the environment entries (NAME=value,
 * NUL-separated, env_len bytes; may be NULL), the workdir (may be NULL). */
struct host_systemd_start {
	const char *dir, *name, *port, *workdir;
	char **argv;
	int argc;
	const char *env;
	size_t env_len;
};

/* The unit directory: $ROLLOUT_SYSTEMD_DIR, else /etc/systemd/system for root, else
 * ~/.config/systemd/user. New string. */
char *host_systemd_unit_dir(void);
/* The template unit's name for rollout directory dir ("rollout-1a2b3c4d@.service"). New string. */
char *host_systemd_template(const char *dir);
/* The template unit's text: ExecStart runs exe (an absolute path) `host run --dir DIR --name %i`,
 * output appended to DIR/logs/%i.log. NULL when exe or dir cannot be written in a unit (a path
 * with a character systemd would read otherwise: whitespace, quotes, backslash, %, $, ;). */
char *host_systemd_unit_text(const char *exe, const char *dir);

/* Whether instance name is run by this preset (DIR/run/NAME.unit exists). */
bool host_systemd_managed(const char *dir, const char *name);
/* Starts the instance (a running one is left as is): writes its spec, installs the template unit
 * when missing or different (then daemon-reload), `systemctl start`, then the pidfile. 0 and
 * *pid / *start (the main process and its start time), or a negative errno with a message on err. */
int host_systemd_start(const struct host_systemd_ops *ops, const struct host_systemd_start *req, FILE *err,
		       int *pid, uint64_t *start);
/* Stops it: `systemctl kill` with signo, SIGKILL after grace_ms, then `systemctl stop` and
 * reset-failed; removes its files. *how says which ("stopped", "killed after the grace period",
 * "not running"). 0 or a negative errno. */
int host_systemd_stop(const struct host_systemd_ops *ops, const char *dir, const char *name, int signo,
		      long grace_ms, const char **how);
/* ExecStart of the unit: reads DIR/run/NAME.spec and execs the command there (returns only on
 * failure: a negative errno, with a message on err). */
int host_systemd_run(const char *dir, const char *name, FILE *err);

#endif
