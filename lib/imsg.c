/*
 * imsg framing over a stream socketpair.  The reader keeps a bounded
 * buffer and a queue of received descriptors; a message flagged
 * IMSG_F_FD claims the oldest one.  The sender attaches a descriptor to
 * the first byte of its message, so it always arrives no later than the
 * header that claims it.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#define IMSG_HDR_SIZE	sizeof(struct imsg_hdr)
#define IMSG_WRITE_IOV	64
#define IMSG_OUT_MIN	256	/* a new message's first buffer */

/* Make an empty buffer for one end of a socketpair. */
void
imsgbuf_init(struct imsgbuf *ib, int fd)
{
	memset(ib, 0, sizeof(*ib));
	ib->fd = fd;
	ib->pid = getpid();
}

/* A written or dropped message: wiped, as it may have carried a password. */
static void
imsg_wmsg_free(struct imsg_wmsg *wm)
{
	if (wm->fd != -1)
		close(wm->fd);
	explicit_bzero(wm->buf, wm->len);
	free(wm->buf);
	free(wm);
}

/* Free queued messages and close every descriptor not yet claimed. */
void
imsgbuf_clear(struct imsgbuf *ib)
{
	struct imsg_wmsg	*wm;
	size_t			 i;

	while ((wm = ib->whead) != NULL) {
		ib->whead = wm->next;
		imsg_wmsg_free(wm);
	}
	ib->wtail = NULL;
	ib->wqueued = 0;
	for (i = 0; i < ib->nrfds; i++)
		close(ib->rfds[i]);
	ib->nrfds = 0;
	ib->rlen = 0;
}

/* Keep the descriptors of one control message; -1 if too many. */
static int
imsgbuf_take_fds(struct imsgbuf *ib, struct msghdr *msg)
{
	struct cmsghdr	*cm;
	size_t		 i, n;
	int		 fd, rc = 0;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (ib->nrfds == IMSG_MAX_FDS) {
				close(fd);
				rc = -1;
				continue;
			}
			ib->rfds[ib->nrfds++] = fd;
		}
	}
	return rc;
}

/*
 * Read what the socket has.  Returns the bytes read, 0 on end of file,
 * -1 on error (errno EAGAIN when nothing is there, EBADMSG when the peer
 * broke the protocol).
 */
ssize_t
imsgbuf_read(struct imsgbuf *ib)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 8)];
	} cmsgbuf;
	ssize_t		 n;

	if (ib->rlen == sizeof(ib->rbuf)) {
		errno = EBADMSG;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ib->rbuf + ib->rlen;
	iov.iov_len = sizeof(ib->rbuf) - ib->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);

	do {
		n = recvmsg(ib->fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (imsgbuf_take_fds(ib, &msg) == -1 ||
	    (msg.msg_flags & MSG_CTRUNC)) {
		errno = EBADMSG;
		return -1;
	}
	ib->rlen += n;
	return n;
}

/*
 * Take the next complete message out of the read buffer.  Returns its
 * size, 0 when none is complete yet, -1 (errno EBADMSG) when the header
 * is impossible or a claimed descriptor never came.
 */
ssize_t
imsgbuf_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct imsg_hdr	 hdr;
	size_t		 datalen;

	memset(imsg, 0, sizeof(*imsg));
	imsg->fd = -1;
	if (ib->rlen < IMSG_HDR_SIZE)
		return 0;
	memcpy(&hdr, ib->rbuf, sizeof(hdr));
	if (hdr.len < IMSG_HDR_SIZE || hdr.len > IMSG_MAX_SIZE ||
	    (hdr.flags & ~IMSG_F_FD) != 0) {
		errno = EBADMSG;
		return -1;
	}
	if (ib->rlen < hdr.len)
		return 0;
	if (hdr.flags & IMSG_F_FD) {
		if (ib->nrfds == 0) {
			errno = EBADMSG;
			return -1;
		}
		imsg->fd = ib->rfds[0];
		ib->nrfds--;
		memmove(ib->rfds, ib->rfds + 1, ib->nrfds * sizeof(int));
	}
	datalen = hdr.len - IMSG_HDR_SIZE;
	imsg->hdr = hdr;
	imsg->datalen = datalen;
	if (datalen > 0) {
		if ((imsg->data = malloc(datalen)) == NULL) {
			if (imsg->fd != -1)
				close(imsg->fd);
			imsg->fd = -1;
			return -1;
		}
		memcpy(imsg->data, ib->rbuf + IMSG_HDR_SIZE, datalen);
	}
	ib->rlen -= hdr.len;
	memmove(ib->rbuf, ib->rbuf + hdr.len, ib->rlen);
	return hdr.len;
}

