/*
 * Which route and upstream each queued message goes to next (SPEC 7.2).
 * A message whose recipients fall into several routes is sent once per
 * route; m->routes_tried says which were tried in this round.
 */
#ifndef SMTPD_ROUTE_H
#define SMTPD_ROUTE_H

#include "queue.h"
#include "routes.h"
#include "upstream.h"

void	route_init(const struct routes *, const char *hostname);
const struct routes *route_table(void);
int	route_of_rcpt(const struct qmsg *, uint32_t rcpt);
int	route_next(const struct qmsg *);
int	route_upstream(int route);
int	route_more(const struct qmsg *);

#endif
