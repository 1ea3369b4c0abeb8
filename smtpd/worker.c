/*
 * The session worker: start-up from the parent, the sandbox, accept(),
 * and the two channels (parent and relay).  Whatever the relay or the
 * parent sends is checked before use.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/unistd.h>
#include <stdio.h>

#include "conf.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "worker.h"

#define ACCEPT_BATCH	64

static struct worker	worker;		/* this process's only worker */

static void	worker_relay_io(int, int, void *);
static void	worker_flush(void);
static void	worker_accept(int, int, void *);

int
worker_is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
	    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
	    sin6->sin6_addr.s6_addr[12] == 127);
}

/* Refuse a connection with one line, without a session. */
void
worker_refuse(struct worker *w, int fd, const char *enh, const char *text)
{
	char	 line[512];
	int	 n;

	n = snprintf(line, sizeof(line), "421 %s %s %s\r\n", enh,
	    w->conf.hostname, text);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

/*
 * Take one connection: the worker's own limit here, the per-address one
 * in the parent (session_accept asks it).
 */
static void
worker_take(struct worker *w, int fd, struct sockaddr_storage *ss,
    uint32_t flags, const struct listen_proxy *lp)
{
	char	 ip[INET6_ADDRSTRLEN];

	worker_stat(w, STAT_SESSION);
	if (w->nsessions >= w->conf.max_sessions) {
		worker_stat(w, STAT_REFUSED + REFUSED_MAX_SESSIONS);
		if (ss->ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr,
			    ip, sizeof(ip));
		else
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)ss)->sin6_addr, ip,
			    sizeof(ip));
		log_warnx("event=refused session=" LOG_SID " client=%s "
		    "reason=max-sessions", session_new_id(w), ip);
		worker_refuse(w, fd, "4.3.2", "Error: too many sessions, "
		    "try again later");
		return;
	}
	session_accept(w, fd, ss, flags, lp);
}

/* Watch the listeners again (or for the first time). */
static void
worker_listen(struct worker *w)
{
	unsigned int	 i;

	for (i = 0; i < w->nlisteners; i++)
		if (ev_add(w->listeners[i], EV_READ | EV_EXCLUSIVE,
		    worker_accept, w) == -1)
			fatal("ev_add listener");
	w->paused = 0;
}

/*
 * Full: stop taking connections, so that the kernel hands them to the
 * other workers (EPOLLEXCLUSIVE wakes only the ones listening).  Only
 * if the worker is still full after WORKER_PAUSE_MS are clients turned
 * away with 421: then every worker is.
 */
static void
worker_pause(struct worker *w)
{
	unsigned int	 i;

	if (w->paused)
		return;
	for (i = 0; i < w->nlisteners; i++)
		ev_del(w->listeners[i]);
	w->paused = 1;
	ev_timer_add(&w->pause_timer, WORKER_PAUSE_MS);
	log_info("event=full sessions=%u action=pause", w->nsessions);
}

static void
worker_pause_over(void *arg)
{
	struct worker	*w = arg;

	if (w->paused && !w->stopping && !w->retiring) {
		w->full_for_long = w->nsessions >= w->conf.max_sessions;
		worker_listen(w);
	}
}

/*
 * An empty worker of a slot other than 0 leaves a new connection to the
 * others for WORKER_DEFER_MS, then takes what still waits.  Sessions
 * packed in few workers make each wake-up serve more events: on a
 * machine whose CPUs the clients and the relay share, two workers of
 * ten kept sessions each took half as much CPU again per message as
 * one of twenty.  A busy worker leaves connections waiting, and then
 * the others take them: the load spreads where one worker is slow.
 */
static int
worker_defer(struct worker *w)
{
	unsigned int	 i;

	if (w->slot == 0 || w->nsessions > 0 || w->defer_over ||
	    w->paused || w->deferring)
		return 0;
	for (i = 0; i < w->nlisteners; i++)
		ev_del(w->listeners[i]);
	w->deferring = 1;
	ev_timer_add(&w->defer_timer, WORKER_DEFER_MS);
	return 1;
}

static void
worker_defer_over(void *arg)
{
	struct worker	*w = arg;
	unsigned int	 i;

	if (!w->deferring || w->stopping || w->retiring)
		return;
	w->deferring = 0;
	w->defer_over = 1;
	for (i = 0; i < w->nlisteners; i++)
		worker_accept(w->listeners[i], EV_READ, w);
	w->defer_over = 0;
	if (!w->paused)
		worker_listen(w);
}