/* Release a message; a descriptor nobody took is closed. */
void
imsg_free(struct imsg *imsg)
{
	free(imsg->data);
	imsg->data = NULL;
	if (imsg->fd != -1)
		close(imsg->fd);
	imsg->fd = -1;
}

/* Start composing a message; fd is -1 or a descriptor to pass. */
void
imsg_out_init(struct imsg_out *out, uint32_t type, uint32_t peerid, int fd)
{
	memset(out, 0, sizeof(*out));
	out->hdr.type = type;
	out->hdr.peerid = peerid;
	out->hdr.pid = 0;		/* the buffer's, when queued */
	out->hdr.flags = fd == -1 ? 0 : IMSG_F_FD;
	out->fd = fd;
	out->len = IMSG_HDR_SIZE;
	out->buf = NULL;
}

/* Drop a message that will not be queued; its descriptor stays the caller's. */
void
imsg_out_free(struct imsg_out *out)
{
	if (out->buf != NULL) {
		explicit_bzero(out->buf, out->len);
		free(out->buf);
	}
	out->buf = NULL;
	out->cap = 0;
}

/*
 * Room for need bytes in all.  The buffer grows by doubling; the old
 * one is wiped, not left to the allocator with a password in it.
 */
static int
imsg_out_reserve(struct imsg_out *out, size_t need)
{
	uint8_t	*nbuf;
	size_t	 ncap;

	if (out->overflow || need > IMSG_MAX_SIZE) {
		out->overflow = 1;
		return -1;
	}
	if (out->buf != NULL && need <= out->cap)
		return 0;
	for (ncap = out->cap ? out->cap : IMSG_OUT_MIN; ncap < need; ncap *= 2)
		;
	if (ncap > IMSG_MAX_SIZE)
		ncap = IMSG_MAX_SIZE;
	if ((nbuf = malloc(ncap)) == NULL) {
		out->overflow = 1;
		return -1;
	}
	if (out->buf != NULL) {
		memcpy(nbuf, out->buf, out->len);
		explicit_bzero(out->buf, out->len);
		free(out->buf);
	}
	out->buf = nbuf;
	out->cap = ncap;
	return 0;
}

int
imsg_add_data(struct imsg_out *out, const void *data, size_t len)
{
	if (out->overflow || len > IMSG_MAX_SIZE - out->len ||
	    imsg_out_reserve(out, out->len + len) == -1) {
		out->overflow = 1;
		return -1;
	}
	if (len > 0)
		memcpy(out->buf + out->len, data, len);
	out->len += len;
	return 0;
}

int
imsg_add_u32(struct imsg_out *out, uint32_t v)
{
	return imsg_add_data(out, &v, sizeof(v));
}

int
imsg_add_u64(struct imsg_out *out, uint64_t v)
{
	return imsg_add_data(out, &v, sizeof(v));
}

/* A string travels as a u32 length and its bytes, without the NUL. */
int
imsg_add_str(struct imsg_out *out, const char *s)
{
	size_t	 len = strlen(s);

	if (len > UINT32_MAX || imsg_add_u32(out, (uint32_t)len) == -1)
		return -1;
	return imsg_add_data(out, s, len);
}

int
imsg_add_sa(struct imsg_out *out, const struct sockaddr *sa, socklen_t len)
{
	if (imsg_add_u32(out, (uint32_t)len) == -1)
		return -1;
	return imsg_add_data(out, sa, len);
}

/*
 * Queue a composed message for writing: its bytes now belong to the
 * buffer, and so does the descriptor, if any, closed once sent.  -1 if
 * the message grew past IMSG_MAX_SIZE or memory ran out; either way out
 * holds nothing more to free (the descriptor stays the caller's on -1).
 */
int
imsgbuf_queue(struct imsgbuf *ib, struct imsg_out *out)
{
	struct imsg_wmsg	*wm;

	if (out->overflow) {
		imsg_out_free(out);
		errno = EMSGSIZE;
		return -1;
	}
	if (imsg_out_reserve(out, out->len) == -1 ||
	    (wm = malloc(sizeof(*wm))) == NULL) {
		imsg_out_free(out);
		errno = ENOMEM;
		return -1;
	}
	out->hdr.len = (uint32_t)out->len;
	out->hdr.pid = (uint32_t)ib->pid;
	memcpy(out->buf, &out->hdr, sizeof(out->hdr));
	wm->next = NULL;
	wm->fd = out->fd;
	wm->len = out->len;
	wm->off = 0;
	wm->buf = out->buf;
	out->buf = NULL;
	out->cap = 0;
	if (ib->wtail != NULL)
		ib->wtail->next = wm;
	else
		ib->whead = wm;
	ib->wtail = wm;
	ib->wqueued++;
	return 0;
}

