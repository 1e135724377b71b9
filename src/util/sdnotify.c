/* sd_notify(3) by hand: one datagram per call on a fresh socket. */
#include "util/sdnotify.h"
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	size_t n = strlen(path);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path || n < 2)
		return -EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t k = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	int err = k < 0 ? -errno : 1;
	close(fd);
	return err;
}

static int parse_u64(const char *s, uint64_t *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

uint64_t sdnotify_watchdog_ms(void)
{
	uint64_t usec, pid;
	if (parse_u64(getenv("WATCHDOG_USEC"), &usec) < 0 || usec == 0)
		return 0;
	const char *p = getenv("WATCHDOG_PID");
	if (p != NULL && (parse_u64(p, &pid) < 0 || pid != (uint64_t)getpid()))
		return 0;
	return usec < 1000 ? 1 : usec / 1000;
}
