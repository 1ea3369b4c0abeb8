/*
 * The scheduler and the upstream connections of relay mode.  Messages
 * wait on their own timer until their next attempt, then join the ready
 * list; up to FWD_MAX_CONNS connections take them in turn and are reused
 * while there is work.  When the upstream cannot be reached, nothing
 * hammers it: one probe per queue-retry interval, and when a probe gets
 * through every message that waited for it goes at once.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "client.h"
#include "forward.h"
#include "scheduler.h"
#include "log.h"

enum fconn_state {
	FCONN_CONNECTING,
	FCONN_HANDSHAKE,	/* greeting and EHLO */
	FCONN_IDLE,
	FCONN_BUSY,
	FCONN_QUITTING,
};

struct fconn {
	struct fconn		*next;
	enum fconn_state	 state;
	int			 fd;		/* until the client owns it */
	struct client		*client;
	struct qmsg		*msg;
	int			 spoolfd;
	uint32_t		*tried;		/* rcpt indexes sent */
	const char		**rcpts;
	char			 prepend[1024];
	struct ev_timer		 timer;
	char			 addr[INET6_ADDRSTRLEN + 8];
};

static struct {
	const struct smtpd_conf	*conf;
	forward_resolve_cb	 resolve;
	struct fconn		*conns;
	unsigned int		 nconns;
	struct sockaddr_storage	 addrs[FWD_MAX_ADDRS];
	socklen_t		 addrlens[FWD_MAX_ADDRS];
	unsigned int		 naddrs;
	unsigned int		 next_addr;
	int			 down;		/* the upstream is unreachable */
	unsigned int		 failed_in_row;	/* connections that failed */
	int			 probe_due;
	struct ev_timer		 probe_timer;
	SSL_CTX			*tls_ctx;	/* NULL: plain text upstream */
	char			 auth_user[AUTH_FIELD_MAX + 1];	/* "": no AUTH */
	char			 auth_pass[AUTH_FIELD_MAX + 1];
} fwd;

static void	forward_kick(void);
static void	fconn_next(struct fconn *);

/* New upstream addresses from the parent. */
void
forward_set_addrs(const struct sockaddr_storage *ss, const socklen_t *lens,
    unsigned int n)
{
	unsigned int	 i;

	if (n > FWD_MAX_ADDRS)
		n = FWD_MAX_ADDRS;
	for (i = 0; i < n; i++) {
		fwd.addrs[i] = ss[i];
		fwd.addrlens[i] = lens[i];
	}
	fwd.naddrs = n;
	fwd.next_addr = 0;
	log_debug("event=upstream-addresses count=%u", n);
	forward_kick();
}

