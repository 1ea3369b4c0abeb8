/*
 * libFuzzer harness for the imsg reader and the typed getters.  The input
 * is what a hostile peer writes on the socketpair, split into writes of
 * a size chosen by its first byte, the first write optionally carrying a
 * descriptor.  Every message that comes out is taken apart by the getters
 * and by conf_recv(); what they accept must encode back to the same bytes.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define HDRSZ	sizeof(struct imsg_hdr)

static struct imsgbuf	 rib, wib;

/* The payload of the only message queued on wib; -1 if not so. */
static int
queued_payload(const uint8_t **p, size_t *len)
{
	struct imsg_wmsg	*wm = wib.whead;

	if (wm == NULL || wm->next != NULL || wm->len < HDRSZ)
		return -1;
	*p = wm->buf + HDRSZ;
	*len = wm->len - HDRSZ;
	return 0;
}

static void
take_apart(struct imsg *imsg)
{
	struct smtpd_conf	 conf;
	struct sockaddr_storage	 ss;
	struct imsg_out		 out;
	const uint8_t		*p;
	socklen_t		 slen;
	uint64_t		 u64;
	uint32_t		 u32, prog;
	size_t			 plen, save;
	char			 str[300];
	int			 i, rc;

	if (imsg->hdr.len != HDRSZ + imsg->datalen ||
	    imsg->hdr.len > IMSG_MAX_SIZE || (imsg->datalen > 0) !=
	    (imsg->data != NULL))
		abort();
	if ((imsg->hdr.flags & IMSG_F_FD) ? imsg->fd < 0 : imsg->fd != -1)
		abort();

	/* The peer id picks the getters, two bits each. */
	prog = imsg->hdr.peerid;
	imsg_out_init(&out, imsg->hdr.type, imsg->hdr.peerid, -1);
	for (i = 0; i < 16; i++, prog >>= 2) {
		save = imsg->rpos;
		switch (prog & 3) {
		case 0:
			rc = imsg_get_u32(imsg, &u32);
			if (rc == 0)
				imsg_add_u32(&out, u32);
			break;
		case 1:
			rc = imsg_get_u64(imsg, &u64);
			if (rc == 0)
				imsg_add_u64(&out, u64);
			break;
		case 2:
			rc = imsg_get_str(imsg, str, sizeof(str));
			if (rc == 0) {
				if (strlen(str) >= sizeof(str))
					abort();
				imsg_add_str(&out, str);
			}
			break;
		default:
			rc = imsg_get_sa(imsg, &ss, &slen);
			if (rc == 0) {
				if (slen > sizeof(ss) ||
				    (ss.ss_family != AF_INET &&
				    ss.ss_family != AF_INET6))
					abort();
				imsg_add_sa(&out, (struct sockaddr *)&ss, slen);
			}
			break;
		}
		if (imsg->rpos > imsg->datalen)
			abort();
		if (rc == -1) {
			/* A failed get consumes nothing. */
			if (imsg->rpos != save)
				abort();
			break;
		}
	}
	/* What was read encodes back to the same bytes. */
	if (out.overflow || out.len - HDRSZ != imsg->rpos ||
	    (imsg->rpos > 0 &&
	    memcmp(out.buf + HDRSZ, imsg->data, imsg->rpos) != 0))
		abort();
	imsg_out_free(&out);
	if ((imsg_get_end(imsg) == 0) != (imsg->rpos == imsg->datalen))
		abort();

	/* Every message is also offered as a configuration. */
	imsg->rpos = 0;
	if (conf_recv(imsg, &conf) == 0) {
		if (imsg_get_end(imsg) != 0 ||
		    strnlen(conf.hostname, sizeof(conf.hostname)) ==
		    sizeof(conf.hostname) ||
		    strnlen(conf.chroot, sizeof(conf.chroot)) ==
		    sizeof(conf.chroot) ||
		    strnlen(conf.queue, sizeof(conf.queue)) ==
		    sizeof(conf.queue) ||
		    strnlen(conf.user, sizeof(conf.user)) ==
		    sizeof(conf.user))
			abort();
		/* A configuration accepted has one encoding: this one. */
		if (conf_send(&wib, &conf) != 0 ||
		    queued_payload(&p, &plen) != 0 ||
		    plen != imsg->datalen ||
		    memcmp(p, imsg->data, plen) != 0)
			abort();
		imsgbuf_clear(&wib);
	}
}

/* Write with an optional descriptor; returns bytes written or -1. */
static ssize_t
send_chunk(int fd, const uint8_t *p, size_t len, int passfd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr	*cmp;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)p;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (passfd != -1) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		cmp = CMSG_FIRSTHDR(&msg);
		cmp->cmsg_len = CMSG_LEN(sizeof(int));
		cmp->cmsg_level = SOL_SOCKET;
		cmp->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmp), &passfd, sizeof(int));
	}
	return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Read and take apart what is there; -1 once the reader gives up. */
static int
drain(void)
{
	struct imsg	 imsg;
	ssize_t		 n, m;

	for (;;) {
		n = imsgbuf_read(&rib);
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		if (rib.rlen > sizeof(rib.rbuf) || rib.nrfds > IMSG_MAX_FDS)
			abort();
		while ((m = imsgbuf_get(&rib, &imsg)) > 0) {
			take_apart(&imsg);
			imsg_free(&imsg);
		}
		if (m == -1) {
			if (errno != EBADMSG || imsg.fd != -1 ||
			    imsg.data != NULL)
				abort();
			return -1;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int		 sv[2], passfd = -1, dead = 0, fd;
	size_t		 off, chunk;
	ssize_t		 n;

	if (size < 1)
		return 0;
	chunk = 1 + (data[0] >> 1) * 37;
	if (data[0] & 1)
		passfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		abort();
	imsgbuf_init(&rib, sv[1]);
	imsgbuf_init(&wib, -1);

	for (off = 0; off < size && !dead; off += n) {
		n = send_chunk(sv[0], data + off, size - off < chunk ?
		    size - off : chunk, passfd);
		if (n == -1) {
			if (errno != EAGAIN)
				abort();
			n = 0;
		} else if (passfd != -1) {
			close(passfd);
			passfd = -1;
		}
		if (drain() == -1)
			dead = 1;
	}
	if (passfd != -1)
		close(passfd);
	shutdown(sv[0], SHUT_WR);
	if (!dead)
		while (drain() == 0)
			;
	imsgbuf_clear(&rib);
	imsgbuf_clear(&wib);
	close(sv[0]);
	close(sv[1]);

	/* No descriptor may outlive its run. */
	if ((fd = open("/dev/null", O_RDONLY)) == -1 || fd > 64)
		abort();
	close(fd);
	return 0;
}