/* Compose and queue a message with a flat payload. */
int
imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct imsg_out	 out;

	imsg_out_init(&out, type, peerid, fd);
	imsg_add_data(&out, data, len);
	return imsgbuf_queue(ib, &out);
}

/* Whether messages wait to be written. */
int
imsgbuf_pending(const struct imsgbuf *ib)
{
	return ib->whead != NULL;
}

/*
 * Write as much of the queue as the socket takes.  A message with a
 * descriptor is always the first of a sendmsg() so the descriptor rides
 * on its first byte.  Returns 0 (errno EAGAIN if the socket is full) or
 * -1 on error.
 */
int
imsgbuf_write(struct imsgbuf *ib)
{
	struct iovec		 iov[IMSG_WRITE_IOV];
	struct msghdr		 msg;
	struct imsg_wmsg	*wm;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr		*cm;
	ssize_t			 n;
	int			 iovcnt;

	while (ib->whead != NULL) {
		memset(&msg, 0, sizeof(msg));
		iovcnt = 0;
		for (wm = ib->whead; wm != NULL && iovcnt < IMSG_WRITE_IOV;
		    wm = wm->next) {
			if (iovcnt > 0 && wm->fd != -1)
				break;
			iov[iovcnt].iov_base = wm->buf + wm->off;
			iov[iovcnt].iov_len = wm->len - wm->off;
			iovcnt++;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = iovcnt;
		if (ib->whead->fd != -1 && ib->whead->off == 0) {
			memset(&cmsgbuf, 0, sizeof(cmsgbuf));
			msg.msg_control = &cmsgbuf.buf;
			msg.msg_controllen = sizeof(cmsgbuf.buf);
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			memcpy(CMSG_DATA(cm), &ib->whead->fd, sizeof(int));
		}
		do {
			n = sendmsg(ib->fd, &msg, MSG_NOSIGNAL);
		} while (n == -1 && errno == EINTR);
		if (n == -1)
			return errno == EAGAIN ? 0 : -1;
		if (msg.msg_control != NULL) {
			close(ib->whead->fd);
			ib->whead->fd = -1;
		}
		while (n > 0 && (wm = ib->whead) != NULL) {
			size_t left = wm->len - wm->off;

			if ((size_t)n < left) {
				wm->off += n;
				break;
			}
			n -= left;
			ib->whead = wm->next;
			if (ib->whead == NULL)
				ib->wtail = NULL;
			ib->wqueued--;
			imsg_wmsg_free(wm);
		}
	}
	errno = 0;
	return 0;
}

/* Copy the next len payload bytes; -1 if fewer are left. */
int
imsg_get_data(struct imsg *imsg, void *dst, size_t len)
{
	/* A read position past the end is no room at all, never a wrap. */
	if (imsg->rpos > imsg->datalen || len > imsg->datalen - imsg->rpos)
		return -1;
	if (len > 0)
		memcpy(dst, imsg->data + imsg->rpos, len);
	imsg->rpos += len;
	return 0;
}

int
imsg_get_u32(struct imsg *imsg, uint32_t *v)
{
	return imsg_get_data(imsg, v, sizeof(*v));
}

int
imsg_get_u64(struct imsg *imsg, uint64_t *v)
{
	return imsg_get_data(imsg, v, sizeof(*v));
}

/*
 * Read a string into dst (NUL-terminated); -1 if it does not fit, is
 * short, or holds a NUL byte of its own.
 */
int
imsg_get_str(struct imsg *imsg, char *dst, size_t dstsz)
{
	uint32_t	 len;
	size_t		 save = imsg->rpos;

	if (imsg_get_u32(imsg, &len) == -1 || len >= dstsz ||
	    imsg_get_data(imsg, dst, len) == -1) {
		imsg->rpos = save;
		return -1;
	}
	dst[len] = '\0';
	if (memchr(dst, '\0', len) != NULL) {
		imsg->rpos = save;
		return -1;
	}
	return 0;
}

/* Read a socket address of family AF_INET or AF_INET6 only. */
int
imsg_get_sa(struct imsg *imsg, struct sockaddr_storage *ss, socklen_t *slen)
{
	uint32_t	 len;
	size_t		 save = imsg->rpos;

	memset(ss, 0, sizeof(*ss));
	if (imsg_get_u32(imsg, &len) == -1 || len > sizeof(*ss) ||
	    len < sizeof(sa_family_t) || imsg_get_data(imsg, ss, len) == -1)
		goto bad;
	if ((ss->ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
	    (ss->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))) {
		*slen = len;
		return 0;
	}
bad:
	imsg->rpos = save;
	return -1;
}

/* 0 when the whole payload was consumed, -1 when bytes are left over. */
int
imsg_get_end(const struct imsg *imsg)
{
	return imsg->rpos == imsg->datalen ? 0 : -1;
}