static void
worker_accept(int lfd, int events, void *arg)
{
	struct worker		*w = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	unsigned int		 l;
	const struct listen_proxy *lp = NULL;
	uint32_t		 flags = 0;
	int			 i, fd;

	(void)events;
	if (w->nsessions >= w->conf.max_sessions && !w->full_for_long) {
		worker_pause(w);
		return;
	}
	if (worker_defer(w))
		return;
	for (l = 0; l < w->nlisteners; l++)
		if (w->listeners[l] == lfd) {
			flags = w->listen_flags[l];
			lp = &w->listen_proxy[l];
		}
	for (i = 0; i < ACCEPT_BATCH && w->nlisteners > 0; i++) {
		/* Leave the rest to a worker with room. */
		if (w->nsessions >= w->conf.max_sessions && !w->full_for_long)
			break;
		slen = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &slen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			break;
		}
		if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
			close(fd);
			continue;
		}
		worker_take(w, fd, &ss, flags, lp);
	}
	if (w->nsessions >= w->conf.max_sessions && w->nlisteners > 0) {
		w->full_for_long = 0;
		worker_pause(w);
	}
}

/* Called when a session ends: prune counters, finish a stop. */
void
worker_session_gone(struct worker *w)
{
	if ((w->stopping || w->retiring) && w->nsessions == 0) {
		log_debug("last session closed, exiting");
		worker_flush();
		exit(0);
	}
	/* Room again: take connections. */
	if (w->paused && !w->stopping && !w->retiring &&
	    w->nsessions < w->conf.max_sessions) {
		ev_timer_del(&w->pause_timer);
		w->full_for_long = 0;
		worker_listen(w);
	}
}

static void
worker_report_load(void *arg)
{
	struct worker	*w = arg;
	struct imsg_out	 out;

	if (w->nsessions != w->reported_load) {
		imsg_out_init(&out, IMSG_LOAD, 0, -1);
		imsg_add_u32(&out, w->nsessions);
		worker_parent_send(w, &out);
		w->reported_load = w->nsessions;
	}
	ev_timer_add(&w->load_timer, 1000);
}

/* Queue a message for the parent and try to write it now. */
void
worker_parent_send(struct worker *w, struct imsg_out *out)
{
	if (proc_send(&w->parent, out) == -1)
		fatal("message to the parent");
}

/* An event for the metrics (STAT_*): the parent keeps the totals. */
void
worker_stat(struct worker *w, uint32_t what)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_STAT, 0, -1);
	imsg_add_u32(&out, what);
	worker_parent_send(w, &out);
}

/* A log line for the parent to give to syslog (in the background). */
static void
worker_log_sink(int pri, const char *line)
{
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_LOG, 0, -1);
	imsg_add_u32(&out, (uint32_t)pri);
	imsg_add_str(&out, line);
	/* Written at once: a fatal line must precede the exit after it. */
	(void)proc_send(&worker.parent, &out);
}

/*
 * Queue a message for the relay: it goes at the end of the event round
 * (worker_flush), with whatever the other sessions queued in it.
 */
void
worker_relay_send(struct worker *w, struct imsg_out *out)
{
	if (w->relay == NULL) {
		imsg_out_free(out);
		return;
	}
	if (proc_queue(w->relay, out) == -1)
		log_warn("message to the relay");
}

/* The end of an event round: what the sessions queued for the relay. */
static void
worker_flush(void)
{
	struct worker	*w = &worker;

	if (w->relay != NULL && imsgbuf_pending(w->relay) &&
	    proc_flush(w->relay) == -1)
		log_warn("message to the relay");
}

/* The relay went away: everything waiting on it fails temporarily. */
static void
worker_relay_lost(struct worker *w)
{
	struct session	*s, *next;
	size_t		 i;

	log_warnx("event=relay-lost");
	ev_del(w->relay->fd);
	close(w->relay->fd);
	imsgbuf_clear(w->relay);
	free(w->relay);
	w->relay = NULL;
	w->relay_gen++;
	for (i = 0; i < WORKER_HASH_SIZE; i++)
		for (s = w->sessions[i]; s != NULL; s = next) {
			next = s->hnext;
			if (s->spare_fd != -1) {
				close(s->spare_fd);
				s->spare_fd = -1;
			}
			s->open_ahead = 0;
			if (s->smtp.wait == SMTP_WAIT_OPEN)
				smtp_open_done(&s->smtp, -1);
			else if (s->smtp.wait == SMTP_WAIT_COMMIT)
				smtp_commit_done(&s->smtp, 0,
				    "queue unavailable, try again later");
			else
				continue;
			smtp_process(&s->smtp);
			session_update(s);
		}
}

