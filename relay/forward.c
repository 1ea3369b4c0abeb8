/*
 * The upstream connections of relay mode (SPEC 7.2).  Ready messages
 * are taken by route: each goes to the first upstream of its route that
 * is not down, on an idle connection of that upstream, or on one opened
 * for it, up to max-connections and as its rate allows.  Connecting and
 * the greeting have upstream-connect-timeout together; a reused idle
 * connection is probed with RSET first.  A connection that has waited
 * FWD_STALL_MS without progress no longer counts against the limit, so
 * a hung upstream connection holds only its own message, which is not
 * sent again before its wait is over.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "client.h"
#include "control.h"
#include "forward.h"
#include "log.h"
#include "route.h"
#include "scheduler.h"

enum fconn_state {
	FCONN_CONNECTING,
	FCONN_HANDSHAKE,	/* greeting, EHLO, TLS, AUTH */
	FCONN_IDLE,
	FCONN_PROBING,		/* RSET before reuse */
	FCONN_BUSY,
};

struct fconn {
	struct fconn		*next;
	enum fconn_state	 state;
	int			 fd;		/* until the client owns it */
	struct client		*client;
	struct upstream		*up;
	int			 used;		/* took a message before */
	int			 probe;		/* opened to probe a down one */
	int			 stale;		/* of before a reload: no reuse */
	uint64_t		 done_ms;	/* ev_now() at its last 250 */
	struct qmsg		*msg;
	int			 route;
	int			 spoolfd;
	uint32_t		*tried;		/* rcpt indexes sent */
	const char		**rcpts;
	char			 from[ADDR_PATH_MAX + 1];
	char			 prepend[1024];
	struct ev_timer		 timer;
	char			 addr[INET6_ADDRSTRLEN + 8];
};

static struct {
	const struct smtpd_conf	*conf;
	struct fconn		*conns;
	uint64_t		 connect_ms;
	uint64_t		 rset_ms;
	struct ev_timer		 tick;
	unsigned int		 demand[ROUTES_UPSTREAMS_MAX];
	int			 probe_wanted[ROUTES_UPSTREAMS_MAX];
} fwd;

static void	forward_kick(void);
static void	fconn_next(struct fconn *);

static void
fconn_free(struct fconn *c)
{
	struct fconn	**cp;

	for (cp = &fwd.conns; *cp != NULL; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	ev_timer_del(&c->timer);
	if (c->client != NULL)
		client_free(c->client);
	if (c->fd != -1) {
		ev_del(c->fd);
		close(c->fd);
	}
	if (c->spoolfd != -1)
		close(c->spoolfd);
	free(c->tried);
	free(c->rcpts);
	free(c);
}

/* The message taken for c goes back to the ready list, untried. */
static void
fconn_unassign(struct fconn *c)
{
	if (c->msg == NULL)
		return;
	if (c->spoolfd != -1)
		close(c->spoolfd);
	c->spoolfd = -1;
	sched_push(c->msg);
	c->msg = NULL;
}

/* Failed before the envelope: the upstream is down or next address. */
static void
fconn_fail(struct fconn *c, const char *why)
{
	/* Once down, only its probe says more: one back-off step each. */
	if (!c->up->down || c->probe)
		up_failed(c->up, c->addr, why);
	else
		log_info("event=upstream-connect-failed upstream=%s reason=%s "
		    "upstream_name=%s", c->addr, log_qq(why),
		    c->up->conf->name);
	/* Not an attempt of the message's (no back-off), but its event. */
	if (c->msg != NULL)
		log_info("event=attempt queue_id=%s upstream=%s "
		    "result=deferred reason=%s upstream_name=%s", c->msg->id,
		    c->addr, log_qq(why), c->up->conf->name);
	fconn_unassign(c);
	fconn_free(c);
	forward_kick();
}

static void
fconn_timeout(void *arg)
{
	struct fconn	*c = arg;

	if (c->state == FCONN_IDLE) {
		client_quit(c->client);
		c->client = NULL;
		fconn_free(c);
		return;
	}
	fconn_fail(c, c->state == FCONN_CONNECTING ? "connect timeout" :
	    "greeting timeout");
}

static void
fconn_ready(struct client *cl, int ok, const char *text, void *arg)
{
	struct fconn	*c = arg;

	(void)cl;
	if (!ok) {
		fconn_fail(c, text);
		return;
	}
	ev_timer_del(&c->timer);
	log_debug("event=upstream-connected upstream=%s tls=%s auth=%s "
	    "upstream_name=%s", c->addr, client_tls(c->client) ? "yes" : "no",
	    client_authenticated(c->client) ? "yes" : "no", c->up->conf->name);
	up_ok(c->up);
	c->probe = 0;
	fconn_next(c);
	forward_kick();
}

static void
fconn_connected(int fd, int events, void *arg)
{
	struct fconn	*c = arg;
	struct upstream	*u = c->up;
	int		 err = 0, on = 1, mode = up_tls_mode(u);
	socklen_t	 len = sizeof(err);

	(void)events;
	ev_del(fd);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		fconn_fail(c, strerror(err));
		return;
	}
	/* Our last write of a message is the dot: never hold it back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->state = FCONN_HANDSHAKE;
	if ((c->client = client_new(fd, fwd.conf->hostname, fconn_ready,
	    c)) == NULL) {
		fconn_fail(c, "out of memory");
		return;
	}
	c->fd = -1;
	/*
	 * The name verified is the one configured, not the address.  TLS
	 * asked for and no context is a failure, never clear text.
	 */
	if ((mode != CLIENT_TLS_NONE && (u->tls_ctx == NULL ||
	    client_set_tls(c->client, u->tls_ctx, mode, u->conf->host) ==
	    -1)) || client_set_auth(c->client, u->auth_user, u->auth_pass) ==
	    -1)
		fconn_fail(c, "cannot set up TLS or AUTH");
}

