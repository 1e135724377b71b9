/* libcurl multi driven by a libuv loop: curl's sockets watched with uv_poll handles, curl's timer
 * as a uv_timer, and each finished transfer handed back to its owner exactly once. */
#ifndef ROLLOUT_UTIL_CURLUV_H
#define ROLLOUT_UTIL_CURLUV_H

#include <curl/curl.h>
#include <uv.h>

/* One curl multi handle on one loop. */
struct curluv;

/* Runs once per completed transfer, from the loop (never inside curluv_add): the easy is out of
 * the multi by then and the callback owns it (cleans it up). res is the transfer's result. */
typedef void (*curluv_done_cb)(CURL *easy, CURLcode res, void *arg);

/* A new multi handle on loop (curl_global_init is held until it is freed). Returns 0 and *out,
 * -EINVAL without a loop, or -EIO when libcurl cannot start. */
int curluv_new(uv_loop_t *loop, struct curluv **out);
/* Adds easy (still owned by the caller; curluv uses its CURLOPT_PRIVATE while it is in flight,
 * so the caller must not set that option). done(easy, result, arg) runs exactly once from the
 * loop when the transfer completes. Returns 0, or a negative errno (-ESHUTDOWN after
 * curluv_free, -ENOMEM, -EINVAL, -EIO) and then done is never called. */
int curluv_add(struct curluv *m, CURL *easy, curluv_done_cb done, void *arg);
/* Cancels an in-flight easy: removed from the multi, done is not called; the caller still owns
 * it and cleans it up. A no-op for an easy that is not in flight on m (never added, or whose
 * done already ran). */
void curluv_cancel(struct curluv *m, CURL *easy);
/* Frees m: easies still in flight are cancelled (their owners must have been told by then and
 * clean them up), no done runs after this, and memory is freed in libuv close callbacks (run the
 * loop afterwards), so this is safe from inside a done callback. curluv_free(NULL) is a no-op. */
void curluv_free(struct curluv *m);

#endif