/* A new relay channel (at start, or after the relay restarted). */
static void
worker_relay_set(struct worker *w, int fd)
{
	if (w->relay != NULL)
		worker_relay_lost(w);
	if ((w->relay = malloc(sizeof(*w->relay))) == NULL)
		fatal("relay channel");
	proc_nonblock(fd);
	imsgbuf_init(w->relay, fd);
	w->relay_gen++;
	if (ev_add(fd, EV_READ, worker_relay_io, w) == -1)
		fatal("ev_add relay");
}

/*
 * The relay's messages, about one session each.  imsg_rules[] has
 * checked the sender, descriptor and size; a bad one is fatal (the
 * relay is not supposed to lie).
 */
static int
worker_on_queue_space(struct proc_chan *ch, struct imsg *imsg)
{
	uint32_t	 low;

	(void)ch;
	/* The relay measured it; a client has no say in it. */
	if (imsg_get_u32(imsg, &low) == -1 || low > 1)
		return -1;
	smtp_queue_low = (int)low;
	return 0;
}

static void
worker_session_run(struct session *s)
{
	smtp_process(&s->smtp);
	session_update(s);
}

static int
worker_on_msg_fd(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;
	struct session	*s = session_find(w, imsg->hdr.peerid);
	struct imsg_out	 out;

	if (s != NULL && s->open_ahead && s->smtp.wait != SMTP_WAIT_OPEN &&
	    s->spare_fd == -1) {
		/* Asked at RCPT: DATA takes it. */
		s->open_ahead = 0;
		s->spare_fd = imsg->fd;
		imsg->fd = -1;
		return 0;
	}
	if (s == NULL || s->smtp.wait != SMTP_WAIT_OPEN) {
		/* The session left while the file was made. */
		imsg_out_init(&out, IMSG_MSG_ABORT, imsg->hdr.peerid, -1);
		worker_relay_send(w, &out);
		return 0;
	}
	s->open_ahead = 0;
	smtp_open_done(&s->smtp, imsg->fd);
	imsg->fd = -1;
	worker_session_run(s);
	return 0;
}

static int
worker_on_msg_full(struct proc_chan *ch, struct imsg *imsg)
{
	struct session	*s = session_find(ch->arg, imsg->hdr.peerid);

	if (s == NULL)
		return 0;
	/* An answer to the open asked at RCPT: DATA asks again. */
	s->open_ahead = 0;
	smtp_open_full(&s->smtp);
	worker_session_run(s);
	return 0;
}

