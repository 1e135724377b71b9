/* A service's configuration as the admin API receives it (PUT /v1/services/NAME), parsed and
 * checked completely before anything changes. */
#ifndef ROLLOUT_PROXY_CONFIG_H
#define ROLLOUT_PROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_MAX_BACKENDS 1024
#define PROXY_ADDR_MAX 64
#define PROXY_MAX_WEIGHT 256

enum proxy_state { PROXY_ACTIVE, PROXY_DRAINING, PROXY_REMOVED };

struct proxy_backend_conf {
	uint64_t id;
	int revision;
	char addr[PROXY_ADDR_MAX];
	struct sockaddr_storage sa;
	enum proxy_state state;
	int weight; /* 1..PROXY_MAX_WEIGHT, default 1 */
};

struct proxy_config {
	char listen[PROXY_ADDR_MAX];
	struct sockaddr_storage listen_sa;
	int tcp; /* protocol "tcp" (else "http") */
	struct proxy_backend_conf *v;
	size_t n;
};

/* Parses "host:port" / "[v6]:port" with a numeric host into sa. Returns 0 or -EINVAL. */
int proxy_parse_addr(const char *s, struct sockaddr_storage *sa);

/* Parses a JSON body of len bytes (need not be NUL-terminated) into *out (caller frees with
 * proxy_config_free). Returns 0, or -EINVAL with a message in err (errlen bytes) and *out empty. */
int proxy_config_parse(const char *body, size_t len, struct proxy_config *out, char *err, size_t errlen);
void proxy_config_free(struct proxy_config *c);

#endif
