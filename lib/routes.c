/*
 * Upstreams and routes (SPEC section 7.2).  A route picks, by envelope
 * sender, authenticated user and recipient domain, the upstreams to try
 * in order; the first route that matches wins, and one without
 * conditions is the default (bounces and <> take it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "policy.h"
#include "proto.h"
#include "routes.h"

void
routes_init(struct routes *r)
{
	memset(r, 0, sizeof(*r));
}

static void
route_free(struct route_conf *rt)
{
	strlist_free(&rt->senders);
	strlist_free(&rt->users);
	strlist_free(&rt->domains);
}

void
routes_free(struct routes *r)
{
	uint32_t	 i;

	for (i = 0; i < r->nroutes; i++)
		route_free(&r->routes[i]);
	free(r->routes);
	free(r->ups);
	routes_init(r);
}

/* A new upstream called name, with the defaults; NULL when full. */
struct upstream_conf *
routes_add_upstream(struct routes *r, const char *name)
{
	struct upstream_conf	*u;

	if (r->nups == ROUTES_UPSTREAMS_MAX || strlen(name) >=
	    UPSTREAM_NAME_MAX || routes_find_upstream(r, name) != -1)
		return NULL;
	if ((u = reallocarray(r->ups, r->nups + 1, sizeof(*u))) == NULL)
		return NULL;
	r->ups = u;
	u = &r->ups[r->nups++];
	memset(u, 0, sizeof(*u));
	strlcpy(u->name, name, sizeof(u->name));
	u->port = 25;
	u->tls = UPSTREAM_OPPORTUNISTIC;
	u->verify = 1;
	u->max_conns = DEFAULT_UPSTREAM_CONNS;
	return u;
}

int
routes_find_upstream(const struct routes *r, const char *name)
{
	uint32_t	 i;

	for (i = 0; i < r->nups; i++)
		if (strcmp(r->ups[i].name, name) == 0)
			return (int)i;
	return -1;
}

struct route_conf *
routes_add_route(struct routes *r)
{
	struct route_conf	*rt;

	if (r->nroutes == ROUTES_MAX)
		return NULL;
	if ((rt = reallocarray(r->routes, r->nroutes + 1, sizeof(*rt))) ==
	    NULL)
		return NULL;
	r->routes = rt;
	rt = &r->routes[r->nroutes++];
	memset(rt, 0, sizeof(*rt));
	return rt;
}

static int
route_is_default(const struct route_conf *rt)
{
	return rt->senders.n == 0 && rt->users.n == 0 && rt->domains.n == 0;
}

/* The first route without conditions; -1 if there is none. */
int
routes_default(const struct routes *r)
{
	uint32_t	 i;

	for (i = 0; i < r->nroutes; i++)
		if (route_is_default(&r->routes[i]))
			return (int)i;
	return -1;
}

/* A default route via the legacy upstreams, or via them all. */
static int
routes_add_default(struct routes *r, int legacy_only)
{
	struct route_conf	*rt;
	uint32_t		 i;

	if ((rt = routes_add_route(r)) == NULL)
		return -1;
	for (i = 0; i < r->nups && rt->nvia < ROUTE_VIA_MAX; i++)
		if (!legacy_only || r->ups[i].legacy)
			rt->via[rt->nvia++] = i;
	return 0;
}

/*
 * Once the file is read: there must be a default route.  Without any
 * route line, it goes via the legacy upstreams if any, else via every
 * named one in order.
 */
int
routes_finish(struct routes *r, const char *conffile, FILE *errs)
{
	if (r->nups == 0 || routes_default(r) != -1)
		return 0;
	if (r->nlegacy > 0)
		return routes_add_default(r, 1);
	if (r->nroutes == 0)
		return routes_add_default(r, 0);
	fprintf(errs, "%s:%u: route: no default route (a route with no "
	    "sender, user or domain)\n", conffile, r->routes[0].line);
	return -1;
}

static int
route_matches(const struct route_conf *rt, const char *sender,
    const char *user, const char *rcpt)
{
	char		 dom[ADDR_DOMAIN_MAX + 1];
	const char	*at;

	if (rt->senders.n > 0 && (sender == NULL || *sender == '\0' ||
	    !entry_match(&rt->senders, sender)))
		return 0;
	if (rt->users.n > 0 && (user == NULL || *user == '\0' ||
	    !strlist_has(&rt->users, user)))
		return 0;
	if (rt->domains.n > 0) {
		if ((at = strrchr(rcpt, '@')) == NULL ||
		    domain_normalize(at + 1, dom, sizeof(dom)) == -1 ||
		    !strlist_has(&rt->domains, dom))
			return 0;
	}
	return 1;
}

/*
 * The route of one recipient; the default when none matches, and for
 * <> (bounces).  -1 only when there is no route at all.
 */
int
routes_match(const struct routes *r, const char *sender, const char *user,
    const char *rcpt)
{
	uint32_t	 i;

	if (sender != NULL && *sender != '\0')
		for (i = 0; i < r->nroutes; i++)
			if (route_matches(&r->routes[i], sender, user, rcpt))
				return (int)i;
	return routes_default(r);
}