/* Open one more connection to u; the timer covers the greeting too. */
static void
fconn_open(struct upstream *u, int probe)
{
	struct fconn		*c;
	struct sockaddr_storage	*ss;
	socklen_t		 len;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->spoolfd = -1;
	c->fd = -1;
	c->up = u;
	c->probe = probe;
	c->next = fwd.conns;
	fwd.conns = c;
	ev_timer_set(&c->timer, fconn_timeout, c);
	if (probe)
		u->probing = 1;
	if (up_next_addr(u, &ss, &len, c->addr, sizeof(c->addr)) == -1) {
		strlcpy(c->addr, u->conf->host, sizeof(c->addr));
		fconn_fail(c, "no address");
		return;
	}
	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1 || (connect(c->fd, (struct sockaddr *)ss, len) == -1 &&
	    errno != EINPROGRESS)) {
		fconn_fail(c, strerror(errno));
		return;
	}
	c->state = FCONN_CONNECTING;
	if (ev_add(c->fd, EV_WRITE, fconn_connected, c) == -1) {
		fconn_fail(c, "ev_add");
		return;
	}
	ev_timer_add(&c->timer, fwd.connect_ms);
}

/* Whether c counts against its upstream's max-connections. */
static int
fconn_counts(const struct fconn *c)
{
	return !(c->state == FCONN_BUSY && c->client != NULL &&
	    client_stalled_ms(c->client) > FWD_STALL_MS);
}

/*
 * The ready list a message joins: the route it takes next, found once
 * as it becomes ready (the routes are fixed until a restart); none when
 * it has nothing left to send (only a DSN to make).
 */
static int
ready_class(const struct qmsg *m)
{
	int	 route;

	if ((route = route_next(m)) == -1)
		return SCHED_CLASS_NONE;
	return route;
}

/*
 * Ready messages with nothing left to send go to sched_done(), each
 * once: one that comes back ready (a DSN not made yet) waits for the
 * next scan.
 */
static void
forward_finish_none(void)
{
	struct qmsg	*m;
	unsigned int	 n = sched_ready_n(SCHED_CLASS_NONE);

	while (n-- > 0 && (m = sched_ready_first(SCHED_CLASS_NONE)) != NULL) {
		sched_take(m);
		sched_done(m);
	}
}

/* Count the demand of the ready messages, per upstream, by route. */
static void
forward_demand(void)
{
	const struct routes	*r = route_table();
	struct upstream		*u;
	uint32_t		 i, route;
	unsigned int		 n;
	int			 up;

	memset(fwd.demand, 0, sizeof(fwd.demand));
	memset(fwd.probe_wanted, 0, sizeof(fwd.probe_wanted));
	forward_finish_none();
	for (route = 0; route < r->nroutes; route++) {
		if ((n = sched_ready_n((int)route)) == 0)
			continue;
		if ((up = route_upstream((int)route)) >= 0) {
			fwd.demand[up] += n;
			continue;
		}
		/* Every upstream of the route is down: probe them. */
		for (i = 0; i < r->routes[route].nvia; i++)
			if ((u = up_get(r->routes[route].via[i])) != NULL &&
			    up_probe_due(u))
				fwd.probe_wanted[u->index] = 1;
	}
	/* A down upstream listed before the one in use is probed too. */
	for (i = 0; i < up_count(); i++)
		if ((u = up_get(i))->down && up_probe_due(u) &&
		    fwd.demand[i] == 0 && sched_has_ready())
			fwd.probe_wanted[i] = 1;
}

