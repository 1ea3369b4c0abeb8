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
    uint32_t flags)
{
	char	 ip[INET6_ADDRSTRLEN];

	if (w->nsessions >= w->conf.max_sessions) {
		if (ss->ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr,
			    ip, sizeof(ip));
		else
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)ss)->sin6_addr, ip,
			    sizeof(ip));
		log_warnx("event=refused client=%s reason=max-sessions", ip);
		worker_refuse(w, fd, "4.3.2", "Error: too many sessions, "
		    "try again later");
		return;
	}
	session_accept(w, fd, ss, flags);
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

static void
worker_accept(int lfd, int events, void *arg)
{
	struct worker		*w = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	unsigned int		 l;
	uint32_t		 flags = 0;
	int			 i, fd;

	(void)events;
	if (w->nsessions >= w->conf.max_sessions && !w->full_for_long) {
		worker_pause(w);
		return;
	}
	for (l = 0; l < w->nlisteners; l++)
		if (w->listeners[l] == lfd)
			flags = w->listen_flags[l];
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
		worker_take(w, fd, &ss, flags);
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

/* Queue a message for the relay and try to write it now. */
void
worker_relay_send(struct worker *w, struct imsg_out *out)
{
	if (w->relay != NULL && proc_send(w->relay, out) == -1)
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

/* One message from the relay, about one session. */
static void
worker_relay_dispatch(struct worker *w, struct imsg *imsg)
{
	struct session	*s;
	char		 text[256];

	if (imsg->hdr.type == IMSG_QUEUE_SPACE) {
		uint32_t low;

		/* The relay measured it; a client has no say in it. */
		if (imsg_get_u32(imsg, &low) == -1 ||
		    imsg_get_end(imsg) == -1 || low > 1)
			fatalx("relay sent a bad QUEUE_SPACE");
		smtp_queue_low = (int)low;
		return;
	}
	s = session_find(w, imsg->hdr.peerid);
	switch (imsg->hdr.type) {
	case IMSG_MSG_FD:
		if (imsg->fd == -1 || imsg->datalen != 0)
			fatalx("relay sent a bad MSG_FD");
		if (s == NULL || s->smtp.wait != SMTP_WAIT_OPEN) {
			struct imsg_out out;

			/* The session left while the file was made. */
			imsg_out_init(&out, IMSG_MSG_ABORT, imsg->hdr.peerid,
			    -1);
			worker_relay_send(w, &out);
			return;
		}
		smtp_open_done(&s->smtp, imsg->fd);
		imsg->fd = -1;
		break;
	case IMSG_MSG_FULL:
		if (imsg->fd != -1 || imsg->datalen != 0)
			fatalx("relay sent a bad MSG_FULL");
		if (s == NULL)
			return;
		smtp_open_full(&s->smtp);
		break;
	case IMSG_MSG_OK:
	case IMSG_MSG_TEMPFAIL:
		if (imsg_get_str(imsg, text, sizeof(text)) == -1 ||
		    imsg_get_end(imsg) == -1)
			fatalx("relay sent a bad reply");
		if (s == NULL)
			return;
		if (s->smtp.wait == SMTP_WAIT_OPEN)
			smtp_open_done(&s->smtp, -1);
		else
			smtp_commit_done(&s->smtp,
			    imsg->hdr.type == IMSG_MSG_OK, text);
		break;
	default:
		fatalx("relay sent message type %u", imsg->hdr.type);
	}
	smtp_process(&s->smtp);
	session_update(s);
}

static void
worker_relay_io(int fd, int events, void *arg)
{
	struct worker	*w = arg;
	struct imsg	 imsg;
	ssize_t		 n;

	(void)fd;
	if (events & EV_WRITE) {
		if (imsgbuf_write(w->relay) == -1) {
			worker_relay_lost(w);
			return;
		}
		if (!imsgbuf_pending(w->relay))
			ev_mod(w->relay->fd, EV_READ);
	}
	if (!(events & EV_READ))
		return;
	n = imsgbuf_read(w->relay);
	if (n == 0 || (n == -1 && errno != EAGAIN)) {
		worker_relay_lost(w);
		return;
	}
	for (;;) {
		if ((n = imsgbuf_get(w->relay, &imsg)) == -1)
			fatal("relay channel");
		if (n == 0)
			break;
		worker_relay_dispatch(w, &imsg);
		imsg_free(&imsg);
		if (w->relay == NULL)
			return;
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
			buf_free(&s->smtp.out);
			smtp_close_reply(&s->smtp, 421, "4.3.2", "Service "
			    "shutting down");
			if (s->ssl == NULL && buf_left(&s->smtp.out) > 0)
				(void)send(s->fd, s->smtp.out.data,
				    buf_left(&s->smtp.out),
				    MSG_NOSIGNAL | MSG_DONTWAIT);
		}
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
	ev_timer_del(&w->pause_timer);
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
	ev_timer_add(&w->stop_timer, STOP_DEADLINE_MS);
	for (i = 0; i < WORKER_HASH_SIZE; i++)
		for (s = w->sessions[i]; s != NULL; s = next) {
			next = s->hnext;
			smtp_drain(&s->smtp);
			session_update(s);
		}
	worker_session_gone(w);
}

static void
worker_parent_io(int fd, int events, void *arg)
{
	struct worker	*w = arg;
	struct imsg	 imsg;
	ssize_t		 n;

	(void)fd;
	if (events & EV_WRITE) {
		if (imsgbuf_write(&w->parent) == -1)
			fatal("write to parent");
		if (!imsgbuf_pending(&w->parent))
			ev_mod(w->parent.fd, EV_READ);
	}
	if (!(events & EV_READ))
		return;
	n = imsgbuf_read(&w->parent);
	if (n == 0)
		fatalx("parent went away");
	if (n == -1 && errno != EAGAIN)
		fatal("read from parent");
	while ((n = imsgbuf_get(&w->parent, &imsg)) > 0) {
		switch (imsg.hdr.type) {
		case IMSG_RELAY_CHANNEL:
			if (imsg.fd == -1 || imsg.datalen != 0)
				fatalx("bad RELAY_CHANNEL");
			worker_relay_set(w, imsg.fd);
			imsg.fd = -1;
			break;
		case IMSG_STOP:
			if (imsg.datalen != 0)
				fatalx("bad STOP");
			worker_stop(w);
			break;
		case IMSG_RETIRE:
			if (imsg.datalen != 0)
				fatalx("bad RETIRE");
			worker_retire(w);
			break;
		case IMSG_PING:
			if (proc_pong(&w->parent, &imsg) == -1)
				fatalx("bad PING");
			break;
		case IMSG_SLOT_ANSWER: {
			struct session	*s;
			uint32_t	 ok;

			if (imsg_get_u32(&imsg, &ok) == -1 || ok > 1 ||
			    imsg_get_end(&imsg) == -1)
				fatalx("bad SLOT_ANSWER");
			if ((s = session_find(w, imsg.hdr.peerid)) != NULL)
				session_slot_answer(s, ok);
			break;
		}
		case IMSG_AUTH_RESULT: {
			struct session	*s;
			uint32_t	 ok;

			if (imsg_get_u32(&imsg, &ok) == -1 ||
			    ok > AUTH_RESULT_TEMPFAIL ||
			    imsg_get_end(&imsg) == -1)
				fatalx("bad AUTH_RESULT");
			if ((s = session_find(w, imsg.hdr.peerid)) != NULL)
				session_auth_result(s, ok);
			break;
		}
		default:
			fatalx("parent sent message type %u", imsg.hdr.type);
		}
		imsg_free(&imsg);
	}
	if (n == -1)
		fatal("parent channel");
}

/* Append a chunk of PEM text from the parent. */
static void
worker_tls_chunk(char **buf, size_t *len, struct imsg *imsg)
{
	char	*p;

	if (imsg->datalen == 0 || *len + imsg->datalen > WORKER_TLS_MAX ||
	    (p = realloc(*buf, *len + imsg->datalen)) == NULL)
		fatalx("bad TLS material from the parent");
	memcpy(p + *len, imsg->data, imsg->datalen);
	*buf = p;
	*len += imsg->datalen;
	explicit_bzero(imsg->data, imsg->datalen);
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

/* A start-up message: configuration, listeners, the relay channel. */
static void
worker_startup(struct imsg *imsg, void *arg)
{
	struct worker	*w = arg;
	uint32_t	 flags;

	switch (imsg->hdr.type) {
	case IMSG_CONF:
		if (conf_recv(imsg, &w->conf) == -1)
			fatalx("bad configuration from the parent");
		break;
	case IMSG_CONF_LISTENER:
		if (imsg->fd == -1 || imsg_get_u32(imsg, &flags) == -1 ||
		    imsg_get_end(imsg) == -1 ||
		    w->nlisteners == WORKER_MAX_LISTENERS)
			fatalx("bad listener from the parent");
		proc_nonblock(imsg->fd);
		w->listen_flags[w->nlisteners] = flags;
		w->listeners[w->nlisteners++] = imsg->fd;
		imsg->fd = -1;
		break;
	case IMSG_CONF_TLS_CERT:
		worker_tls_chunk(&w->tls_cert, &w->tls_certlen, imsg);
		break;
	case IMSG_CONF_TLS_KEY:
		worker_tls_chunk(&w->tls_key, &w->tls_keylen, imsg);
		break;
	case IMSG_RELAY_CHANNEL:
		if (imsg->fd == -1 || imsg->datalen != 0)
			fatalx("bad RELAY_CHANNEL");
		worker_relay_set(w, imsg->fd);
		imsg->fd = -1;
		break;
	case IMSG_CONF_DOMAIN:
	case IMSG_CONF_RCPT:
	case IMSG_CONF_NET:
	case IMSG_CONF_RULE:
	case IMSG_CONF_RULE_ITEM:
	case IMSG_CONF_LOGIN:
		if (policy_recv(&w->policy, imsg) == -1)
			fatalx("bad relay policy from the parent");
		break;
	default:
		fatalx("unexpected start-up message %u", imsg->hdr.type);
	}
}

/* The session worker's main(): never returns. */
int
worker_main(void)
{
	struct worker	*w = &worker;
	unsigned int	 maxfiles;

	setproctitle("session");
	imsgbuf_init(&w->parent, PROC_PARENT_FD);
	ev_init();
	proc_read_startup(&w->parent, worker_startup, w);
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
	ev_timer_set(&w->load_timer, worker_report_load, w);
	ev_timer_set(&w->stop_timer, worker_stop_deadline, w);
	ev_timer_set(&w->retire_timer, worker_retire_deadline, w);
	if (ev_add(w->parent.fd, EV_READ, worker_parent_io, w) == -1)
		fatal("ev_add parent");
	/* Messages that came with the start-up ones are already read. */
	worker_parent_io(w->parent.fd, EV_READ, w);
	worker_listen(w);
	ev_timer_add(&w->load_timer, 1000);
	log_debug("event=ready listeners=%u", w->nlisteners);
	ev_loop();
	return 0;
}
