/*
 * A reload in the relay (SPEC section 12): between POLICY_BEGIN and
 * POLICY_END the parent sends the new settings, and in relay mode the
 * upstreams, routes and credentials; all of it is taken at the end,
 * with the new policy (relay.c).  What the relay was built on (its
 * users, chroot, queue, mode) cannot change: the parent kept it.
 */
#include <string.h>

#include <bsd/string.h>

#include "conf.h"
#include "forward.h"
#include "log.h"
#include "metrics_http.h"
#include "relay.h"

static struct {
	struct smtpd_conf	 conf;
	struct routes		 routes;
	struct upstream_auth	 auth[ROUTES_UPSTREAMS_MAX];
	int			 conf_loaded, routes_loaded;
} next;

/*
 * The limits a worker's sessions were told, for a worker of before the
 * last reload: the larger of the old and the new settings.
 */
const struct smtpd_conf *
relay_conf_larger(const struct smtpd_conf *cur, const struct smtpd_conf *old)
{
	static struct smtpd_conf	 c;

	c = *cur;
	if (old->max_sessions > c.max_sessions)
		c.max_sessions = old->max_sessions;
	if (old->max_size > c.max_size)
		c.max_size = old->max_size;
	c.smtputf8 |= old->smtputf8;
	return &c;
}

void
relay_reload_begin(void)
{
	metrics_http_reload_begin();
	routes_free(&next.routes);
	explicit_bzero(next.auth, sizeof(next.auth));
	next.conf_loaded = next.routes_loaded = 0;
}

/* The new settings, which keep what the relay was built on. */
int
relay_reload_conf(struct imsg *imsg, const struct smtpd_conf *cur)
{
	if (next.conf_loaded || conf_recv(imsg, &next.conf) == -1 ||
	    !conf_kept_same(&next.conf, cur))
		return -1;
	next.conf_loaded = 1;
	return 0;
}

/* The number of upstreams a reload brings, 0 if none. */
uint32_t
relay_reload_nups(void)
{
	return next.routes.nups;
}

int
relay_reload_route(struct imsg *imsg)
{
	next.routes_loaded = 1;
	return routes_recv(&next.routes, imsg);
}

/*
 * An upstream's credentials: at start-up (nups, the number of the
 * upstreams) for the upstream at once, else a reload's for its end.
 */
int
relay_auth_recv(struct imsg *imsg, uint32_t nups)
{
	char		 user[AUTH_FIELD_MAX + 1], pass[AUTH_FIELD_MAX + 1];
	uint32_t	 idx;
	int		 rc = -1;

	if (imsg_get_u32(imsg, &idx) == 0 && idx < (nups > 0 ? nups :
	    next.routes.nups) && imsg_get_str(imsg, user, sizeof(user)) == 0 &&
	    imsg_get_str(imsg, pass, sizeof(pass)) == 0 &&
	    imsg_get_end(imsg) == 0) {
		rc = 0;
		if (nups > 0)
			up_set_auth(idx, user, pass);
		else {
			strlcpy(next.auth[idx].user, user,
			    sizeof(next.auth[idx].user));
			strlcpy(next.auth[idx].pass, pass,
			    sizeof(next.auth[idx].pass));
		}
	}
	explicit_bzero(user, sizeof(user));
	explicit_bzero(pass, sizeof(pass));
	return rc;
}

/*
 * The upstreams of before stay first, in their order (the parent sends
 * them so), new ones come after.  The messages in flight finish on
 * their connections; what is not yet in flight takes the new routes,
 * on new connections with the new credentials.
 */
static void
reload_routes(struct routes *routes)
{
	struct routes	 old;
	uint32_t	 i;

	for (i = 0; i < routes->nups; i++)
		if (i >= next.routes.nups || strcmp(routes->ups[i].name,
		    next.routes.ups[i].name) != 0)
			fatalx("reload: the upstreams changed their order");
	old = *routes;
	*routes = next.routes;
	routes_init(&next.routes);
	up_reload(routes, next.auth);
	explicit_bzero(next.auth, sizeof(next.auth));
	routes_free(&old);
	log_info("event=routes-reloaded upstreams=%u routes=%u",
	    routes->nups, routes->nroutes);
}

/* POLICY_END: the settings (the old ones kept in old) and routes. */
void
relay_reload_end(struct smtpd_conf *conf, struct smtpd_conf *old,
    struct routes *routes)
{
	if (next.conf_loaded) {
		*old = *conf;
		*conf = next.conf;
	}
	if (next.routes_loaded && conf->mode == MODE_RELAY)
		reload_routes(routes);
	routes_free(&next.routes);
	next.conf_loaded = next.routes_loaded = 0;
	metrics_http_reload_end();
	/* New connections with the new settings and credentials. */
	if (conf->mode == MODE_RELAY)
		forward_reload();
}
