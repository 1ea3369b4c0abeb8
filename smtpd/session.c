/*
 * One client connection: non-blocking reads into the engine, writes of
 * its replies, the idle timer, and the requests the engine makes of the
 * relay.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "envelope.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "worker.h"


static void	session_msg_open(struct smtp_session *);
static void	session_msg_commit(struct smtp_session *);
static void	session_msg_abort(struct smtp_session *);
static void	session_auth_check(struct smtp_session *, const char *,
		    const char *);
static void	session_tls_pending(void *);
static void	session_io(int, int, void *);
static void	session_rate_watch(struct session *);
static void	session_proxy_read(struct session *);
static void	session_proxy_refuse(struct session *, const char *);
static void	session_refused(struct smtp_session *, uint32_t);
static void	session_msg_prefetch(struct smtp_session *);

static const struct smtp_ops session_ops = {
	session_msg_open,
	session_msg_commit,
	session_msg_abort,
	session_auth_check,
	session_refused,
	session_msg_prefetch,
};

/*
 * A session id as logged (session=), unique across every worker of the
 * daemon and across restarts (SPEC 9), with no state kept on disk:
 *
 *	 63                            10 9       0
 *	+--------------------------------+---------+
 *	| wall clock, microseconds       | tag     |
 *	+--------------------------------+---------+
 *
 * The tag is this worker's, from the parent: the lowest that no other
 * living worker holds (parent_idtag()), so two workers never make the
 * same id at the same time.  Within a worker the time part only grows:
 * a second session in the same microsecond takes the next one.  A tag
 * is given again only when its worker has exited, and a worker cannot
 * get ahead of the clock (it would have to open more than a session a
 * microsecond), so the next holder of a tag, in this daemon or in the
 * next one after a restart, makes only later ids than the last one
 * did.  54 bits of microseconds since 1970 last until the year 2541.
 * The one hole is a clock set back across a restart: even then two ids
 * meet only if a worker of the same tag opened a session in the same
 * microsecond.  Random 64-bit ids (OpenSMTPD's) can meet by chance at
 * any time; these also sort by time.  The worker's own handle of a
 * session in imsg (s->id, the peerid) is a separate 32-bit number.
 */
uint64_t
session_new_id(struct worker *w)
{
	struct timespec	 ts;
	uint64_t	 us;

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	if (us <= w->id_last)
		us = w->id_last + 1;
	w->id_last = us;
	return (us << SESSION_TAG_BITS) | (w->idtag & SESSION_TAG_MAX);
}

static void
session_refused(struct smtp_session *smtp, uint32_t reason)
{
	struct session	*s = smtp->owner;

	worker_stat(s->w, STAT_REFUSED + reason);
}

static uint32_t
session_hash(uint32_t id)
{
	return (id * 2654435761u) % WORKER_HASH_SIZE;
}

