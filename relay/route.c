/*
 * Routes in the relay: a recipient's route is found from the message's
 * sender, its authenticated user and the recipient's domain; bounces and
 * <> take the default route.  The upstream of a route is the first of
 * its list that is not down.
 */
#include <stdio.h>

#include "addr.h"
#include "route.h"

static const struct routes	*rtab;
static const char		*hostname;

void
route_init(const struct routes *r, const char *host)
{
	rtab = r;
	hostname = host;
}

const struct routes *
route_table(void)
{
	return rtab;
}

int
route_of_rcpt(const struct qmsg *m, uint32_t i)
{
	int	 r;

	/* The reserved postmaster goes to the default route (SPEC 7.1). */
	if (addr_is_postmaster(m->rcpts[i].addr, hostname))
		r = routes_default(rtab);
	else
		r = routes_match(rtab, m->is_bounce ? "" : m->from,
		    m->auth_user, m->rcpts[i].addr);
	return r < 0 || r >= 64 ? 0 : r;
}

/* The first route with recipients pending and not tried this round. */
int
route_next(const struct qmsg *m)
{
	uint32_t	 i;
	int		 r, best = -1;

	for (i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i].state != RCPT_PENDING)
			continue;
		r = route_of_rcpt(m, i);
		if ((m->routes_tried & (1ULL << r)) == 0 &&
		    (best == -1 || r < best))
			best = r;
	}
	return best;
}

/* Whether m has recipients left in routes not tried this round. */
int
route_more(const struct qmsg *m)
{
	return route_next(m) != -1;
}

/* The upstream for route now: the first up; -1 when all are down. */
int
route_upstream(int route)
{
	const struct route_conf	*rt;
	struct upstream		*u;
	uint32_t		 i;

	if (route < 0 || (uint32_t)route >= rtab->nroutes)
		return -1;
	rt = &rtab->routes[route];
	for (i = 0; i < rt->nvia; i++)
		if ((u = up_get(rt->via[i])) != NULL && !u->down)
			return (int)rt->via[i];
	return -1;
}
