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

int drv_exec(struct drv *d, const struct drv_exec *req, drv_exec_cb cb, void *arg, struct drv_req **out)
{
	if (d == NULL || d->ops->exec == NULL)
		return -ENOTSUP;
	return d->ops->exec(d, req, cb, arg, out);
}

void drv_cancel(struct drv *d, struct drv_req *req)
{
	if (d != NULL && req != NULL && d->ops->cancel != NULL)
		d->ops->cancel(d, req);
}

void drv_close(struct drv *d)
{
	if (d != NULL)
		d->ops->close(d);
}