static void
fconn_free(struct fconn *c)
{
	struct fconn	**cp;

	for (cp = &fwd.conns; *cp != NULL; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	fwd.nconns--;
	ev_timer_del(&c->timer);
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

static void
probe_timer(void *arg)
{
	(void)arg;
	fwd.probe_due = 1;
	forward_kick();
}

/* The upstream could not be reached: wait, then try once. */
static void
upstream_failed(const char *addr, const char *why)
{
	/* Another address may answer: try them all before giving up. */
	if (++fwd.failed_in_row < fwd.naddrs && !fwd.down) {
		log_info("event=upstream-connect-failed upstream=%s "
		    "reason=%s action=next-address", addr, log_qq(why));
		return;
	}
	fwd.failed_in_row = 0;
	log_warnx("event=upstream-unreachable upstream=%s reason=%s "
	    "retry_in=%us", addr, log_qq(why), fwd.conf->queue_retry);
	fwd.down = 1;
	fwd.probe_due = 0;
	if (!ev_timer_pending(&fwd.probe_timer))
		ev_timer_add(&fwd.probe_timer,
		    (uint64_t)fwd.conf->queue_retry * 1000);
	if (fwd.resolve != NULL)
		fwd.resolve();
}

int
forward_is_down(void)
{
	return fwd.down;
}

/* smtpctl flush: an upstream marked down is tried again at once. */
void
forward_flush(void)
{
	if (fwd.conf == NULL)
		return;
	if (fwd.down) {
		ev_timer_del(&fwd.probe_timer);
		fwd.probe_due = 1;
	}
	forward_kick();
}

/* The upstream answered: everything that waited for it goes now. */
static void
upstream_up(void)
{
	fwd.failed_in_row = 0;
	if (!fwd.down)
		return;
	log_info("event=upstream-reachable");
	fwd.down = 0;
	fwd.probe_due = 0;
	ev_timer_del(&fwd.probe_timer);
	sched_retry_now();
}

static void
fconn_fail(struct fconn *c, const char *why)
{
	upstream_failed(c->addr, why);
	fconn_free(c);
	forward_kick();
}

static void
fconn_timeout(void *arg)
{
	struct fconn	*c = arg;

	if (c->state == FCONN_IDLE) {
		c->state = FCONN_QUITTING;
		client_quit(c->client);
		c->client = NULL;
		fconn_free(c);
		return;
	}
	fconn_fail(c, "connect timeout");
}

static void
fconn_ready(struct client *cl, int ok, const char *text, void *arg)
{
	struct fconn	*c = arg;

	(void)cl;
	if (!ok) {
		client_free(c->client);
		c->client = NULL;
		fconn_fail(c, text);
		return;
	}
	log_debug("event=upstream-connected upstream=%s tls=%s auth=%s",
	    c->addr, client_tls(c->client) ? "yes" : "no",
	    client_authenticated(c->client) ? "yes" : "no");
	upstream_up();
	fconn_next(c);
	forward_kick();
}

/* The client's TLS mode for the configured one. */
static int
fconn_tls_mode(void)
{
	switch (fwd.conf->upstream_tls) {
	case UPSTREAM_STARTTLS:
		return CLIENT_TLS_STARTTLS;
	case UPSTREAM_TLS:
		return CLIENT_TLS_IMPLICIT;
	case UPSTREAM_OPPORTUNISTIC:
		/* A password never goes out in clear text but by request. */
		if (fwd.auth_user[0] != '\0')
			return CLIENT_TLS_STARTTLS;
		/* Without a context (no CA store) the default is plain. */
		return fwd.tls_ctx != NULL ? CLIENT_TLS_OPPORTUNISTIC :
		    CLIENT_TLS_NONE;
	default:
		return CLIENT_TLS_NONE;
	}
}

static void
fconn_connected(int fd, int events, void *arg)
{
	struct fconn	*c = arg;
	int		 err = 0, on = 1;
	socklen_t	 len = sizeof(err);

	(void)events;
	ev_timer_del(&c->timer);
	ev_del(fd);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		fconn_fail(c, strerror(err));
		return;
	}
	/* Our last write of a message is the dot: never hold it back. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c->fd = -1;
	c->state = FCONN_HANDSHAKE;
	if ((c->client = client_new(fd, fwd.conf->hostname, fconn_ready,
	    c)) == NULL) {
		close(fd);
		fconn_fail(c, "out of memory");
		return;
	}
	/*
	 * The name verified is the one configured, not the address.  TLS
	 * asked for and no context is a failure, never clear text.
	 */
	if ((fconn_tls_mode() != CLIENT_TLS_NONE && (fwd.tls_ctx == NULL ||
	    client_set_tls(c->client, fwd.tls_ctx, fconn_tls_mode(),
	    fwd.conf->upstream_host) == -1)) ||
	    client_set_auth(c->client, fwd.auth_user, fwd.auth_pass) == -1) {
		client_free(c->client);
		c->client = NULL;
		fconn_fail(c, "cannot set up TLS or AUTH");
	}
}

/* Open one more connection to the upstream. */
static void
fconn_open(void)
{
	struct fconn		*c;
	struct sockaddr_storage	*ss;
	socklen_t		 len;
	char			 ip[INET6_ADDRSTRLEN];
	uint16_t		 port;

	if (fwd.naddrs == 0) {
		upstream_failed(fwd.conf->upstream_host, "no address");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->spoolfd = -1;
	ss = &fwd.addrs[fwd.next_addr];
	len = fwd.addrlens[fwd.next_addr];
	fwd.next_addr = (fwd.next_addr + 1) % fwd.naddrs;
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, ip,
		    sizeof(ip));
		port = ntohs(((struct sockaddr_in *)ss)->sin_port);
		snprintf(c->addr, sizeof(c->addr), "%s:%u", ip, port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr,
		    ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
		snprintf(c->addr, sizeof(c->addr), "[%s]:%u", ip, port);
	}
	c->next = fwd.conns;
	fwd.conns = c;
	fwd.nconns++;
	ev_timer_set(&c->timer, fconn_timeout, c);
	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		fconn_fail(c, strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)ss, len) == -1 &&
	    errno != EINPROGRESS) {
		fconn_fail(c, strerror(errno));
		return;
	}
	c->state = FCONN_CONNECTING;
	if (ev_add(c->fd, EV_WRITE, fconn_connected, c) == -1) {
		fconn_fail(c, "ev_add");
		return;
	}
	ev_timer_add(&c->timer, FWD_CONNECT_MS);
}

/* Give ready messages to idle connections; open more if needed. */
static void
forward_kick(void)
{
	struct fconn	*c, *next;
	unsigned int	 connecting = 0;

	for (c = fwd.conns; c != NULL && sched_has_ready(); c = next) {
		next = c->next;
		if (c->state == FCONN_IDLE) {
			ev_timer_del(&c->timer);
			fconn_next(c);
		}
	}
	for (c = fwd.conns; c != NULL; c = c->next)
		if (c->state == FCONN_CONNECTING ||
		    c->state == FCONN_HANDSHAKE)
			connecting++;
	while (sched_has_ready() && fwd.nconns < FWD_MAX_CONNS) {
		if (fwd.down) {
			/* One probe at a time, when its time has come. */
			if (!fwd.probe_due || connecting > 0)
				return;
			fwd.probe_due = 0;
			fconn_open();
			return;
		}
		/* Do not open more connections than there are messages. */
		if (sched_ready_count(connecting + 1) <= connecting)
			return;
		fconn_open();
		connecting++;
	}
}

