/* Dispatch through a load balancer's table of operations. */
#include "lb/lb.h"

#include <errno.h>

int lb_set_backends(struct lb *lb, const char *service, const char *listen, const char *protocol,
		    const struct lb_backend *v, size_t n)
{
	return lb->ops->set_backends(lb, service, listen, protocol, v, n);
}

int lb_remove_service(struct lb *lb, const char *service)
{
	return lb->ops->remove_service(lb, service);
}

int lb_read_stats(struct lb *lb, const char *service)
{
	return lb->ops->read_stats != NULL ? lb->ops->read_stats(lb, service) : -ENOTSUP;
}

int lb_close_backend(struct lb *lb, const char *service, uint64_t id)
{
	return lb->ops->close_backend != NULL ? lb->ops->close_backend(lb, service, id) : 0;
}

int lb_inflight(struct lb *lb, const char *service, uint64_t id)
{
	return lb->ops->inflight != NULL ? lb->ops->inflight(lb, service, id) : -ENOTSUP;
}

void lb_close(struct lb *lb)
{
	if (lb != NULL)
		lb->ops->close(lb);
}