/* Open what the demand of upstream u needs, within its limits. */
static void
forward_open(struct upstream *u)
{
	struct fconn	*c;
	unsigned int	 counted = 0, waiting = 0, need;

	if (u->down) {
		if (fwd.probe_wanted[u->index] && up_probe_due(u))
			fconn_open(u, 1);
		return;
	}
	for (c = fwd.conns; c != NULL; c = c->next) {
		if (c->up != u)
			continue;
		if (fconn_counts(c))
			counted++;
		if (c->state == FCONN_CONNECTING ||
		    c->state == FCONN_HANDSHAKE || c->state == FCONN_IDLE)
			waiting++;
	}
	need = fwd.demand[u->index];
	/* The rate lets one go at a time: one connection waits for it. */
	if (up_rate_wait(u) > 0 && need > 1)
		need = 1;
	while (need > waiting && counted < u->conf->max_conns && !u->down) {
		fconn_open(u, 0);
		counted++;
		waiting++;
	}
}

static void
tick_timer(void *arg)
{
	(void)arg;
	forward_kick();
}

/* Give ready messages to idle connections; open more where needed. */
static void
forward_kick(void)
{
	struct fconn	*c, *next;
	uint32_t	 i;

	for (c = fwd.conns; c != NULL && sched_has_ready(); c = next) {
		next = c->next;
		if (c->state == FCONN_IDLE) {
			ev_timer_del(&c->timer);
			fconn_next(c);
		}
	}
	forward_demand();
	for (i = 0; i < up_count(); i++)
		forward_open(up_get(i));
	if (sched_has_ready() && !ev_timer_pending(&fwd.tick))
		ev_timer_add(&fwd.tick, FWD_TICK_MS);
}

/*
 * The Received: header of RFC 5321 4.4 for m; the client's address is
 * written as an address literal (4.1.3), never looked up.
 */
static void
forward_received(const struct qmsg *m, char *buf, size_t len)
{
	/* The messages of one second share their date, formatted once. */
	static struct {
		time_t	 t;
		char	 text[64];
	}		 date = { -1, "" };
	char		 literal[INET6_ADDRSTRLEN + 8];
	time_t		 t = (time_t)m->created;
	struct tm	 tm;

	if (t != date.t) {
		gmtime_r(&t, &tm);
		strftime(date.text, sizeof(date.text),
		    "%a, %d %b %Y %H:%M:%S +0000", &tm);
		date.t = t;
	}
	snprintf(literal, sizeof(literal), "%s%s",
	    strchr(m->peer_ip, ':') != NULL ? "IPv6:" : "", m->peer_ip);
	if (m->nrcpt == 1)
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s\r\n\tfor <%s>; %s\r\n", m->helo,
		    literal, fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id,
		    m->rcpts[0].addr, date.text);
	else
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s;\r\n\t%s\r\n", m->helo, literal,
		    fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id, date.text);
}

/* The results of the recipients tried on c. */
static void
fconn_results(struct fconn *c, const struct client_result *res)
{
	struct qmsg	*m = c->msg;
	uint32_t	 i, n = 0;

	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];
		struct client_rcpt_result *rr;

		if (r->state != RCPT_PENDING || c->tried[n] != i)
			continue;
		rr = &res->rcpt[n++];
		r->code = rr->code;
		strlcpy(r->text, rr->code ? rr->text : res->text,
		    sizeof(r->text));
		if (rr->code >= 200 && rr->code < 300)
			r->state = RCPT_DONE;
		else if (rr->code >= 500)
			r->state = RCPT_FAILED;
		log_info("event=attempt queue_id=%s upstream=%s rcpt=%s "
		    "result=%s code=%d reply=%s upstream_name=%s", m->id,
		    c->addr, log_qpath(r->addr), r->state == RCPT_DONE ?
		    "delivered" : r->state == RCPT_FAILED ? "failed" :
		    "deferred", rr->code, log_qq(r->text), c->up->conf->name);
	}

	/* The metrics: each outcome, by the upstream that gave it. */
	for (i = 0; i < n; i++)
		stats_rcpt(c->up->conf->name, &m->rcpts[c->tried[i]],
		    m->created);
}