/* The session with this id, or NULL if it is gone. */
struct session *
session_find(struct worker *w, uint32_t id)
{
	struct session	*s;

	for (s = w->sessions[session_hash(id)]; s != NULL; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

static void
session_unlink(struct worker *w, struct session *s)
{
	struct session	**sp;

	for (sp = &w->sessions[session_hash(s->id)]; *sp != NULL;
	    sp = &(*sp)->hnext)
		if (*sp == s) {
			*sp = s->hnext;
			return;
		}
}

/* Write what the engine queued; -1 when the client is gone. */
static int
session_flush(struct session *s)
{
	struct buf	*out = &s->smtp.out;
	ssize_t		 n;

	s->tls_write_wants = 0;
	if (s->tls_handshaking)
		return 0;
	while (buf_left(out) > 0) {
		if (s->ssl != NULL) {
			n = tls_write(s->ssl, out->data + out->off,
			    buf_left(out));
			if (n == TLS_IO_WANT_READ || n == TLS_IO_WANT_WRITE) {
				s->tls_write_wants = n == TLS_IO_WANT_READ ?
				    EV_READ : EV_WRITE;
				return 0;
			}
			if (n <= 0)
				return -1;
			buf_drain(out, n);
			continue;
		}
		n = send(s->fd, out->data + out->off, buf_left(out),
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		buf_drain(out, n);
	}
	return 0;
}

/*
 * Begin the TLS handshake on the connection.  Whatever the client sent
 * after STARTTLS, before the handshake, is thrown away unread by the
 * engine (CVE-2011-0411).
 */
static int
session_tls_begin(struct session *s)
{
	struct worker	*w = s->w;

	if (s->smtp.in.buf != NULL)
		linebuf_discard(&s->smtp.in);
	if ((s->ssl = SSL_new(w->tls_ctx)) == NULL ||
	    SSL_set_fd(s->ssl, s->fd) != 1) {
		log_warnx("event=tls-error session=" LOG_SID " client=%s "
		    "reason=\"cannot create TLS session\"", s->smtp.session_id,
		    s->smtp.peer_ip);
		return -1;
	}
	SSL_set_accept_state(s->ssl);
	s->tls_handshaking = 1;
	return 0;
}

/* One step of the handshake; 0 while it goes on, -1 if it failed. */
static int
session_tls_step(struct session *s)
{
	char	 err[256];

	switch (tls_handshake(s->ssl)) {
	case TLS_HANDSHAKE_DONE:
		s->tls_handshaking = 0;
		s->tls_hs_wants = 0;
		log_info("event=tls session=" LOG_SID " client=%s version=%s "
		    "cipher=%s", s->smtp.session_id, s->smtp.peer_ip,
		    SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
		/* For the message line: "TLSv1.3" (SPEC 9). */
		strlcpy(s->smtp.tls_proto, SSL_get_version(s->ssl),
		    sizeof(s->smtp.tls_proto));
		worker_stat(s->w, STAT_TLS);
		if (s->smtp.wait == SMTP_WAIT_TLS)
			smtp_tls_started(&s->smtp);
		else {
			/* An implicit TLS listener greets only now. */
			s->smtp.tls_active = 1;
			smtp_greet(&s->smtp);
		}
		return 0;
	case TLS_HANDSHAKE_WANT_READ:
		s->tls_hs_wants = EV_READ;
		return 0;
	case TLS_HANDSHAKE_WANT_WRITE:
		s->tls_hs_wants = EV_WRITE;
		return 0;
	default:
		tls_error(err, sizeof(err));
		log_info("event=tls-failed session=" LOG_SID " client=%s "
		    "reason=%s", s->smtp.session_id, s->smtp.peer_ip,
		    log_qq(err));
		return -1;
	}
}

/*
 * Flush replies and decide what to wait for next.  Reading pauses while
 * the input buffer is full, so a client that pipelines without reading
 * its replies is held back by TCP, never refused.
 */
void
session_update(struct session *s)
{
	int	 events = 0;
	size_t	 avail, pending;

	for (;;) {
		if (session_flush(s) == -1) {
			session_close(s, "write-error");
			return;
		}
		/*
		 * Input that waited for its replies to drain goes on now: no
		 * read would wake it, the client has sent it all already.
		 * Each round consumes input, or stops.
		 */
		if (s->smtp.state == SMTP_CLOSING || s->smtp.in.buf == NULL ||
		    s->smtp.wait != SMTP_WAIT_NONE ||
		    buf_left(&s->smtp.out) >= SMTP_OUTBUF_PAUSE ||
		    (pending = linebuf_pending(&s->smtp.in)) == 0)
			break;
		smtp_process(&s->smtp);
		if (linebuf_pending(&s->smtp.in) == pending)
			break;
	}
	if (s->smtp.state == SMTP_CLOSING && buf_left(&s->smtp.out) == 0) {
		session_close(s, "closed");
		return;
	}
	/* Nothing more will come: close once what came is answered. */
	if (s->eof && s->smtp.wait == SMTP_WAIT_NONE &&
	    buf_left(&s->smtp.out) == 0) {
		session_close(s, "eof");
		return;
	}
	/* The 220 to STARTTLS is out: the handshake starts. */
	if (s->smtp.wait == SMTP_WAIT_TLS && s->ssl == NULL &&
	    buf_left(&s->smtp.out) == 0) {
		if (session_tls_begin(s) == -1 || session_tls_step(s) == -1) {
			session_close(s, "tls-failed");
			return;
		}
		if (!s->tls_handshaking) {
			session_update(s);
			return;
		}
	}
	if (s->tls_handshaking)
		events = s->tls_hs_wants;
	else if (s->smtp.state != SMTP_CLOSING && !s->eof &&
	    s->smtp.wait != SMTP_WAIT_TLS) {
		if (s->smtp.in.buf == NULL)
			events |= EV_READ;
		else if (smtp_input_space(&s->smtp, &avail) != NULL &&
		    avail > 0)
			events |= EV_READ;
	}
	if (buf_left(&s->smtp.out) > 0)
		events |= s->tls_write_wants ? s->tls_write_wants : EV_WRITE;
	events |= s->tls_read_wants;
	session_rate_watch(s);
	smtp_input_release(&s->smtp);
	ev_mod(s->fd, events);
	/* Bytes OpenSSL already decrypted wake no epoll: read them soon. */
	if (s->ssl != NULL && !s->tls_handshaking && (events & EV_READ) &&
	    SSL_pending(s->ssl) > 0)
		ev_timer_add(&s->tls_timer, 0);
}

static void
session_tls_pending(void *arg)
{
	struct session	*s = arg;

	session_io(s->fd, EV_READ, s);
}

/* Read what the client sent; 0 on end of file or error. */
static int
session_read(struct session *s)
{
	uint8_t	*p;
	size_t	 avail;
	ssize_t	 n;

	for (;;) {
		if ((p = smtp_input_space(&s->smtp, &avail)) == NULL)
			return 0;
		if (avail == 0)
			return 1;
		if (s->ssl != NULL) {
			n = tls_read(s->ssl, p, avail);
			if (n == TLS_IO_WANT_READ)
				return 1;
			if (n == TLS_IO_WANT_WRITE) {
				s->tls_read_wants = EV_WRITE;
				return 1;
			}
			if (n <= 0)
				return 0;
			smtp_input_fill(&s->smtp, n);
			continue;
		}
		n = read(s->fd, p, avail);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 1;
		if (n <= 0)
			return 0;
		smtp_input_fill(&s->smtp, n);
		if ((size_t)n < avail)
			return 1;
	}
}

static void
session_io(int fd, int events, void *arg)
{
	struct session	*s = arg;
	int		 read_wants;

	(void)fd;
	if (s->proxy_wait) {
		session_proxy_read(s);
		return;
	}
	if (s->tls_handshaking) {
		if (session_tls_step(s) == -1) {
			session_close(s, "tls-failed");
			return;
		}
		session_update(s);
		return;
	}
	read_wants = s->tls_read_wants;
	s->tls_read_wants = 0;
	if ((events & EV_READ) || (read_wants && (events & EV_WRITE))) {
		if (!session_read(s)) {
			/* What the client sent before its end is still done. */
			if (s->smtp.in.buf == NULL ||
			    linebuf_pending(&s->smtp.in) == 0) {
				session_close(s, "eof");
				return;
			}
			s->eof = 1;
		}
		if (!s->timed_out)
			ev_timer_add(&s->timer,
			    (uint64_t)s->smtp.conf->timeout * 1000);
		smtp_process(&s->smtp);
	}
	session_update(s);
}

/*
 * End the session with a 421 for why; the second time round (the timer
 * fires again a second later) it goes even if the client never read.
 */
static void
session_expire(struct session *s, const char *event, const char *text)
{
	if (s->timed_out) {
		session_close(s, event);
		return;
	}
	s->timed_out = 1;
	log_info("event=%s session=" LOG_SID " client=%s", event,
	    s->smtp.session_id, s->smtp.peer_ip);
	ev_timer_del(&s->life_timer);
	ev_timer_del(&s->rate_timer);
	smtp_close_reply(&s->smtp, 421, "4.4.2", text);
	if (session_flush(s) == -1 || buf_left(&s->smtp.out) == 0) {
		session_close(s, event);
		return;
	}
	/* The client does not read: one more second to take the 421. */
	ev_timer_add(&s->timer, 1000);
	session_update(s);
}

static void
session_timeout(void *arg)
{
	struct session	*s = arg;

	if (s->proxy_wait) {
		session_proxy_refuse(s, "no complete header in time");
		return;
	}
	session_expire(s, "timeout", "Error: timeout exceeded");
}

static void
session_lifetime(void *arg)
{
	struct session	*s = arg;

	session_expire(s, "lifetime", "Error: session lifetime exceeded");
}

/*
 * The DATA rate floor: after data-rate-grace, the transfer must have
 * averaged data-rate-min bytes a second so far.  The next check is when
 * what came so far would no longer be enough, at least a second away.
 */
static void
session_rate_check(void *arg)
{
	struct session	*s = arg;
	uint64_t	 elapsed, ok_until, rate = s->smtp.conf->data_rate_min;

	elapsed = ev_now() - s->data_start;
	if (s->smtp.data_received * 1000 < rate * elapsed) {
		session_expire(s, "data-too-slow", "Error: data rate too low");
		return;
	}
	ok_until = s->smtp.data_received * 1000 / rate;
	ev_timer_add(&s->rate_timer, ok_until > elapsed + 1000 ?
	    ok_until - elapsed : 1000);
}

/* Start the rate watch when DATA begins, stop it when it ends. */
static void
session_rate_watch(struct session *s)
{
	const struct smtpd_conf	*conf = s->smtp.conf;

	if (s->smtp.state == SMTP_DATA && s->data_start == 0 &&
	    conf->data_rate_min > 0) {
		s->data_start = ev_now();
		ev_timer_add(&s->rate_timer,
		    (uint64_t)conf->data_rate_grace * 1000);
	} else if (s->smtp.state != SMTP_DATA && s->data_start != 0) {
		s->data_start = 0;
		ev_timer_del(&s->rate_timer);
	}
}

/* The greeting, or for implicit TLS the handshake before it. */
static void
session_start(struct session *s)
{
	struct worker	*w = s->w;

	if (s->smtp.listen_flags & LISTEN_TLS) {
		if (session_tls_begin(s) == -1 || session_tls_step(s) == -1) {
			session_close(s, "tls-failed");
			return;
		}
	} else
		smtp_greet(&s->smtp);
	if (w->stopping)
		smtp_drain(&s->smtp);
	/* May close (and free) the session: nothing after it. */
	session_update(s);
}

/* Ask the parent for a slot of the client's address (max-sessions-per-ip). */
static void
session_slot_ask(struct session *s, const struct sockaddr_storage *ss)
{
	struct worker	*w = s->w;
	struct imsg_out	 out;

	imsg_out_init(&out, IMSG_SLOT_ASK, s->id, -1);
	imsg_add_sa(&out, (const struct sockaddr *)ss,
	    ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6));
	s->slot_asked = 1;
	s->smtp.wait = SMTP_WAIT_SLOT;
	worker_parent_send(w, &out);
}

/* The parent's answer: greet, or refuse as the address has enough. */
void
session_slot_answer(struct session *s, int ok)
{
	if (s->smtp.wait != SMTP_WAIT_SLOT)
		return;
	s->smtp.wait = SMTP_WAIT_NONE;
	if (!ok) {
		log_warnx("event=refused session=" LOG_SID " client=%s "
		    "reason=max-sessions-per-ip", s->smtp.session_id,
		    s->smtp.peer_ip);
		smtp_close_reply(&s->smtp, 421, "4.7.0", "Error: too many "
		    "connections from your address");
		worker_stat(s->w, STAT_REFUSED + REFUSED_PER_IP);
		session_update(s);
		return;
	}
	session_start(s);
}

/* The text form of an AF_INET or AF_INET6 address, and its port. */
static void
session_ipport(const struct sockaddr_storage *ss, char *ip, size_t len,
    uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, len);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, len);
		*port = ntohs(sin6->sin6_port);
	}
}

