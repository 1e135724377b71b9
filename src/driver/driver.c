/* Dispatch of the driver interface through its table of operations (see driver.h). */
#include "driver/driver.h"

#include <errno.h>

int drv_start(struct drv *d, const struct drv_start *req)
{
	return d->ops->start(d, req);
}

int drv_stop(struct drv *d, const char *service, uint64_t id, int signo, int64_t grace_ms)
{
	return d->ops->stop(d, service, id, signo, grace_ms);
}

int drv_adopt(struct drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	return d->ops->adopt(d, service, id, pid, proc_start);
}

int drv_proc_info(struct drv *d, const char *service, uint64_t id, int *pid, uint64_t *proc_start)
{
	return d->ops->proc_info(d, service, id, pid, proc_start);
}

void drv_close(struct drv *d)
{
	if (d != NULL)
		d->ops->close(d);
}
