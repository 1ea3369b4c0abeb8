/*
 * One client connection: non-blocking reads into the engine, writes of
 * its replies, the idle timer, and the requests the engine makes of the
 * relay.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "worker.h"

static struct worker *session_worker;	/* the one worker of this process */

static void	session_msg_open(struct smtp_session *);
static void	session_msg_commit(struct smtp_session *);
static void	session_msg_abort(struct smtp_session *);

static const struct smtp_ops session_ops = {
	session_msg_open,
	session_msg_commit,
	session_msg_abort,
};

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

	while (buf_left(out) > 0) {
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
 * Flush replies and decide what to wait for next.  Reading pauses while
 * the input buffer is full, so a client that pipelines without reading
 * its replies is held back by TCP, never refused.
 */
void
session_update(struct session *s)
{
	int	 events = 0;
	size_t	 avail;

	if (session_flush(s) == -1) {
		session_close(s, "write-error");
		return;
	}
	if (s->smtp.state == SMTP_CLOSING && buf_left(&s->smtp.out) == 0) {
		session_close(s, "closed");
		return;
	}
	if (s->smtp.state != SMTP_CLOSING) {
		if (s->smtp.in.buf == NULL)
			events |= EV_READ;
		else if (smtp_input_space(&s->smtp, &avail) != NULL &&
		    avail > 0)
			events |= EV_READ;
	}
	if (buf_left(&s->smtp.out) > 0)
		events |= EV_WRITE;
	smtp_input_release(&s->smtp);
	ev_mod(s->fd, events);
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

	(void)fd;
	if (events & EV_READ) {
		if (!session_read(s)) {
			session_close(s, "eof");
			return;
		}
		ev_timer_add(&s->timer, (uint64_t)s->smtp.conf->timeout * 1000);
		smtp_process(&s->smtp);
	}
	session_update(s);
}

static void
session_timeout(void *arg)
{
	struct session	*s = arg;

	log_info("event=timeout session=%08x client=%s", s->id,
	    s->smtp.peer_ip);
	smtp_close_reply(&s->smtp, 421, "4.4.2", "Error: timeout exceeded");
	if (session_flush(s) == -1 || buf_left(&s->smtp.out) == 0) {
		session_close(s, "timeout");
		return;
	}
	/* The client does not read: one more second to take the 421. */
	ev_timer_add(&s->timer, 1000);
	session_update(s);
}

/* Start a session on an accepted connection; NULL if it failed. */
struct session *
session_accept(struct worker *w, int fd, const char *ip, uint16_t port)
{
	struct session	*s;

	session_worker = w;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session alloc");
		close(fd);
		return NULL;
	}
	do {
		s->id = ++w->next_id;
	} while (s->id == 0 || session_find(w, s->id) != NULL);
	s->fd = fd;
	smtp_init(&s->smtp, &w->conf, &session_ops, s, ip, port);
	s->smtp.policy = &w->policy;
	ev_timer_set(&s->timer, session_timeout, s);
	if (ev_add(fd, EV_READ, session_io, s) == -1) {
		log_warn("ev_add");
		smtp_free(&s->smtp);
		free(s);
		close(fd);
		return NULL;
	}
	s->hnext = w->sessions[session_hash(s->id)];
	w->sessions[session_hash(s->id)] = s;
	w->nsessions++;
	log_info("event=connect session=%08x client=%s port=%u", s->id, ip,
	    port);
	ev_timer_add(&s->timer, (uint64_t)w->conf.timeout * 1000);
	smtp_greet(&s->smtp);
	if (w->stopping)
		smtp_drain(&s->smtp);
	session_update(s);
	return s;
}

/* End a session; an open message is given back to the relay. */
void
session_close(struct session *s, const char *reason)
{
	struct worker	*w = session_worker;

	log_info("event=disconnect session=%08x client=%s reason=%s "
	    "messages=%u", s->id, s->smtp.peer_ip, reason, s->smtp.nmessages);
	ev_del(s->fd);
	close(s->fd);
	ev_timer_del(&s->timer);
	/*
	 * A spool file still being written is aborted by smtp_free(); one
	 * asked for but not yet here is aborted when it arrives; a commit
	 * already asked for goes on (the client may send it again).
	 */
	smtp_free(&s->smtp);
	session_unlink(w, s);
	if (s->ipc != NULL)
		worker_ipcount_release(w, s->ipc);
	w->nsessions--;
	free(s);
	worker_session_gone(w);
}

/* DATA: ask the relay for a spool file. */
static void
session_msg_open(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = session_worker;
	struct imsg_out	 out;

	if (w->relay == NULL) {
		smtp_open_done(smtp, -1);
		return;
	}
	s->relay_gen = w->relay_gen;
	imsg_out_init(&out, IMSG_MSG_OPEN, s->id, -1);
	worker_relay_send(w, &out);
}

/* The final dot: send the envelope for the relay to check and commit. */
static void
session_msg_commit(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = session_worker;
	struct imsg_out	*out;
	uint32_t	 i, flags = 0;

	if (w->relay == NULL || s->relay_gen != w->relay_gen) {
		smtp_commit_done(smtp, 0, "queue unavailable, try again later");
		return;
	}
	if ((out = malloc(sizeof(*out))) == NULL) {
		smtp_commit_done(smtp, 0, "out of memory");
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
	imsg_out_init(out, IMSG_MSG_COMMIT, s->id, -1);
	imsg_add_str(out, smtp->peer_ip);
	imsg_add_u32(out, smtp->peer_port);
	imsg_add_str(out, smtp->helo);
	imsg_add_str(out, smtp->mail_from);
	imsg_add_u32(out, smtp->nrcpt);
	for (i = 0; i < smtp->nrcpt; i++)
		imsg_add_str(out, smtp->rcpts[i]);
	imsg_add_u64(out, smtp->datalen);
	imsg_add_u32(out, flags);
	if (out->overflow) {
		free(out);
		smtp_commit_done(smtp, 0, "envelope too large");
		return;
	}
	worker_relay_send(w, out);
	free(out);
}

/* The session dropped its message: the relay may forget the file. */
static void
session_msg_abort(struct smtp_session *smtp)
{
	struct session	*s = smtp->owner;
	struct worker	*w = session_worker;
	struct imsg_out	 out;

	if (w->relay == NULL || s->relay_gen != w->relay_gen)
		return;
	imsg_out_init(&out, IMSG_MSG_ABORT, s->id, -1);
	worker_relay_send(w, &out);
}
