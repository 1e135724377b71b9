/* The web dashboard (docs/dashboard.md): one self-contained HTML page, served at GET /, that is a
 * client of the daemon's API like the CLI; it holds no data, so it is served without the token. */
#ifndef ROLLOUT_DAEMON_DASHBOARD_H
#define ROLLOUT_DAEMON_DASHBOARD_H

#include <stddef.h>

#include "daemon/api.h"

/* The response headers of the page: a Content-Security-Policy that lets it run its own inline
 * script and style and talk to this origin only, nosniff, no framing, no referrer. */
#define DASHBOARD_HEADERS                                                                                    \
	"Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "                          \
	"style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; "                   \
	"form-action 'none'; frame-ancestors 'none'\r\n"                                                     \
	"X-Content-Type-Options: nosniff\r\n"                                                                \
	"X-Frame-Options: DENY\r\n"                                                                          \
	"Referrer-Policy: no-referrer\r\n"

/* The page (HTML with inline CSS and JavaScript, UTF-8); *len gets its length. Static storage. */
const char *dashboard_page(size_t *len);
/* Adds GET / to api as an open route (api_route_open) answering the page. */
void dashboard_register(struct api *api);

#endif
