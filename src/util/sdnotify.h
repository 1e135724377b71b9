/* The systemd notification protocol without libsystemd: datagrams such as "READY=1" to the unix
 * socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), and the watchdog
 * interval systemd asks for in $WATCHDOG_USEC (for this process when $WATCHDOG_PID says so). */
#ifndef ROLLOUT_UTIL_SDNOTIFY_H
#define ROLLOUT_UTIL_SDNOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."; lines separated by '\n').
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is not set (not run by systemd: nothing to do), or a
 * negative errno (a bad $NOTIFY_SOCKET, the send failed). */
int sdnotify_send(const char *state);
/* Milliseconds between watchdog pings systemd expects (WatchdogSec=), 0 when it expects none or
 * $WATCHDOG_PID names another process. */
uint64_t sdnotify_watchdog_ms(void);

#endif
