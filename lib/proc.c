/*
 * Child start-up: a blocking read of the parent's messages up to
 * IMSG_CONF_END, before the event loop and the sandbox exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "proc.h"
#include "proto.h"

/* Hand each start-up message to cb until IMSG_CONF_END arrives. */
void
proc_read_startup(struct imsgbuf *ib, proc_startup_cb cb, void *arg)
{
	struct imsg	 imsg;
	ssize_t		 n;

	for (;;) {
		if ((n = imsgbuf_get(ib, &imsg)) == -1)
			fatal("start-up message from the parent");
		if (n == 0) {
			if ((n = imsgbuf_read(ib)) == -1)
				fatal("start-up read");
			if (n == 0)
				fatalx("parent went away during start-up");
			continue;
		}
		if (imsg.hdr.type == IMSG_CONF_END) {
			imsg_free(&imsg);
			return;
		}
		cb(&imsg, arg);
		imsg_free(&imsg);
	}
}

/*
 * IMSG_PING from the parent: answer with the same sequence number at
 * once (a child that cannot is killed as stuck).  -1 if malformed.
 */
int
proc_pong(struct imsgbuf *ib, struct imsg *imsg)
{
	struct imsg_out	 out;
	uint32_t	 seq;

	if (imsg->fd != -1 || imsg_get_u32(imsg, &seq) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	imsg_out_init(&out, IMSG_PONG, 0, -1);
	imsg_add_u32(&out, seq);
	if (proc_send(ib, &out) == -1)
		fatal("pong to the parent");
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