/* The envelope sender towards rt's upstreams (<> is never rewritten). */
void
routes_rewrite(const struct route_conf *rt, const char *from, char *out,
    size_t len)
{
	const char	*at;

	if (rt->rewrite[0] == '\0' || from[0] == '\0') {
		strlcpy(out, from, len);
		return;
	}
	if (rt->rewrite[0] != '@') {
		strlcpy(out, rt->rewrite, len);
		return;
	}
	if ((at = strrchr(from, '@')) == NULL)
		at = from + strlen(from);
	if ((size_t)(at - from) + strlen(rt->rewrite) >= len) {
		strlcpy(out, from, len);
		return;
	}
	snprintf(out, len, "%.*s%s", (int)(at - from), from, rt->rewrite);
}

static void
add_strlist(struct imsg_out *out, const struct strlist *l)
{
	size_t	 i;

	imsg_add_u32(out, (uint32_t)l->n);
	for (i = 0; i < l->n; i++)
		imsg_add_str(out, l->v[i]);
}

/* The upstreams (without their auth files) and the routes. */
int
routes_send(struct imsgbuf *ib, const struct routes *r)
{
	const struct upstream_conf	*u;
	const struct route_conf		*rt;
	struct imsg_out			 out;
	uint32_t			 i, j;

	for (i = 0; i < r->nups; i++) {
		u = &r->ups[i];
		imsg_out_init(&out, IMSG_CONF_UPSTREAM, 0, -1);
		imsg_add_str(&out, u->name);
		imsg_add_str(&out, u->host);
		imsg_add_u32(&out, u->port);
		imsg_add_u32(&out, u->tls);
		imsg_add_u32(&out, u->verify);
		imsg_add_u32(&out, u->max_conns);
		imsg_add_u32(&out, u->rate_n);
		imsg_add_u32(&out, u->rate_period);
		imsg_add_str(&out, u->ca);
		if (imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	for (i = 0; i < r->nroutes; i++) {
		rt = &r->routes[i];
		imsg_out_init(&out, IMSG_CONF_ROUTE, 0, -1);
		imsg_add_u32(&out, rt->nvia);
		for (j = 0; j < rt->nvia; j++)
			imsg_add_u32(&out, rt->via[j]);
		imsg_add_str(&out, rt->rewrite);
		add_strlist(&out, &rt->senders);
		add_strlist(&out, &rt->users);
		add_strlist(&out, &rt->domains);
		if (out.overflow || imsgbuf_queue(ib, &out) == -1)
			return -1;
	}
	return 0;
}

static int
get_strlist(struct imsg *imsg, struct strlist *l)
{
	char		 s[ADDR_PATH_MAX + 1];
	uint32_t	 i, n;

	if (imsg_get_u32(imsg, &n) == -1 || n > 4096)
		return -1;
	for (i = 0; i < n; i++)
		if (imsg_get_str(imsg, s, sizeof(s)) == -1 || s[0] == '\0' ||
		    strlist_add(l, s) == -1)
			return -1;
	return 0;
}

static int
upstream_recv(struct routes *r, struct imsg *imsg)
{
	struct upstream_conf	*u;
	char			 name[UPSTREAM_NAME_MAX];

	if (imsg_get_str(imsg, name, sizeof(name)) == -1 ||
	    (u = routes_add_upstream(r, name)) == NULL)
		return -1;
	if (imsg_get_str(imsg, u->host, sizeof(u->host)) == -1 ||
	    imsg_get_u32(imsg, &u->port) == -1 ||
	    imsg_get_u32(imsg, &u->tls) == -1 ||
	    imsg_get_u32(imsg, &u->verify) == -1 ||
	    imsg_get_u32(imsg, &u->max_conns) == -1 ||
	    imsg_get_u32(imsg, &u->rate_n) == -1 ||
	    imsg_get_u32(imsg, &u->rate_period) == -1 ||
	    imsg_get_str(imsg, u->ca, sizeof(u->ca)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if (u->host[0] == '\0' || u->port == 0 || u->port > 65535 ||
	    u->tls > UPSTREAM_OPPORTUNISTIC || u->max_conns == 0 ||
	    u->max_conns > 1024 || (u->rate_n > 0 && u->rate_period == 0))
		return -1;
	return 0;
}

/* Take one IMSG_CONF_UPSTREAM or _ROUTE; -1 if it is malformed. */
int
routes_recv(struct routes *r, struct imsg *imsg)
{
	struct route_conf	*rt;
	uint32_t		 i;

	if (imsg->hdr.type == IMSG_CONF_UPSTREAM)
		return upstream_recv(r, imsg);
	if (imsg->hdr.type != IMSG_CONF_ROUTE ||
	    (rt = routes_add_route(r)) == NULL)
		return -1;
	if (imsg_get_u32(imsg, &rt->nvia) == -1 || rt->nvia == 0 ||
	    rt->nvia > ROUTE_VIA_MAX)
		return -1;
	for (i = 0; i < rt->nvia; i++)
		if (imsg_get_u32(imsg, &rt->via[i]) == -1 ||
		    rt->via[i] >= r->nups)
			return -1;
	if (imsg_get_str(imsg, rt->rewrite, sizeof(rt->rewrite)) == -1 ||
	    get_strlist(imsg, &rt->senders) == -1 ||
	    get_strlist(imsg, &rt->users) == -1 ||
	    get_strlist(imsg, &rt->domains) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	return 0;
}
