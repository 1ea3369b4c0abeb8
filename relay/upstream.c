/*
 * Upstream state in the relay.  An upstream that fails before the
 * envelope (refused, timed out, TLS) is marked down: its messages go to
 * the next upstream of their route at once, and it is probed again
 * after a back-off that starts at queue-retry and doubles up to an
 * hour.  A rate is kept by the generic cell rate algorithm: at most N
 * messages in any period, evenly spaced, a burst of max(1, N/10).
 */
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include <bsd/string.h>

#include "client.h"
#include "log.h"
#include "scheduler.h"
#include "upstream.h"

static struct {
	struct upstream		 ups[ROUTES_UPSTREAMS_MAX];
	uint32_t		 n;
	const struct smtpd_conf	*conf;
	upstream_resolve_cb	 resolve;
	void			(*kick)(void);
} upt;

static void
up_timer(void *arg)
{
	(void)arg;
	upt.kick();
}

/* The rate's spacing: N - burst in a period after the burst, at least 1. */
static void
up_rate_init(struct upstream *u)
{
	uint64_t	 n = u->conf->rate_n, burst, spaced;

	u->interval_ms = u->burst_ms = 0;
	if (n == 0)
		return;
	burst = n / 10 > 0 ? n / 10 : 1;
	spaced = n > burst ? n - burst : 1;
	u->interval_ms = (uint64_t)u->conf->rate_period * 1000 / spaced;
	if (u->interval_ms == 0)
		u->interval_ms = 1;
	u->burst_ms = (burst - 1) * u->interval_ms;
}

void
up_init(const struct routes *r, const struct smtpd_conf *conf,
    upstream_resolve_cb resolve, void (*kick)(void))
{
	uint32_t	 i;

	upt.conf = conf;
	upt.resolve = resolve;
	upt.kick = kick;
	upt.n = r->nups;
	for (i = 0; i < r->nups; i++) {
		upt.ups[i].conf = &r->ups[i];
		upt.ups[i].index = i;
		ev_timer_set(&upt.ups[i].timer, up_timer, &upt.ups[i]);
		up_rate_init(&upt.ups[i]);
	}
}

/*
 * A TLS context for a new upstream of a reload: one the relay made at
 * its start (the chroot has no CA store) with the same CA and check.
 */
static SSL_CTX *
up_tls_like(const struct routes *r, uint32_t i)
{
	uint32_t	 j;

	for (j = 0; j < upt.n; j++)
		if (upt.ups[j].tls_ctx != NULL &&
		    strcmp(r->ups[j].ca, r->ups[i].ca) == 0 &&
		    r->ups[j].verify == r->ups[i].verify)
			return upt.ups[j].tls_ctx;
	return NULL;
}

/*
 * A reload's upstreams: those of before come first, in their order, and
 * keep their state (down, back-off, addresses, TLS context); the new
 * ones are added.  Every credential is the reload's.
 */
void
up_reload(const struct routes *r, const struct upstream_auth *auth)
{
	struct upstream	*u;
	uint32_t	 i;

	for (i = 0; i < r->nups && i < ROUTES_UPSTREAMS_MAX; i++) {
		u = &upt.ups[i];
		u->conf = &r->ups[i];
		if (i >= upt.n) {
			u->index = i;
			ev_timer_set(&u->timer, up_timer, u);
			if (r->ups[i].tls != UPSTREAM_PLAIN)
				u->tls_ctx = up_tls_like(r, i);
		}
		up_rate_init(u);
		up_set_auth(i, auth[i].user, auth[i].pass);
	}
	upt.n = i;
}

struct upstream *
up_get(uint32_t i)
{
	return i < upt.n ? &upt.ups[i] : NULL;
}

uint32_t
up_count(void)
{
	return upt.n;
}

/* New addresses from the parent (before up_init() too, at start-up). */
void
up_set_addrs(uint32_t i, const struct sockaddr_storage *ss,
    const socklen_t *lens, unsigned int n)
{
	struct upstream	*u;
	unsigned int	 j;

	if (i >= ROUTES_UPSTREAMS_MAX)
		return;
	u = &upt.ups[i];
	if (n > FWD_MAX_ADDRS)
		n = FWD_MAX_ADDRS;
	for (j = 0; j < n; j++) {
		u->addrs[j] = ss[j];
		u->lens[j] = lens[j];
	}
	u->naddrs = n;
	u->next_addr = 0;
	log_debug("event=upstream-addresses upstream_name=%s count=%u",
	    u->conf != NULL ? u->conf->name : "-", n);
	if (upt.kick != NULL)
		upt.kick();
}

