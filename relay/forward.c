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

#include "bounce.h"
#include "client.h"
#include "forward.h"
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
	struct qmsg		*all;
	struct qmsg		*ready_head;
	struct qmsg		*ready_tail;
	unsigned int		 nmsgs;
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
	struct ev_timer		 sweep_timer;
} fwd;

static void	forward_kick(void);
static void	fconn_next(struct fconn *);

static int64_t
now_sec(void)
{
	return (int64_t)time(NULL);
}

static void
ready_push(struct qmsg *m)
{
	ev_timer_del(&m->timer);
	m->state = QMSG_READY;
	m->rnext = NULL;
	if (fwd.ready_tail != NULL)
		fwd.ready_tail->rnext = m;
	else
		fwd.ready_head = m;
	fwd.ready_tail = m;
}

static struct qmsg *
ready_pop(void)
{
	struct qmsg	*m = fwd.ready_head;

	if (m != NULL) {
		fwd.ready_head = m->rnext;
		if (fwd.ready_head == NULL)
			fwd.ready_tail = NULL;
		m->rnext = NULL;
	}
	return m;
}

/* Take m off the ready list. */
static void
ready_remove(struct qmsg *m)
{
	struct qmsg	**mp;

	fwd.ready_tail = NULL;
	for (mp = &fwd.ready_head; *mp != NULL; mp = &(*mp)->rnext) {
		if (*mp == m)
			*mp = m->rnext;
		if (*mp == NULL)
			break;
		fwd.ready_tail = *mp;
	}
	m->rnext = NULL;
}

static void
msg_timer(void *arg)
{
	ready_push(arg);
	forward_kick();
}

/* Arm m's timer for its next attempt, or make it ready now. */
static void
msg_schedule(struct qmsg *m)
{
	int64_t	 now = now_sec();

	if (m->next_try <= now) {
		ready_push(m);
		return;
	}
	m->state = QMSG_WAITING;
	ev_timer_add(&m->timer, (uint64_t)(m->next_try - now) * 1000);
}

/* Take m off every list and free it. */
static void
msg_forget(struct qmsg *m)
{
	struct qmsg	**mp;

	ev_timer_del(&m->timer);
	for (mp = &fwd.all; *mp != NULL; mp = &(*mp)->next)
		if (*mp == m) {
			*mp = m->next;
			break;
		}
	fwd.nmsgs--;
	qmsg_free(m);
}

/* A queued message joins the scheduler (new, or loaded at start). */
void
forward_add(struct qmsg *m)
{
	ev_timer_set(&m->timer, msg_timer, m);
	m->next = fwd.all;
	fwd.all = m;
	fwd.nmsgs++;
	msg_schedule(m);
	forward_kick();
}

unsigned int
forward_count(void)
{
	return fwd.nmsgs;
}

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
		    "reason=\"%s\" action=next-address", addr, why);
		return;
	}
	fwd.failed_in_row = 0;
	log_warnx("event=upstream-unreachable upstream=%s reason=\"%s\" "
	    "retry_in=%us", addr, why, fwd.conf->queue_retry);
	fwd.down = 1;
	fwd.probe_due = 0;
	if (!ev_timer_pending(&fwd.probe_timer))
		ev_timer_add(&fwd.probe_timer,
		    (uint64_t)fwd.conf->queue_retry * 1000);
	if (fwd.resolve != NULL)
		fwd.resolve();
}

/* The upstream answered: everything that waited for it goes now. */
static void
upstream_up(void)
{
	struct qmsg	*m;

	fwd.failed_in_row = 0;
	if (!fwd.down)
		return;
	log_info("event=upstream-reachable");
	fwd.down = 0;
	fwd.probe_due = 0;
	ev_timer_del(&fwd.probe_timer);
	for (m = fwd.all; m != NULL; m = m->next)
		if (m->state == QMSG_STALLED || (m->state == QMSG_WAITING &&
		    m->attempts > 0)) {
			m->next_try = now_sec();
			ready_push(m);
		}
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
	log_debug("event=upstream-connected upstream=%s", c->addr);
	upstream_up();
	fconn_next(c);
	forward_kick();
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

	for (c = fwd.conns; c != NULL && fwd.ready_head != NULL; c = next) {
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
	while (fwd.ready_head != NULL && fwd.nconns < FWD_MAX_CONNS) {
		if (fwd.down) {
			/* One probe at a time, when its time has come. */
			if (!fwd.probe_due || connecting > 0)
				return;
			fwd.probe_due = 0;
			fconn_open();
			return;
		}
		/* Do not open more connections than there are messages. */
		{
			unsigned int waiting = 0;
			struct qmsg *m;

			for (m = fwd.ready_head; m != NULL && waiting <=
			    connecting; m = m->rnext)
				waiting++;
			if (waiting <= connecting)
				return;
		}
		fconn_open();
		connecting++;
	}
}

/* The Received: header of RFC 5321 4.4 for m. */
static void
forward_received(const struct qmsg *m, char *buf, size_t len)
{
	char		 date[64];
	time_t		 t = (time_t)m->created;
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (m->nrcpt == 1)
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s\r\n\tfor <%s>; %s\r\n", m->helo,
		    m->peer_ip, fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id,
		    m->rcpts[0].addr, date);
	else
		snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s "
		    "(smtpd) with %s id %s;\r\n\t%s\r\n", m->helo, m->peer_ip,
		    fwd.conf->hostname,
		    (m->flags & ENV_F_ESMTP) ? "ESMTP" : "SMTP", m->id, date);
}