/*
 * The client is known (from the connection, or from its PROXY
 * header): the session begins, with the per-address slot first.
 */
static void
session_begin(struct session *s, const struct sockaddr_storage *ss)
{
	struct worker	*w = s->w;
	char		 real[INET6_ADDRSTRLEN];
	uint16_t	 rport;
	int		 loopback = worker_is_loopback(ss);

	s->smtp.loopback = loopback;
	if (s->smtp.listen_flags & LISTEN_PROXY) {
		session_ipport(&s->real, real, sizeof(real), &rport);
		log_info("event=connect session=" LOG_SID " client=%s port=%u "
		    "proxy=%s", s->smtp.session_id, s->smtp.peer_ip,
		    s->smtp.peer_port, real);
	} else
		log_info("event=connect session=" LOG_SID " client=%s port=%u",
		    s->smtp.session_id, s->smtp.peer_ip, s->smtp.peer_port);
	ev_timer_add(&s->timer, (uint64_t)w->conf.timeout * 1000);
	if (w->conf.session_lifetime > 0)
		ev_timer_add(&s->life_timer,
		    (uint64_t)w->conf.session_lifetime * 1000);
	/* Loopback clients are the operator's own (Postfix exempts them). */
	if (w->conf.max_per_ip > 0 && !loopback) {
		session_slot_ask(s, ss);
		session_update(s);
		return;
	}
	session_start(s);
}