/*
 * After one route's attempt: the next route of the message goes now
 * (what was delivered marked first), or the round is over.
 */
static void
fconn_msg_done(struct qmsg *m, int route)
{
	m->routes_tried |= 1ULL << route;
	if (route_more(m)) {
		if (queue_mark(m) == -1)
			log_warn("event=queue-error queue_id=%s op=mark",
			    m->id);
		sched_push(m);
		return;
	}
	sched_done(m);
}

/*
 * A reused connection failed before the upstream took anything (it was
 * closed while we held it idle, or just after the last message): as
 * for a failed probe, the message goes on another connection at once,
 * untried.  The kick waits for the loop: this may
 * run inside forward_kick()'s walk of the connections.
 */
static void
fconn_reuse_failed(struct fconn *c, struct client *cl, const char *why)
{
	log_info("event=upstream-reuse-failed upstream=%s reason=%s "
	    "upstream_name=%s", c->addr, log_qq(why), c->up->conf->name);
	c->client = NULL;
	client_free(cl);
	fconn_unassign(c);
	fconn_free(c);
	ev_timer_add(&fwd.tick, 0);
}

static void
fconn_done(struct client *cl, struct client_result *res, void *arg)
{
	struct fconn	*c = arg;
	struct qmsg	*m = c->msg;

	if (c->used && res->not_begun) {
		fconn_reuse_failed(c, cl, res->text);
		return;
	}
	fconn_results(c, res);
	close(c->spoolfd);
	c->spoolfd = -1;
	c->msg = NULL;
	fconn_msg_done(m, c->route);
	if (c->stale && !res->broken) {
		/* Its credentials and settings are of before a reload. */
		client_quit(c->client);
		c->client = NULL;
		fconn_free(c);
		forward_kick();
		return;
	}
	if (res->broken || (res->status != 2 && res->code == 0)) {
		/* The connection broke: it cannot be used again. */
		c->client = NULL;
		client_free(cl);
		fconn_free(c);
		forward_kick();
		return;
	}
	c->used = 1;
	c->done_ms = ev_now();
	fconn_next(c);
	forward_kick();
}

/* Send c's message: its route's recipients, its sender rewritten. */
static void
fconn_send(struct fconn *c)
{
	const struct routes	*r = route_table();
	struct client_msg	 cm;
	struct qmsg		*m = c->msg;
	uint32_t		 i, n;

	for (i = 0, n = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING &&
		    route_of_rcpt(m, i) == c->route) {
			c->tried[n] = i;
			c->rcpts[n++] = m->rcpts[i].addr;
		}
	c->state = FCONN_BUSY;
	routes_rewrite(&r->routes[c->route], m->is_bounce ? "" : m->from,
	    c->from, sizeof(c->from));
	forward_received(m, c->prepend, sizeof(c->prepend));
	memset(&cm, 0, sizeof(cm));
	cm.mail_from = c->from;
	cm.rcpts = c->rcpts;
	cm.nrcpt = n;
	cm.size = m->size;
	cm.body_8bit = (m->flags & ENV_F_8BIT) != 0;
	cm.smtputf8 = (m->flags & ENV_F_SMTPUTF8) != 0;
	cm.spool_fd = c->spoolfd;
	cm.prepend = c->prepend;
	cm.x_peer_ip = fwd.conf->x_peer && !m->is_bounce ? m->peer_ip : NULL;
	cm.queue_id = m->id;
	if (client_send(c->client, &cm, fconn_done, c) == -1) {
		log_warnx("event=send-failed queue_id=%s", m->id);
		fconn_unassign(c);
		fconn_free(c);
	}
}

/* The RSET probe of a reused connection answered, or failed. */
static void
fconn_probed(struct client *cl, int ok, const char *text, void *arg)
{
	struct fconn	*c = arg;

	(void)cl;
	if (!ok) {
		/* Not the upstream's failure: a new connection may work. */
		log_info("event=upstream-reuse-failed upstream=%s reason=%s "
		    "upstream_name=%s", c->addr, log_qq(text),
		    c->up->conf->name);
		fconn_unassign(c);
		fconn_free(c);
		forward_kick();
		return;
	}
	fconn_send(c);
}

/*
 * The oldest ready message that goes to c's upstream now: the oldest
 * head of the ready lists of the routes whose upstream in use it is.
 */