void
up_set_tls(uint32_t i, SSL_CTX *ctx)
{
	if (i < ROUTES_UPSTREAMS_MAX)
		upt.ups[i].tls_ctx = ctx;
}

void
up_set_auth(uint32_t i, const char *user, const char *pass)
{
	if (i >= ROUTES_UPSTREAMS_MAX)
		return;
	strlcpy(upt.ups[i].auth_user, user, sizeof(upt.ups[i].auth_user));
	strlcpy(upt.ups[i].auth_pass, pass, sizeof(upt.ups[i].auth_pass));
}

/* The next address to connect to, as text in buf too; -1 if none. */
int
up_next_addr(struct upstream *u, struct sockaddr_storage **ss,
    socklen_t *len, char *buf, size_t buflen)
{
	char		 ip[INET6_ADDRSTRLEN];
	uint16_t	 port;

	if (u->naddrs == 0)
		return -1;
	*ss = &u->addrs[u->next_addr];
	*len = u->lens[u->next_addr];
	u->next_addr = (u->next_addr + 1) % u->naddrs;
	if ((*ss)->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)*ss)->sin_addr, ip,
		    sizeof(ip));
		port = ntohs(((struct sockaddr_in *)*ss)->sin_port);
		snprintf(buf, buflen, "%s:%u", ip, port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)*ss)->sin6_addr,
		    ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)*ss)->sin6_port);
		snprintf(buf, buflen, "[%s]:%u", ip, port);
	}
	return 0;
}

/* A connection failed before the envelope: next address, or down. */
void
up_failed(struct upstream *u, const char *addr, const char *why)
{
	uint64_t	 backoff;

	u->probing = 0;
	if (++u->failed_in_row < u->naddrs && !u->down) {
		log_info("event=upstream-connect-failed upstream=%s "
		    "reason=%s action=next-address upstream_name=%s", addr,
		    log_qq(why), u->conf->name);
		return;
	}
	u->failed_in_row = 0;
	backoff = (uint64_t)upt.conf->queue_retry << (u->failures > 7 ? 7 :
	    u->failures);
	if (backoff > QUEUE_RETRY_MAX)
		backoff = QUEUE_RETRY_MAX;
	u->failures++;
	log_warnx("event=upstream-unreachable upstream=%s reason=%s "
	    "retry_in=%llus upstream_name=%s", addr, log_qq(why),
	    (unsigned long long)backoff, u->conf->name);
	u->down = 1;
	u->retry_at = ev_now() + backoff * 1000;
	ev_timer_add(&u->timer, backoff * 1000);
	if (upt.resolve != NULL)
		upt.resolve(u->index);
}

/* The upstream answered: what waited for it goes now. */
void
up_ok(struct upstream *u)
{
	u->failed_in_row = 0;
	u->probing = 0;
	if (!u->down)
		return;
	log_info("event=upstream-reachable upstream_name=%s", u->conf->name);
	u->down = 0;
	u->failures = 0;
	ev_timer_del(&u->timer);
	sched_retry_now();
}

/* Whether a down upstream may be tried again now (one probe at a time). */
int
up_probe_due(struct upstream *u)
{
	return u->down && !u->probing && ev_now() >= u->retry_at;
}

/* Milliseconds until the rate lets one more message go; 0: now. */
uint64_t
up_rate_wait(struct upstream *u)
{
	uint64_t	 now = ev_now();

	if (u->interval_ms == 0 || u->tat <= now + u->burst_ms)
		return 0;
	return u->tat - now - u->burst_ms;
}

void
up_rate_take(struct upstream *u)
{
	uint64_t	 now = ev_now();

	if (u->interval_ms == 0)
		return;
	u->tat = (u->tat > now ? u->tat : now) + u->interval_ms;
}

/* The client's TLS mode for the upstream's. */
int
up_tls_mode(const struct upstream *u)
{
	switch (u->conf->tls) {
	case UPSTREAM_STARTTLS:
		return CLIENT_TLS_STARTTLS;
	case UPSTREAM_TLS:
		return CLIENT_TLS_IMPLICIT;
	case UPSTREAM_OPPORTUNISTIC:
		/* A password never goes out in clear text but by request. */
		if (u->auth_user[0] != '\0')
			return CLIENT_TLS_STARTTLS;
		/* Without a context (no CA store) the default is plain. */
		return u->tls_ctx != NULL ? CLIENT_TLS_OPPORTUNISTIC :
		    CLIENT_TLS_NONE;
	default:
		return CLIENT_TLS_NONE;
	}
}