/* Close a proxy-from connection before any SMTP, saying why. */
static void
session_proxy_refuse(struct session *s, const char *why)
{
	worker_stat(s->w, STAT_REFUSED + REFUSED_PROXY);
	log_warnx("event=proxy-refused session=" LOG_SID " client=%s "
	    "reason=%s", s->smtp.session_id, s->smtp.peer_ip, log_qq(why));
	session_close(s, "proxy-refused");
}

/*
 * The PROXY header, read without taking a byte past it: the bytes are
 * peeked and parsed, and only the header's are read off the socket.
 * While the header is incomplete every byte that came belongs to it,
 * so all of them are taken (the event loop is level-triggered: bytes
 * left in the socket would wake it again at once).
 */
static void
session_proxy_read(struct session *s)
{
	struct proxy_hdr	 hdr;
	const char		*why = "malformed";
	ssize_t			 n, hlen, take;
	char			 ip[INET6_ADDRSTRLEN];
	uint16_t		 port;

	if (s->proxy_buf == NULL &&
	    (s->proxy_buf = malloc(PROXY_HDR_MAX)) == NULL) {
		session_proxy_refuse(s, "out of memory");
		return;
	}
	n = recv(s->fd, s->proxy_buf + s->proxy_len,
	    PROXY_HDR_MAX - s->proxy_len, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		session_proxy_refuse(s, n == 0 ? "closed before the header" :
		    strerror(errno));
		return;
	}
	hlen = proxy_parse(s->proxy_buf, s->proxy_len + n, &hdr, &why);
	if (hlen == -1 || (hlen > 0 && (size_t)hlen <= s->proxy_len)) {
		session_proxy_refuse(s, why);
		return;
	}
	take = hlen == 0 ? n : hlen - (ssize_t)s->proxy_len;
	if (read(s->fd, s->proxy_buf + s->proxy_len, take) != take) {
		session_proxy_refuse(s, "read error");
		return;
	}
	s->proxy_len += take;
	if (hlen == 0) {
		if (s->proxy_len == PROXY_HDR_MAX)
			session_proxy_refuse(s, "header too long");
		return;
	}
	free(s->proxy_buf);
	s->proxy_buf = NULL;
	s->proxy_wait = 0;
	ev_timer_del(&s->timer);
	/* LOCAL or UNKNOWN (the balancer's own check): the real address. */
	if (hdr.local || (hdr.src.ss_family != AF_INET &&
	    hdr.src.ss_family != AF_INET6)) {
		session_begin(s, &s->real);
		return;
	}
	session_ipport(&hdr.src, ip, sizeof(ip), &port);
	strlcpy(s->smtp.peer_ip, ip, sizeof(s->smtp.peer_ip));
	s->smtp.peer_port = port;
	session_begin(s, &hdr.src);
}

