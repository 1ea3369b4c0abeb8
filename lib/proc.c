/*
 * The one receive path of every channel: each message is checked
 * against imsg_rules[] for this receiver, this sender and this phase
 * (type, sender, descriptor, size) before the handler of its type
 * runs.  Child start-up is the same path, blocking, until
 * IMSG_CONF_END.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "proc.h"
#include "proto.h"

/* A channel from a sender of role peer; children start in start-up. */
void
proc_chan_init(struct proc_chan *ch, struct imsgbuf *ib, enum proc_role self,
    enum proc_role peer, const struct proc_handler *handlers, void *arg)
{
	ch->ib = ib;
	ch->self = self;
	ch->peer = peer;
	ch->phase = self != ROLE_PARENT && peer == ROLE_PARENT ?
	    PHASE_STARTUP : PHASE_RUNNING;
	ch->handlers = handlers;
	ch->arg = arg;
	ch->why[0] = '\0';
}

static enum proc_status
proc_bad(struct proc_chan *ch, const struct imsg *imsg, const char *what)
{
	if (imsg == NULL)
		snprintf(ch->why, sizeof(ch->why), "%s", what);
	else
		snprintf(ch->why, sizeof(ch->why), "%s from %s: %s",
		    imsg_name(imsg->hdr.type), role_name(ch->peer), what);
	return PROC_BAD;
}

/* Check one message and run its handler. */
static enum proc_status
proc_handle(struct proc_chan *ch, struct imsg *imsg)
{
	const struct proc_handler	*h;
	const char			*what;

	what = imsg_rule_check(imsg, ch->peer, ch->self, ch->phase);
	if (what != NULL)
		return proc_bad(ch, imsg, what);
	for (h = ch->handlers; h->fn != NULL; h++)
		if (h->type == imsg->hdr.type)
			break;
	if (h->fn == NULL)
		return proc_bad(ch, imsg, "not expected here");
	if (h->fn(ch, imsg) == -1)
		return proc_bad(ch, imsg, "malformed");
	return PROC_OK;
}

/*
 * Handle every complete message already read.  Stops after one that
 * changed the phase (IMSG_CONF_END): what follows waits for the
 * process to be ready for it.  On PROC_BAD, stop reading the channel.
 */
enum proc_status
proc_dispatch(struct proc_chan *ch)
{
	struct imsg		 imsg;
	enum proc_status	 st;
	uint32_t		 phase;
	ssize_t			 n;

	for (;;) {
		if ((n = imsgbuf_get(ch->ib, &imsg)) == -1)
			return proc_bad(ch, NULL, "malformed message");
		if (n == 0)
			return PROC_OK;
		phase = ch->phase;
		st = proc_handle(ch, &imsg);
		imsg_free(&imsg);
		if (st != PROC_OK || ch->phase != phase)
			return st;
	}
}

/* Read what the channel has, then handle it (see proc_dispatch()). */
enum proc_status
proc_recv(struct proc_chan *ch)
{
	ssize_t	 n;

	n = imsgbuf_read(ch->ib);
	if (n == 0)
		return PROC_EOF;
	if (n == -1 && errno != EAGAIN)
		return PROC_ERROR;
	return proc_dispatch(ch);
}

/* IMSG_CONF_END: the start-up is over. */
int
proc_conf_end(struct proc_chan *ch, struct imsg *imsg)
{
	(void)imsg;
	ch->phase = PHASE_RUNNING;
	return 0;
}

/*
 * A child's start-up: a blocking read of the parent's messages up to
 * IMSG_CONF_END, before the event loop and the sandbox exist.  A bad
 * one is fatal.
 */
void
proc_startup(struct proc_chan *ch)
{
	while (ch->phase == PHASE_STARTUP) {
		switch (proc_recv(ch)) {
		case PROC_OK:
			break;
		case PROC_EOF:
			fatalx("parent went away during start-up");
		case PROC_ERROR:
			fatal("start-up read");
		case PROC_BAD:
			fatalx("bad start-up message from the parent: %s",
			    ch->why);
		}
	}
}

/*
 * The parent's channel in a child (arg: its proc_chan).  Whatever the
 * parent sends is checked too; a bad message, like a lost parent, ends
 * the child.
 */
void
proc_parent_io(int fd, int events, void *arg)
{
	struct proc_chan	*ch = arg;

	(void)fd;
	if ((events & EV_WRITE) && proc_flush(ch->ib) == -1)
		fatal("write to parent");
	if (!(events & EV_READ))
		return;
	switch (proc_recv(ch)) {
	case PROC_OK:
		return;
	case PROC_EOF:
		fatalx("parent went away");
	case PROC_ERROR:
		fatal("read from parent");
	case PROC_BAD:
		fatalx("bad message from the parent: %s", ch->why);
	}
}

/*
 * IMSG_PING from the parent: answer with the same sequence number at
 * once (a child that cannot is killed as stuck).
 */
int
proc_pong(struct proc_chan *ch, struct imsg *imsg)
{
	struct imsg_out	 out;
	uint32_t	 seq;

	if (imsg_get_u32(imsg, &seq) == -1)
		return -1;
	imsg_out_init(&out, IMSG_PONG, 0, -1);
	imsg_add_u32(&out, seq);
	if (proc_send(ch->ib, &out) == -1)
		fatal("pong to the parent");
	return 0;
}

/* IMSG_LOG_LEVEL: smtpctl log verbose|brief, in every child. */
int
proc_log_level(struct proc_chan *ch, struct imsg *imsg)
{
	uint32_t	 v;

	(void)ch;
	if (imsg_get_u32(imsg, &v) == -1 || v > 1)
		return -1;
	log_set_verbose((int)v);
	return 0;
}

/* Make fd non-blocking, or die. */
void
proc_nonblock(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("fcntl O_NONBLOCK");
}

/* Write all of buf to a blocking descriptor (a file); -1 on error. */
int
proc_write_full(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Write what ib has queued, asking for EV_WRITE while some is left and
 * dropping it once none is; -1 if the write failed.
 */
int
proc_flush(struct imsgbuf *ib)
{
	int	 rc;

	rc = imsgbuf_write(ib);
	ev_mod(ib->fd, imsgbuf_pending(ib) ? EV_READ | EV_WRITE : EV_READ);
	return rc;
}

/*
 * Queue out on ib, to be written by the owner's flush at the end of the
 * event round (ev_set_flush(), proc_flush()); -1 if it could not be
 * queued.
 */
int
proc_queue(struct imsgbuf *ib, struct imsg_out *out)
{
	return imsgbuf_queue(ib, out);
}

/*
 * Queue out on ib and write what the socket takes now; the rest goes
 * when ib's descriptor turns writable (EV_WRITE is asked for, and the
 * owner's handler drops it once the queue is empty).  -1 if out could
 * not be queued or the write failed: the caller decides how bad.
 */
int
proc_send(struct imsgbuf *ib, struct imsg_out *out)
{
	if (imsgbuf_queue(ib, out) == -1 || imsgbuf_write(ib) == -1)
		return -1;
	if (imsgbuf_pending(ib))
		ev_mod(ib->fd, EV_READ | EV_WRITE);
	return 0;
}
