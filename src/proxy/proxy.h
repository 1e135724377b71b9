/* rollout proxy: the data plane. Services (a listener and a backend set), backends (address,
 * revision, state, in-flight count, idle upstream pool, stats), HTTP and TCP forwarding, and the
 * admin API that the daemon drives (src/lb/builtin.c). proxy_main() is the `rollout proxy` verb. */
#ifndef ROLLOUT_PROXY_PROXY_H
#define ROLLOUT_PROXY_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/config.h"
#include "proxy/stats.h"

/* Limits and timeouts (ms). */
#define PROXY_HEAD_TIMEOUT 10000     /* a client request head: 408 */
#define PROXY_IDLE_TIMEOUT 60000     /* a client between requests, and any body that stalls */
#define PROXY_CONNECT_TIMEOUT 3000   /* an upstream connect: try another backend, else 502 */
#define PROXY_RESPONSE_TIMEOUT 30000 /* an upstream response head: 504 */
#define PROXY_POOL_IDLE 4000         /* an idle pooled upstream connection is closed after this (below
					 * common backend keep-alive timeouts, e.g. node.js 5 s) */
#define PROXY_STOP_GRACE 30000       /* SIGTERM: in-flight work gets this long */
#define PROXY_RETRIES 2              /* a request is tried on at most 1 + this many connections */
#define PROXY_RETRY_BUF (64 * 1024)  /* a request body up to this is kept for a retry */
#define PROXY_HIGH_WATER (256 * 1024) /* queued output above this stops reading the other side */
#define PROXY_MAX_CONNS 10000         /* client connections open at once (--max-conns) */
#define PROXY_HEAD_BUDGET (32u << 20) /* bytes all partial request heads may hold (--head-budget) */
#define PROXY_HEAD_BUDGET_MIN (32u << 10) /* a budget below two full-size head buffers is refused */
#define PROXY_BIND_RETRY 1000 /* a listen address that cannot be bound is tried again this often */

/* Limits set on the command line (cmd_proxy.c). */
struct proxy_limits {
	uint64_t max_conns;  /* 1.. : one more client connection is answered 503 (tcp: closed) */
	uint64_t head_budget; /* >= PROXY_HEAD_BUDGET_MIN: see struct proxy's head_bytes */
};

struct proxy;
struct proxy_service;

/* Counters of one revision of one service. */
struct proxy_rev {
	int revision;
	struct proxy_counters c;
	struct proxy_rev *next;
};

/* A backend. Freed once it is out of the set (REMOVED) and nothing refers to it. */
struct proxy_backend {
	struct proxy_service *svc;
	uint64_t id;
	int revision;
	char addr[PROXY_ADDR_MAX];
	struct sockaddr_storage sa;
	enum proxy_state state;
	int weight;                /* 1..PROXY_MAX_WEIGHT: share of new work (changes in place) */
	uint32_t inflight;         /* http: requests sent and not fully answered; tcp: open connections */
	struct proxy_upstream *idle; /* the pool of idle upstream connections */
	uint32_t nidle;
	struct proxy_upstream *ups;  /* every upstream connection to it */
	struct proxy_tconn *tconns;  /* every tcp-mode connection to it */
	int refs;                    /* connections that point here */
	struct proxy_counters c;
	struct proxy_rev *rev;
};

struct proxy_service {
	struct proxy *px;
	struct proxy_service *next;
	char *name;
	char listen[PROXY_ADDR_MAX];          /* the address configured */
	struct sockaddr_storage listen_sa;
	int tcp;
	uv_tcp_t *listener; /* NULL once closed, or while nothing is bound yet */
	/* The address listener is bound to: listen, or (while listen cannot be bound) the one
	 * configured before, still serving; "" when none. */
	char bound[PROXY_ADDR_MAX];
	/* listen cannot be bound: the last error (negative errno) and since when (wall clock ms);
	 * the proxy tries again every PROXY_BIND_RETRY. 0 when bound. */
	int bind_err;
	int64_t bind_since;
	struct proxy_backend **be; /* the set, plus removed ones still busy */
	size_t nbe;
	uint64_t rr;
	struct proxy_rev *revs;
	int refs;    /* clients + 1 while configured */
	int removed; /* DELETE'd: freed when refs reach 0 */
};

struct proxy {
	uv_loop_t *loop;
	struct proxy_admin *admin;
	struct proxy_service *services;
	char boot_id[33];
	uv_signal_t sigterm, sigint;
	uv_timer_t stop_timer;
	uv_timer_t bind_timer; /* runs while a service's listen address is not bound */
	int stopping;
	uint64_t nconns; /* open client connections (http and tcp) */
	struct proxy_client *clients;
	struct proxy_limits lim;
	/* Buffer bytes held by HTTP clients waiting for (the rest of) a request head, and those
	 * clients, oldest first: when a buffer would grow past lim.head_budget, the oldest get 503
	 * and are closed until it fits (http.c, head_room). */
	uint64_t head_bytes;
	struct proxy_client *heads, *heads_tail;
	uint64_t refused;      /* connections refused over lim.max_conns */
	uint64_t heads_evicted; /* clients closed to keep partial heads within the budget */
	/* timeouts in ms: the PROXY_*_TIMEOUT defaults, or ROLLOUT_PROXY_TIMEOUTS="head,idle,connect,response"
	 * (for tests) */
	uint64_t t_head, t_idle, t_connect, t_response;
};

/* ---- proxy.c ---- */
/* Runs the proxy with its admin socket at admin_path and the limits lim until SIGTERM; returns an
 * exit status. */
int proxy_main(const char *admin_path, const struct proxy_limits *lim);
/* Picks a backend of svc for new work, skipping ids in skip[0..nskip). NULL when none. */
struct proxy_backend *proxy_choose(struct proxy_service *svc, const uint64_t *skip, size_t nskip);
/* Drops one reference; frees the backend if removed and unreferenced. */
void proxy_backend_unref(struct proxy_backend *be);
void proxy_service_unref(struct proxy_service *svc);
/* Called when a client connection closed: lets a stopping proxy exit. */
void proxy_conn_gone(struct proxy *px);
/* Records a finished request of backend be. */
void proxy_record(struct proxy_backend *be, int status, uint64_t us);
/* Monotonic microseconds (the loop's cached time is too coarse for latency). */
uint64_t proxy_now_us(void);

/* ---- http.c ---- */
struct proxy_client;
struct proxy_upstream;
/* Accepts one client connection on server and refuses it at once: an HTTP service's client is
 * sent a 503 (best effort, nothing is kept for it), a tcp one is just closed. */
void proxy_refuse(struct proxy_service *svc, uv_stream_t *server);
/* Accepts one client connection on svc's listener (HTTP mode). */
void proxy_http_accept(struct proxy_service *svc, uv_stream_t *server);
/* Closes the idle pooled connections of be. */
void proxy_http_close_idle(struct proxy_backend *be);
/* Closes every upstream connection of be (the in-flight requests fail with 502). */
void proxy_http_close_all(struct proxy_backend *be);
/* SIGTERM: closes clients waiting for a request; the others close after their response. */
void proxy_http_stop(struct proxy *px);

/* ---- tcp.c ---- */
struct proxy_tconn;
void proxy_tcp_accept(struct proxy_service *svc, uv_stream_t *server);
/* Closes every tcp-mode connection of be. */
void proxy_tcp_close_all(struct proxy_backend *be);

#endif