static struct qmsg *
fconn_pick(struct fconn *c, int *routep)
{
	const struct routes	*r = route_table();
	struct qmsg		*m, *best = NULL;
	uint32_t		 route;

	forward_finish_none();
	for (route = 0; route < r->nroutes; route++) {
		if ((m = sched_ready_first((int)route)) == NULL ||
		    (best != NULL && m->rseq > best->rseq) ||
		    route_upstream((int)route) != (int)c->up->index)
			continue;
		best = m;
		*routep = (int)route;
	}
	if (best != NULL)
		sched_take(best);
	return best;
}

/* Take the next message for c's upstream, or let c idle. */
static void
fconn_next(struct fconn *c)
{
	struct qmsg	*m;
	uint64_t	 wait;
	int		 route = 0;

	if ((wait = up_rate_wait(c->up)) > 0) {
		if (!ev_timer_pending(&c->up->timer))
			ev_timer_add(&c->up->timer, wait);
		m = NULL;
	} else
		while ((m = fconn_pick(c, &route)) != NULL)
			if ((c->spoolfd = sched_open(m)) != -1)
				break;
	if (m == NULL) {
		c->state = FCONN_IDLE;
		ev_timer_add(&c->timer, FWD_IDLE_MS + wait);
		return;
	}
	free(c->tried);
	free(c->rcpts);
	c->tried = calloc(m->nrcpt, sizeof(*c->tried));
	c->rcpts = calloc(m->nrcpt, sizeof(*c->rcpts));
	if (c->tried == NULL || c->rcpts == NULL)
		fatal("forward rcpts");
	m->state = QMSG_SENDING;
	c->msg = m;
	c->route = route;
	/* Taken now, not at the send: other connections check it too. */
	up_rate_take(c->up);
	/*
	 * The RSET probe is for a connection that sat idle: one whose
	 * upstream answered a moment ago goes on at once, a round trip a
	 * message saved.  Should it have closed meanwhile, nothing was
	 * taken and the message goes on another (fconn_reuse_failed()).
	 */
	if (!c->used || ev_now() - c->done_ms < FWD_FRESH_MS) {
		fconn_send(c);
		return;
	}
	c->state = FCONN_PROBING;
	if (client_probe(c->client, fwd.rset_ms, fconn_probed, c) == -1) {
		fconn_unassign(c);
		fconn_free(c);
	}
}

/*
 * smtpctl flush: every upstream marked down may be probed at once,
 * whatever its back-off, and the ready mail goes.
 */
void
forward_flush(void)
{
	struct upstream	*u;
	uint32_t	 i;

	if (fwd.conf == NULL)
		return;
	for (i = 0; i < up_count(); i++)
		if ((u = up_get(i)) != NULL && u->down)
			u->retry_at = 0;
	forward_kick();
}

/* Upstream i for the metrics: 1 up, 0 down, -1 if there is none. */
int
forward_upstream(uint32_t i, const char **name)
{
	struct upstream	*u;

	if (fwd.conf == NULL || i >= up_count() || (u = up_get(i)) == NULL)
		return -1;
	*name = u->conf->name;
	return !u->down;
}

/*
 * A reload: the connections are of the old settings, upstreams and
 * credentials.  A message in flight finishes on its connection, which
 * then closes; every other connection closes now (a message waiting
 * for one goes back to the ready list), and new ones are opened as the
 * mail needs them.
 */
void
forward_reload(void)
{
	struct fconn	*c, *next;

	if (fwd.conf == NULL)
		return;
	fwd.connect_ms = (uint64_t)fwd.conf->upstream_connect_timeout * 1000;
	fwd.rset_ms = (uint64_t)fwd.conf->upstream_rset_timeout * 1000;
	for (c = fwd.conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == FCONN_BUSY) {
			c->stale = 1;
			continue;
		}
		if (c->probe)
			c->up->probing = 0;
		if (c->state == FCONN_IDLE) {
			client_quit(c->client);
			c->client = NULL;
		}
		fconn_unassign(c);
		fconn_free(c);
	}
	forward_kick();
}

void
forward_init(const struct smtpd_conf *conf, const struct routes *r,
    upstream_resolve_cb resolve)
{
	fwd.conf = conf;
	fwd.connect_ms = (uint64_t)conf->upstream_connect_timeout * 1000;
	fwd.rset_ms = (uint64_t)conf->upstream_rset_timeout * 1000;
	ev_timer_set(&fwd.tick, tick_timer, NULL);
	route_init(r, conf->hostname);
	up_init(r, conf, resolve, forward_kick);
	sched_init(conf, forward_kick);
	sched_set_classify(ready_class);
}