/*
 * The Received: header of RFC 5321 4.4 for m; the client's address is
 * written as an address literal (4.1.3), never looked up.
 */
static void
forward_received(const struct qmsg *m, char *buf, size_t len)
{
	char		 date[64], literal[INET6_ADDRSTRLEN + 8];
	time_t		 t = (time_t)m->created;
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(literal, sizeof(literal), "%s%s",
	    strchr(m->peer_ip, ':') != NULL ? "IPv6:" : "", m->peer_ip);
	if (m->nrcpt == 1)
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s\r\n\tfor <%s>; %s\r\n", m->helo,
		    literal, fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id,
		    m->rcpts[0].addr, date);
	else
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s;\r\n\t%s\r\n", m->helo, literal,
		    fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id, date);
}

static void
fconn_done(struct client *cl, struct client_result *res, void *arg)
{
	struct fconn	*c = arg;
	struct qmsg	*m = c->msg;
	uint32_t	 i, n = 0;

	(void)cl;
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
		    "result=%s code=%d reply=%s", m->id, c->addr,
		    log_qpath(r->addr), r->state == RCPT_DONE ? "delivered" :
		    r->state == RCPT_FAILED ? "failed" : "deferred",
		    rr->code, log_qq(r->text));
	}
	close(c->spoolfd);
	c->spoolfd = -1;
	c->msg = NULL;
	sched_done(m);
	if (res->broken || (res->status != 2 && res->code == 0)) {
		/* The connection broke: it cannot be used again. */
		client_free(c->client);
		c->client = NULL;
		fconn_free(c);
		forward_kick();
		return;
	}
	fconn_next(c);
}

/* Send the next ready message on c, or let c idle. */
static void
fconn_next(struct fconn *c)
{
	struct client_msg	 cm;
	struct qmsg		*m;
	uint32_t		 i, n;

	while ((m = sched_pop()) != NULL)
		if ((c->spoolfd = sched_open(m)) != -1)
			break;
	if (m == NULL) {
		c->state = FCONN_IDLE;
		ev_timer_add(&c->timer, FWD_IDLE_MS);
		return;
	}
	free(c->tried);
	free(c->rcpts);
	c->tried = calloc(m->nrcpt, sizeof(*c->tried));
	c->rcpts = calloc(m->nrcpt, sizeof(*c->rcpts));
	if (c->tried == NULL || c->rcpts == NULL)
		fatal("forward rcpts");
	for (i = 0, n = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING) {
			c->tried[n] = i;
			c->rcpts[n++] = m->rcpts[i].addr;
		}
	m->state = QMSG_SENDING;
	c->msg = m;
	c->state = FCONN_BUSY;
	forward_received(m, c->prepend, sizeof(c->prepend));
	memset(&cm, 0, sizeof(cm));
	cm.mail_from = m->from;
	cm.rcpts = c->rcpts;
	cm.nrcpt = n;
	cm.size = m->size;
	cm.body_8bit = (m->flags & ENV_F_8BIT) != 0;
	cm.smtputf8 = (m->flags & ENV_F_SMTPUTF8) != 0;
	cm.spool_fd = c->spoolfd;
	cm.prepend = c->prepend;
	cm.x_peer_ip = fwd.conf->x_peer && !m->is_bounce ? m->peer_ip : NULL;
	if (client_send(c->client, &cm, fconn_done, c) == -1) {
		log_warnx("event=send-failed queue_id=%s", m->id);
		close(c->spoolfd);
		c->spoolfd = -1;
		c->msg = NULL;
		sched_push(m);
		client_free(c->client);
		c->client = NULL;
		fconn_free(c);
	}
}

/* The client TLS context, made before the sandbox (upstream tls). */
void
forward_set_tls(SSL_CTX *ctx)
{
	fwd.tls_ctx = ctx;
}

/* Credentials for AUTH to the upstream, from the parent. */
void
forward_set_auth(const char *user, const char *password)
{
	strlcpy(fwd.auth_user, user, sizeof(fwd.auth_user));
	strlcpy(fwd.auth_pass, password, sizeof(fwd.auth_pass));
}

void
forward_init(const struct smtpd_conf *conf, forward_resolve_cb resolve)
{
	fwd.conf = conf;
	fwd.resolve = resolve;
	ev_timer_set(&fwd.probe_timer, probe_timer, NULL);
	sched_init(conf, forward_kick);
}
