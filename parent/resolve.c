/*
 * Resolution of the upstreams' names, in the parent: the relay is
 * sandboxed and makes no DNS query of its own.  These are the only
 * names smtpd ever looks up (SPEC section 9).
 */
#include <sys/socket.h>
#include <netdb.h>

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "parent.h"

/*
 * Send the relay the addresses of upstream idx (none if resolution
 * failed: the relay will ask again).
 */
void
parent_send_upstream(struct parent *p, struct child *relay, uint32_t idx)
{
	const struct upstream_conf *u = &p->routes.ups[idx];
	struct addrinfo	 hints, *res, *ai;
	struct imsg_out	 out;
	char		 port[8];
	uint32_t	 n = 0;
	int		 rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc != 0) {
		log_warnx("event=resolve-failed upstream=%s host=%s "
		    "reason=\"%s\"", u->name, u->host, gai_strerror(rc));
		res = NULL;
	}
	for (ai = res; ai != NULL && n < PARENT_UPSTREAM_ADDRS;
	    ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			n++;
	imsg_out_init(&out, IMSG_UPSTREAM_ADDRS, 0, -1);
	imsg_add_u32(&out, idx);
	imsg_add_u32(&out, n);
	for (ai = res; ai != NULL && n > 0; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
			imsg_add_sa(&out, ai->ai_addr, ai->ai_addrlen);
			n--;
		}
	if (res != NULL)
		freeaddrinfo(res);
	parent_child_send(relay, &out);
}

/* IMSG_RESOLVE: u32 the upstream's index; -1 if malformed. */
int
parent_resolve_request(struct parent *p, struct child *relay,
    struct imsg *imsg)
{
	uint32_t	 idx;

	if (imsg_get_u32(imsg, &idx) == -1 || imsg_get_end(imsg) == -1 ||
	    idx >= p->routes.nups)
		return -1;
	if (p->conf.mode == MODE_RELAY)
		parent_send_upstream(p, relay, idx);
	return 0;
}