/* Expire m's pending recipients (queue-lifetime is over). */
static void
msg_expire(struct qmsg *m)
{
	char		 last[QUEUE_TEXT_MAX], text[2 * QUEUE_TEXT_MAX];
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->state != RCPT_PENDING)
			continue;
		r->state = RCPT_FAILED;
		strlcpy(last, r->code ? r->text : "no reply", sizeof(last));
		snprintf(text, sizeof(text), "4.4.7 delivery time expired; "
		    "last reply: %s", last);
		strlcpy(r->text, text, sizeof(r->text));
		r->code = r->code ? r->code : 451;
		log_info("event=expired queue_id=%s rcpt=<%s>", m->id,
		    r->addr);
	}
}

/*
 * After an attempt: bounce what failed, remove m when nothing is left,
 * otherwise write its state and schedule the next attempt.
 */
static void
msg_after_attempt(struct qmsg *m)
{
	uint32_t	 i, pending = 0, failed = 0;
	uint64_t	 backoff;

	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_PENDING)
			pending++;
	if (pending > 0) {
		m->attempts++;
		backoff = (uint64_t)fwd.conf->queue_retry <<
		    (m->attempts > 16 ? 16 : m->attempts - 1);
		if (backoff > QUEUE_RETRY_MAX)
			backoff = QUEUE_RETRY_MAX;
		m->next_try = now_sec() + (int64_t)backoff;
		if (m->next_try > m->created + fwd.conf->queue_lifetime) {
			msg_expire(m);
			pending = 0;
		}
	}
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].state == RCPT_FAILED && !m->rcpts[i].bounced)
			failed++;
	if (failed > 0) {
		if (m->is_bounce || m->from[0] == '\0')
			log_info("event=bounce-suppressed queue_id=%s "
			    "reason=null-sender", m->id);
		else if (bounce_create(m, fwd.conf) == -1)
			log_warnx("event=bounce-failed queue_id=%s", m->id);
		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].state == RCPT_FAILED)
				m->rcpts[i].bounced = 1;
	}
	if (pending == 0) {
		queue_remove(m);
		log_info("event=removed queue_id=%s", m->id);
		msg_forget(m);
		return;
	}
	if (queue_update(m) == -1)
		log_warnx("event=queue-update-failed queue_id=%s", m->id);
	msg_schedule(m);
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
		log_info("event=attempt queue_id=%s upstream=%s rcpt=<%s> "
		    "result=%s code=%d reply=\"%s\"", m->id, c->addr, r->addr,
		    r->state == RCPT_DONE ? "delivered" :
		    r->state == RCPT_FAILED ? "failed" : "deferred",
		    rr->code, r->text);
	}
	close(c->spoolfd);
	c->spoolfd = -1;
	c->msg = NULL;
	msg_after_attempt(m);
	if (res->status != 2 && res->code == 0) {
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

	while ((m = ready_pop()) != NULL) {
		if ((c->spoolfd = queue_msg_open(m)) == -1) {
			log_warn("event=queue-error queue_id=%s op=open", m->id);
			m->next_try = now_sec() + fwd.conf->queue_retry;
			msg_schedule(m);
			continue;
		}
		break;
	}
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
	cm.size = m->size + strlen(c->prepend) + (fwd.conf->x_peer ?
	    strlen(m->peer_ip) + 10 : 0);
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
		ready_push(m);
		client_free(c->client);
		c->client = NULL;
		fconn_free(c);
	}
}

/* Expire what waits too long even while the upstream is down. */
static void
sweep_timer(void *arg)
{
	struct qmsg	*m, *next;

	(void)arg;
	for (m = fwd.all; m != NULL; m = next) {
		next = m->next;
		if (m->state == QMSG_SENDING || now_sec() <= m->created +
		    fwd.conf->queue_lifetime)
			continue;
		if (m->state == QMSG_READY)
			ready_remove(m);
		msg_expire(m);
		msg_after_attempt(m);
	}
	ev_timer_add(&fwd.sweep_timer, FWD_SWEEP_MS);
}

void
forward_init(const struct smtpd_conf *conf, forward_resolve_cb resolve)
{
	fwd.conf = conf;
	fwd.resolve = resolve;
	ev_timer_set(&fwd.probe_timer, probe_timer, NULL);
	ev_timer_set(&fwd.sweep_timer, sweep_timer, NULL);
	ev_timer_add(&fwd.sweep_timer, FWD_SWEEP_MS);
}