/* A proxy-from listener takes connections from those networks only. */
static int
session_proxy_allowed(const struct listen_proxy *lp, const char *ip)
{
	uint32_t	 i;

	for (i = 0; i < lp->n; i++)
		if (netaddr_match(&lp->nets[i], ip))
			return 1;
	return 0;
}

/*
 * Start a session on an accepted connection.  The session owns fd from
 * here on, whatever happens: it may be gone when this returns (a client
 * that reset at once), so the caller must not touch it again.
 */
void
session_accept(struct worker *w, int fd, const struct sockaddr_storage *ss,
    uint32_t flags, const struct listen_proxy *lp)
{
	struct session	*s;
	char		 ip[INET6_ADDRSTRLEN];
	uint16_t	 port;

	session_ipport(ss, ip, sizeof(ip), &port);
	if ((flags & LISTEN_PROXY) && !session_proxy_allowed(lp, ip)) {
		log_warnx("event=proxy-refused session=" LOG_SID " client=%s "
		    "port=%u reason=not-in-proxy-from", session_new_id(w), ip,
		    port);
		close(fd);
		worker_stat(w, STAT_REFUSED + REFUSED_PROXY);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session alloc");
		close(fd);
		return;
	}
	s->w = w;
	s->spare_fd = -1;
	do {
		s->id = ++w->next_id;
	} while (s->id == 0 || session_find(w, s->id) != NULL);
	s->fd = fd;
	smtp_init(&s->smtp, &w->conf, &session_ops, s, ip, port);
	s->smtp.session_id = session_new_id(w);
	s->smtp.policy = &w->policy;
	s->smtp.listen_flags = flags;
	s->smtp.auth_configured = w->conf.auth_enabled;
	s->smtp.tls_available = w->tls_ctx != NULL && !(flags & LISTEN_TLS);
	ev_timer_set(&s->tls_timer, session_tls_pending, s);
	ev_timer_set(&s->timer, session_timeout, s);
	ev_timer_set(&s->life_timer, session_lifetime, s);
	ev_timer_set(&s->rate_timer, session_rate_check, s);
	if (ev_add(fd, EV_READ, session_io, s) == -1) {
		log_warn("event=session-error session=" LOG_SID " op=ev_add",
		    s->smtp.session_id);
		smtp_free(&s->smtp);
		free(s);
		close(fd);
		return;
	}
	s->hnext = w->sessions[session_hash(s->id)];
	w->sessions[session_hash(s->id)] = s;
	w->nsessions++;
	if (flags & LISTEN_PROXY) {
		/* Who the client is comes first, before any SMTP. */
		s->proxy_wait = 1;
		s->real = *ss;
		ev_timer_add(&s->timer, PROXY_TIMEOUT * 1000);
		return;
	}
	session_begin(s, ss);
}

