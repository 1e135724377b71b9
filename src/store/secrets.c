/* The per-service secrets file: "<rev> <NAME> <hex of value>" lines after one header line, written
 * to a temporary file, fsynced and renamed into place. Every buffer that held a value is wiped. */
#include "store/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xmalloc.h"

#define HEADER "# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n"

void secrets_clear(struct secrets *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++)
		spec_secret_clear(&x->v[i].vals);
	free(x->v);
	x->v = NULL;
	x->n = 0;
}

/* The entry of rev, made (empty, in order) when create. */
static struct secrets_rev *entry(struct secrets *x, int rev, bool create)
{
	size_t i = 0;
	while (i < x->n && x->v[i].rev < rev)
		i++;
	if (i < x->n && x->v[i].rev == rev)
		return &x->v[i];
	if (!create)
		return NULL;
	x->v = xrealloc(x->v, (x->n + 1) * sizeof *x->v);
	memmove(&x->v[i + 1], &x->v[i], (x->n - i) * sizeof *x->v);
	x->v[i] = (struct secrets_rev){.rev = rev};
	x->n++;
	return &x->v[i];
}

const struct spec_secrets *secrets_get(const struct secrets *x, int rev)
{
	struct secrets_rev *e = entry((struct secrets *)x, rev, false);
	return e ? &e->vals : NULL;
}

void secrets_put(struct secrets *x, int rev, const struct spec_secrets *vals)
{
	spec_secret_copy(&entry(x, rev, true)->vals, vals);
}

/* Service names as the spec allows them (1 to 63 of a-z 0-9 '-', a letter first): safe as a file
 * name. */
static bool good_service(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 63 || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool good_name(const char *s, size_t n)
{
	if (n == 0 || n > 256 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One line "<rev> <NAME> <hex>" (len bytes, no newline) into x. 0 or -EBADMSG. */
static int parse_line(struct secrets *x, const char *l, size_t len)
{
	const char *end = l + len, *sp1 = memchr(l, ' ', len);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (sp2 == NULL || sp1 == l || sp1 - l > 9 || (end - sp2 - 1) % 2 != 0)
		return -EBADMSG;
	int rev = 0;
	for (const char *p = l; p < sp1; p++) {
		if (*p < '0' || *p > '9')
			return -EBADMSG;
		rev = rev * 10 + (*p - '0');
	}
	if (rev <= 0 || !good_name(sp1 + 1, (size_t)(sp2 - sp1 - 1)))
		return -EBADMSG;
	size_t n = (size_t)(end - sp2 - 1) / 2;
	char *val = xmalloc(n + 1);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int hi = hexval(sp2[1 + 2 * i]), lo = hexval(sp2[2 + 2 * i]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			rc = -EBADMSG;
		else
			val[i] = (char)(hi << 4 | lo);
	}
	val[n] = '\0';
	if (rc == 0) {
		char *name = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
		spec_secret_set(&entry(x, rev, true)->vals, name, val);
		free(name);
	}
	xwipe(val, n);
	free(val);
	return rc;
}

int secrets_load(const char *dir, const char *service, struct secrets *x)
{
	secrets_clear(x);
	if (!good_service(service))
		return -EINVAL;
	char *path = xasprintf("%s/%s", dir, service);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	int rc = 0;
	for (;;) {
		if (len == cap) {
			if (cap >= SECRETS_MAX_BYTES) {
				rc = -EBADMSG;
				break;
			}
			/* Grow by hand: the old buffer is wiped, not left to realloc. */
			char *nb = xmalloc(cap * 2);
			memcpy(nb, buf, len);
			xwipe(buf, cap);
			free(buf);
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (rc == 0 && (len < strlen(HEADER) || memcmp(buf, HEADER, strlen(HEADER)) != 0))
		rc = -EBADMSG;
	for (size_t at = strlen(HEADER); rc == 0 && at < len;) {
		char *nl = memchr(buf + at, '\n', len - at);
		if (nl == NULL) {
			rc = -EBADMSG; /* a cut line: never written so (rename is atomic) */
			break;
		}
		rc = parse_line(x, buf + at, (size_t)(nl - (buf + at)));
		at = (size_t)(nl - buf) + 1;
	}
	xwipe(buf, cap);
	free(buf);
	if (rc < 0)
		secrets_clear(x);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* The directory that holds dir (for a durable mkdir), in a new string. */
static char *parent_of(const char *dir)
{
	const char *sl = strrchr(dir, '/');
	return sl == NULL ? xstrdup(".") : sl == dir ? xstrdup("/") : xstrndup(dir, (size_t)(sl - dir));
}

int secrets_save(const char *dir, const char *service, const struct secrets *x)
{
	if (!good_service(service))
		return -EINVAL;
	if (mkdir(dir, 0700) == 0) {
		char *parent = parent_of(dir);
		int r = fsync_dir(parent);
		free(parent);
		if (r < 0)
			return r;
	} else if (errno != EEXIST) {
		return -errno;
	}
	size_t size = strlen(HEADER) + 1;
	for (size_t i = 0; i < x->n; i++)
		for (size_t j = 0; j < x->v[i].vals.n; j++)
			size += 12 + strlen(x->v[i].vals.v[j].name) + 2 * strlen(x->v[i].vals.v[j].value) + 2;
	char *buf = xmalloc(size);
	size_t o = (size_t)snprintf(buf, size, "%s", HEADER);
	for (size_t i = 0; i < x->n; i++) {
		for (size_t j = 0; j < x->v[i].vals.n; j++) {
			const struct spec_kv *kv = &x->v[i].vals.v[j];
			o += (size_t)snprintf(buf + o, size - o, "%d %s ", x->v[i].rev, kv->name);
			for (const unsigned char *p = (const unsigned char *)kv->value; *p; p++)
				o += (size_t)snprintf(buf + o, size - o, "%02x", *p);
			buf[o++] = '\n';
		}
	}
	char *tmp = xasprintf("%s/.%s.tmp", dir, service);
	char *path = xasprintf("%s/%s", dir, service);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		rc = -errno;
	if (rc == 0 && fchmod(fd, 0600) < 0) /* a leftover temporary file keeps its old mode */
		rc = -errno;
	if (rc == 0)
		rc = write_all(fd, buf, o);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fsync_dir(dir);
	else
		unlink(tmp);
	xwipe(buf, size);
	free(buf);
	free(tmp);
	free(path);
	return rc;
}