/* IMSG_MSG_OK or IMSG_MSG_TEMPFAIL: the answer to an open or a commit. */
static int
worker_on_msg_reply(struct proc_chan *ch, struct imsg *imsg)
{
	struct session	*s;
	char		 text[256];

	if (imsg_get_str(imsg, text, sizeof(text)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if ((s = session_find(ch->arg, imsg->hdr.peerid)) == NULL)
		return 0;
	if (s->open_ahead && s->smtp.wait != SMTP_WAIT_COMMIT) {
		/* The open asked at RCPT failed: DATA asks again. */
		s->open_ahead = 0;
		if (s->smtp.wait != SMTP_WAIT_OPEN)
			return 0;
	}
	if (s->smtp.wait == SMTP_WAIT_OPEN)
		smtp_open_done(&s->smtp, -1);
	else
		smtp_commit_done(&s->smtp, imsg->hdr.type == IMSG_MSG_OK, text);
	worker_session_run(s);
	return 0;
}

/*
 * IMSG_MSG_KEPT: the commit is done and the spool file, emptied, is the
 * session's next one.  A session that left, or was not waiting, cannot
 * take it: the relay is told to drop it.
 */
static int
worker_on_msg_kept(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;
	struct session	*s;
	struct imsg_out	 out;
	char		 text[256];
	int		 fd;

	if (imsg_get_str(imsg, text, sizeof(text)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	s = session_find(w, imsg->hdr.peerid);
	if (s != NULL && s->spare_fd == -1 &&
	    (fd = smtp_commit_take(&s->smtp)) != -1) {
		s->spare_fd = fd;
		smtp_commit_done(&s->smtp, 1, text);
		worker_session_run(s);
		return 0;
	}
	imsg_out_init(&out, IMSG_MSG_ABORT, imsg->hdr.peerid, -1);
	worker_relay_send(w, &out);
	if (s == NULL)
		return 0;
	if (s->smtp.wait == SMTP_WAIT_OPEN)
		smtp_open_done(&s->smtp, -1);
	else
		smtp_commit_done(&s->smtp, 1, text);
	worker_session_run(s);
	return 0;
}

static const struct proc_handler worker_relay_handlers[] = {
	{ IMSG_QUEUE_SPACE,	worker_on_queue_space },
	{ IMSG_MSG_FD,		worker_on_msg_fd },
	{ IMSG_MSG_FULL,	worker_on_msg_full },
	{ IMSG_MSG_OK,		worker_on_msg_reply },
	{ IMSG_MSG_KEPT,	worker_on_msg_kept },
	{ IMSG_MSG_TEMPFAIL,	worker_on_msg_reply },
	{ IMSG_NONE,		NULL },
};

static void
worker_relay_io(int fd, int events, void *arg)
{
	struct worker		*w = arg;
	struct proc_chan	 ch;

	(void)fd;
	if ((events & EV_WRITE) && proc_flush(w->relay) == -1) {
		worker_relay_lost(w);
		return;
	}
	if (!(events & EV_READ))
		return;
	proc_chan_init(&ch, w->relay, ROLE_SESSION, ROLE_RELAY,
	    worker_relay_handlers, w);
	switch (proc_recv(&ch)) {
	case PROC_OK:
		return;
	case PROC_EOF:
	case PROC_ERROR:
		worker_relay_lost(w);
		return;
	case PROC_BAD:
		fatalx("bad message from the relay: %s", ch.why);
	}
}

/* The stop deadline: what is still open gets a 421, then we go. */
static void
worker_stop_deadline(void *arg)
{
	struct worker	*w = arg;
	struct session	*s;
	size_t		 i;

	log_info("event=stop reason=deadline sessions=%u", w->nsessions);
	for (i = 0; i < WORKER_HASH_SIZE; i++)
		for (s = w->sessions[i]; s != NULL; s = s->hnext) {
			if (s->proxy_wait)
				continue;
			buf_free(&s->smtp.out);
			smtp_close_reply(&s->smtp, 421, "4.3.2", "Service "
			    "shutting down");
			if (s->ssl == NULL && buf_left(&s->smtp.out) > 0)
				(void)send(s->fd, s->smtp.out.data,
				    buf_left(&s->smtp.out),
				    MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	worker_flush();
	exit(0);
}

/*
 * No more connections: the listening descriptors are closed, so that
 * the kernel hands new clients to the other workers only.
 */
static void
worker_unlisten(struct worker *w)
{
	unsigned int	 i;

	for (i = 0; i < w->nlisteners; i++) {
		ev_del(w->listeners[i]);
		close(w->listeners[i]);
	}
	w->nlisteners = 0;
	w->paused = 0;
	w->deferring = 0;
	ev_timer_del(&w->pause_timer);
	ev_timer_del(&w->defer_timer);
}

/*
 * IMSG_RETIRE (a reload): new workers took over.  The open sessions go
 * on as they were, messages after messages, until the client quits or
 * the idle time-out; the worker exits with its last session.  After
 * RETIRE_DEADLINE_MS it stops as on SIGTERM.
 */
static void
worker_retire(struct worker *w)
{
	if (w->retiring || w->stopping)
		return;
	w->retiring = 1;
	worker_unlisten(w);
	ev_timer_add(&w->retire_timer, RETIRE_DEADLINE_MS);
	log_debug("event=retire sessions=%u", w->nsessions);
	worker_session_gone(w);
}

static void	worker_stop(struct worker *);

static void
worker_retire_deadline(void *arg)
{
	log_info("event=retire reason=deadline sessions=%u",
	    ((struct worker *)arg)->nsessions);
	worker_stop(arg);
}

/* IMSG_STOP: no new connections; sessions end after their message. */
static void
worker_stop(struct worker *w)
{
	struct session	*s, *next;
	unsigned int	 i;

	if (w->stopping)
		return;
	w->stopping = 1;
	worker_unlisten(w);
	ev_timer_del(&w->retire_timer);
	ev_timer_add(&w->stop_timer, (uint64_t)w->conf.stop_timeout * 1000);
	for (i = 0; i < WORKER_HASH_SIZE; i++)
		for (s = w->sessions[i]; s != NULL; s = next) {
			next = s->hnext;
			/* Its header comes first; then it is greeted and
			 * drained (session_start). */
			if (s->proxy_wait)
				continue;
			smtp_drain(&s->smtp);
			session_update(s);
		}
	worker_session_gone(w);
}

/* Append a chunk of PEM text from the parent; -1 if too much. */
static int
worker_tls_chunk(char **buf, size_t *len, struct imsg *imsg)
{
	char	*p;

	if (*len + imsg->datalen > WORKER_TLS_MAX ||
	    (p = realloc(*buf, *len + imsg->datalen)) == NULL)
		return -1;
	memcpy(p + *len, imsg->data, imsg->datalen);
	*buf = p;
	*len += imsg->datalen;
	explicit_bzero(imsg->data, imsg->datalen);
	return 0;
}

/*
 * The server TLS context, made before the sandbox; the key's PEM text
 * is wiped as soon as OpenSSL holds the key.
 */
static void
worker_tls_init(struct worker *w)
{
	char	 err[256];

	if (w->tls_cert == NULL && w->tls_key == NULL)
		return;
	if (w->tls_cert == NULL || w->tls_key == NULL)
		fatalx("TLS certificate without key, or key without "
		    "certificate");
	tls_init();
	w->tls_ctx = tls_server_ctx(w->tls_cert, w->tls_certlen, w->tls_key,
	    w->tls_keylen, err, sizeof(err));
	explicit_bzero(w->tls_key, w->tls_keylen);
	free(w->tls_key);
	free(w->tls_cert);
	w->tls_key = w->tls_cert = NULL;
	if (w->tls_ctx == NULL)
		fatalx("TLS: %s", err);
}

/*
 * The parent's messages: at start-up the configuration, listeners and
 * TLS material, then orders.  imsg_rules[] has checked the phase,
 * descriptor and size of each.
 */
static int
worker_on_conf(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;

	return conf_recv(imsg, &w->conf);
}

static int
worker_on_listener(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker		*w = ch->arg;
	struct listen_proxy	*lp;
	struct netaddr		*na;
	uint32_t		 flags;

	if (imsg_get_u32(imsg, &flags) == -1 ||
	    w->nlisteners == WORKER_MAX_LISTENERS)
		return -1;
	lp = &w->listen_proxy[w->nlisteners];
	memset(lp, 0, sizeof(*lp));
	/* The rest is the proxy-from networks, whole and valid. */
	while (imsg_get_end(imsg) == -1) {
		na = &lp->nets[lp->n];
		if (lp->n == LISTEN_PROXY_MAX ||
		    imsg_get_data(imsg, na, sizeof(*na)) == -1 ||
		    (na->family != AF_INET && na->family != AF_INET6) ||
		    na->prefix > (na->family == AF_INET ? 32 : 128))
			return -1;
		lp->n++;
	}
	if (((flags & LISTEN_PROXY) != 0) != (lp->n > 0))
		return -1;
	proc_nonblock(imsg->fd);
	w->listen_flags[w->nlisteners] = flags;
	w->listeners[w->nlisteners++] = imsg->fd;
	imsg->fd = -1;
	return 0;
}

static int
worker_on_tls(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;

	if (imsg->hdr.type == IMSG_CONF_TLS_CERT)
		return worker_tls_chunk(&w->tls_cert, &w->tls_certlen, imsg);
	return worker_tls_chunk(&w->tls_key, &w->tls_keylen, imsg);
}

static int
worker_on_policy(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;

	return policy_recv(&w->policy, imsg);
}

/* The parent's tag for this worker's session ids (session_new_id()),
 * and its slot in the pool (worker_defer()). */
static int
worker_on_idtag(struct proc_chan *ch, struct imsg *imsg)
{
	struct worker	*w = ch->arg;

	if (imsg_get_u32(imsg, &w->idtag) == -1 ||
	    w->idtag > SESSION_TAG_MAX || imsg_get_u32(imsg, &w->slot) == -1)
		return -1;
	return 0;
}

static int
worker_on_relay_channel(struct proc_chan *ch, struct imsg *imsg)
{
	worker_relay_set(ch->arg, imsg->fd);
	imsg->fd = -1;
	return 0;
}

static int
worker_on_stop(struct proc_chan *ch, struct imsg *imsg)
{
	if (imsg->hdr.type == IMSG_STOP)
		worker_stop(ch->arg);
	else
		worker_retire(ch->arg);
	return 0;
}

/* IMSG_SLOT_ANSWER or IMSG_AUTH_RESULT, about one session. */
static int
worker_on_answer(struct proc_chan *ch, struct imsg *imsg)
{
	struct session	*s;
	uint32_t	 v;

	if (imsg_get_u32(imsg, &v) == -1 || v > (imsg->hdr.type ==
	    IMSG_SLOT_ANSWER ? 1 : AUTH_RESULT_TEMPFAIL))
		return -1;
	if ((s = session_find(ch->arg, imsg->hdr.peerid)) == NULL)
		return 0;
	if (imsg->hdr.type == IMSG_SLOT_ANSWER)
		session_slot_answer(s, v);
	else
		session_auth_result(s, v);
	return 0;
}

static const struct proc_handler worker_parent_handlers[] = {
	{ IMSG_CONF,		worker_on_conf },
	{ IMSG_CONF_LISTENER,	worker_on_listener },
	{ IMSG_CONF_TLS_CERT,	worker_on_tls },
	{ IMSG_CONF_TLS_KEY,	worker_on_tls },
	{ IMSG_CONF_DOMAIN,	worker_on_policy },
	{ IMSG_CONF_RCPT,	worker_on_policy },
	{ IMSG_CONF_NET,	worker_on_policy },
	{ IMSG_CONF_RULE,	worker_on_policy },
	{ IMSG_CONF_RULE_ITEM,	worker_on_policy },
	{ IMSG_CONF_LOGIN,	worker_on_policy },
	{ IMSG_CONF_IDTAG,	worker_on_idtag },
	{ IMSG_CONF_END,	proc_conf_end },
	{ IMSG_RELAY_CHANNEL,	worker_on_relay_channel },
	{ IMSG_STOP,		worker_on_stop },
	{ IMSG_RETIRE,		worker_on_stop },
	{ IMSG_PING,		proc_pong },
	{ IMSG_LOG_LEVEL,	proc_log_level },
	{ IMSG_SLOT_ANSWER,	worker_on_answer },
	{ IMSG_AUTH_RESULT,	worker_on_answer },
	{ IMSG_NONE,		NULL },
};

/* The session worker's main(): never returns. */
int
worker_main(void)
{
	struct worker	*w = &worker;
	unsigned int	 maxfiles;

	setproctitle("session");
	imsgbuf_init(&w->parent, PROC_PARENT_FD);
	proc_chan_init(&w->parent_chan, &w->parent, ROLE_SESSION, ROLE_PARENT,
	    worker_parent_handlers, w);
	ev_init();
	proc_startup(&w->parent_chan);
	if (w->conf.mode == 0)
		fatalx("no configuration from the parent");
	log_init_child(w->conf.foreground, w->conf.verbose, "session",
	    worker_log_sink);
	policy_finish(&w->policy);
	proc_nonblock(w->parent.fd);

	worker_tls_init(w);
	maxfiles = w->conf.max_sessions * 2 + 64;
	sandbox_enter(ROLE_SESSION, &w->conf, w->conf.chroot, maxfiles);

	ev_timer_set(&w->pause_timer, worker_pause_over, w);
	ev_timer_set(&w->defer_timer, worker_defer_over, w);
	ev_timer_set(&w->load_timer, worker_report_load, w);
	ev_timer_set(&w->stop_timer, worker_stop_deadline, w);
	ev_timer_set(&w->retire_timer, worker_retire_deadline, w);
	if (ev_add(w->parent.fd, EV_READ, proc_parent_io, &w->parent_chan) ==
	    -1)
		fatal("ev_add parent");
	/* Messages that came with the start-up ones are already read. */
	proc_parent_io(w->parent.fd, EV_READ, &w->parent_chan);
	worker_listen(w);
	ev_timer_add(&w->load_timer, 1000);
	log_debug("event=ready listeners=%u", w->nlisteners);
	ev_set_flush(worker_flush);
	ev_loop();
	return 0;
}