/* End a session; an open message is given back to the relay. */
void
session_close(struct session *s, const char *reason)
{
	struct worker	*w = s->w;

	log_info("event=disconnect session=" LOG_SID " client=%s reason=%s "
	    "messages=%u", s->smtp.session_id, s->smtp.peer_ip, reason,
	    s->smtp.nmessages);
	ev_del(s->fd);
	if (s->ssl != NULL) {
		if (!s->tls_handshaking)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	close(s->fd);
	free(s->proxy_buf);
	ev_timer_del(&s->timer);
	ev_timer_del(&s->tls_timer);
	ev_timer_del(&s->life_timer);
	ev_timer_del(&s->rate_timer);
	/*
	 * A spool file still being written is aborted by smtp_free(); one
	 * asked for but not yet here is aborted when it arrives; a commit
	 * already asked for goes on (the client may send it again).
	 */
	smtp_free(&s->smtp);
	if (s->spare_fd != -1) {
		/* The relay holds the file for the session until told. */
		close(s->spare_fd);
		session_msg_abort(&s->smtp);
	}
	session_unlink(w, s);
	/* The parent forgets a slot it refused, or never gave. */
	if (s->slot_asked) {
		struct imsg_out	 out;

		imsg_out_init(&out, IMSG_SLOT_FREE, s->id, -1);
		worker_parent_send(w, &out);
	}
	w->nsessions--;
	free(s);
	worker_session_gone(w);
}

/*
 * AUTH: the parent checks the password (the worker never sees hashes),
 * and throttles per client address: the address goes with it.
 */
static void
session_auth_check(struct smtp_session *smtp, const char *user,
    const char *password)
{
	struct session	*s = smtp->owner;
	struct worker	*w = s->w;
	struct imsg_out	 out;

	/* The buffer is wiped once written (imsgbuf_write). */
	imsg_out_init(&out, IMSG_AUTH_REQUEST, s->id, -1);
	imsg_add_u64(&out, smtp->session_id);
	imsg_add_str(&out, user);
	imsg_add_str(&out, password);
	imsg_add_str(&out, smtp->peer_ip);
	worker_parent_send(w, &out);
}

/*
 * The parent's verdict on an AUTH, given whenever it is ready: the
 * delay after failures is the parent's, before the check, the same for
 * a right and a wrong password.
 */
void
session_auth_result(struct session *s, int verdict)
{
	if (s->smtp.wait != SMTP_WAIT_AUTH)
		return;
	smtp_auth_done(&s->smtp, verdict);
	smtp_process(&s->smtp);
	session_update(s);
}

/* MSG_OPEN for s, to the relay of now. */
static void
session_open_send(struct session *s)
{
	struct imsg_out	 out;

	s->relay_gen = s->w->relay_gen;
	imsg_out_init(&out, IMSG_MSG_OPEN, s->id, -1);
	imsg_add_u64(&out, s->smtp.session_id);
	worker_relay_send(s->w, &out);
}

/*
 * DATA: ask the relay for a spool file, unless the session kept the
 * last message's (MSG_KEPT): then no round trip.
 */
static void
session_msg_open(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = s->w;
	int		 fd;

	if ((fd = s->spare_fd) != -1) {
		s->spare_fd = -1;
		smtp_open_done(smtp, fd);
		return;
	}
	if (s->open_ahead)
		return;		/* asked at RCPT: the answer is on its way */
	if (w->relay == NULL) {
		smtp_open_done(smtp, -1);
		return;
	}
	session_open_send(s);
}

/*
 * The first recipient was accepted: ask for the spool file now, so that
 * DATA finds it (the relay's answer comes while the client sends its
 * next command, and 354 waits for no round trip).  Only with nothing
 * else asked or held of the relay, which keeps one file a session.
 */
static void
session_msg_prefetch(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = s->w;

	if (s->spare_fd != -1 || s->open_ahead || w->relay == NULL ||
	    smtp->wait != SMTP_WAIT_NONE || smtp->spool_fd != -1)
		return;
	s->open_ahead = 1;
	session_open_send(s);
}

/*
 * The commit could not even be sent: the relay still holds the spool
 * file, so it is told to drop it before the client hears 451.
 */
static void
session_commit_failed(struct smtp_session *smtp, const char *why)
{
	session_msg_abort(smtp);
	smtp_commit_done(smtp, 0, why);
}

static const char *
session_rcpt(const void *arg, uint32_t i)
{
	const struct smtp_session	*smtp = arg;

	return smtp->rcpts[i];
}

/* The final dot: send the envelope for the relay to check and commit. */
static void
session_msg_commit(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = s->w;
	struct envelope_ref	 e;
	struct imsg_out		 out;
	uint32_t		 flags = 0;

	if (w->relay == NULL || s->relay_gen != w->relay_gen) {
		smtp_commit_done(smtp, 0, "queue unavailable, try again later");
		return;
	}
	if (smtp->body_8bit)
		flags |= ENV_F_8BIT;
	if (smtp->smtputf8)
		flags |= ENV_F_SMTPUTF8;
	if (smtp->esmtp)
		flags |= ENV_F_ESMTP;
	if (smtp->authenticated)
		flags |= ENV_F_AUTH;
	memset(&e, 0, sizeof(e));
	e.peer_ip = smtp->peer_ip;
	e.peer_port = smtp->peer_port;
	e.helo = smtp->helo;
	e.mail_from = smtp->mail_from;
	e.nrcpt = smtp->nrcpt;
	e.rcpt = session_rcpt;
	e.arg = smtp;
	e.size = smtp->datalen;
	e.flags = flags;
	e.mail_opts = smtp->mail_opts;
	e.rcpt_opts = smtp->rcpt_opts;
	e.tls_proto = smtp->tls_proto;
	imsg_out_init(&out, IMSG_MSG_COMMIT, s->id, -1);
	envelope_encode(&out, &e);
	if (out.overflow) {
		imsg_out_free(&out);
		session_commit_failed(smtp, "envelope too large");
		return;
	}
	worker_relay_send(w, &out);
}

/* The session dropped its message: the relay may forget the file. */
static void
session_msg_abort(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = s->w;
	struct imsg_out	 out;

	if (w->relay == NULL || s->relay_gen != w->relay_gen)
		return;
	imsg_out_init(&out, IMSG_MSG_ABORT, s->id, -1);
	worker_relay_send(w, &out);
}
