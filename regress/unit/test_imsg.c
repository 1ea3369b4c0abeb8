/*
 * imsg framing: real socketpairs, descriptor passing, partial reads and
 * every way a peer can lie in a header or a payload.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "imsg.h"

#define HDRSZ	sizeof(struct imsg_hdr)

struct pair {
	int		sv[2];
	struct imsgbuf	w;	/* writes on sv[0] */
	struct imsgbuf	r;	/* reads on sv[1] */
};

static void
pair_open(struct pair *p)
{
	assert_int_equal(socketpair(AF_UNIX,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->sv), 0);
	imsgbuf_init(&p->w, p->sv[0]);
	imsgbuf_init(&p->r, p->sv[1]);
}

static void
pair_close(struct pair *p)
{
	imsgbuf_clear(&p->w);
	imsgbuf_clear(&p->r);
	if (p->sv[0] != -1)
		close(p->sv[0]);
	if (p->sv[1] != -1)
		close(p->sv[1]);
}

/* Flush the writer completely (the socket holds what we send here). */
static void
flush(struct imsgbuf *ib)
{
	assert_int_equal(imsgbuf_write(ib), 0);
	assert_false(imsgbuf_pending(ib));
	assert_int_equal(ib->wqueued, 0);
}

/* Read until one message is complete; returns imsgbuf_get()'s value. */
static ssize_t
get_one(struct imsgbuf *ib, struct imsg *imsg)
{
	ssize_t	 n;
	int	 tries;

	for (tries = 0; tries < 1000; tries++) {
		if ((n = imsgbuf_get(ib, imsg)) != 0)
			return n;
		n = imsgbuf_read(ib);
		if (n == 0)
			return 0;
		if (n == -1 && errno != EAGAIN)
			return -1;
	}
	fail_msg("no complete message");
	return -1;
}

/* Write raw bytes on a descriptor, as a lying peer would. */
static void
raw_write(int fd, const void *p, size_t len)
{
	assert_int_equal(write(fd, p, len), (ssize_t)len);
}

static void
raw_hdr(int fd, uint32_t type, uint32_t len, uint32_t flags)
{
	struct imsg_hdr	 h;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.len = len;
	h.peerid = 7;
	h.pid = 1;
	h.flags = flags;
	raw_write(fd, &h, sizeof(h));
}

/* A message on the heap for the getters, without a socket. */
static void
fake_imsg(struct imsg *imsg, const void *data, size_t len)
{
	memset(imsg, 0, sizeof(*imsg));
	imsg->fd = -1;
	imsg->datalen = len;
	if (len > 0) {
		imsg->data = malloc(len);
		assert_non_null(imsg->data);
		memcpy(imsg->data, data, len);
	}
}

static void
test_roundtrip(void **state)
{
	struct pair		 p;
	struct imsg_out		 out;
	struct imsg		 imsg;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	struct sockaddr_storage	 ss;
	socklen_t		 slen;
	uint32_t		 u32;
	uint64_t		 u64;
	char			 str[32];
	size_t			 want;

	(void)state;
	pair_open(&p);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(587);
	sin6.sin6_addr = in6addr_loopback;

	imsg_out_init(&out, 42, 0xdeadbeef, -1);
	assert_int_equal(imsg_add_u32(&out, 0x01020304), 0);
	assert_int_equal(imsg_add_u64(&out, 0x1122334455667788ULL), 0);
	assert_int_equal(imsg_add_str(&out, "hello"), 0);
	assert_int_equal(imsg_add_str(&out, ""), 0);
	assert_int_equal(imsg_add_sa(&out, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	assert_int_equal(imsg_add_sa(&out, (struct sockaddr *)&sin6,
	    sizeof(sin6)), 0);
	assert_int_equal(imsgbuf_queue(&p.w, &out), 0);
	assert_true(imsgbuf_pending(&p.w));
	assert_int_equal(p.w.wqueued, 1);
	/* An empty message too. */
	assert_int_equal(imsg_compose(&p.w, 43, 1, -1, NULL, 0), 0);
	assert_int_equal(p.w.wqueued, 2);
	flush(&p.w);

	want = HDRSZ + 4 + 8 + (4 + 5) + 4 + (4 + sizeof(sin)) +
	    (4 + sizeof(sin6));
	assert_int_equal(get_one(&p.r, &imsg), (ssize_t)want);
	assert_int_equal(imsg.hdr.type, 42);
	assert_int_equal(imsg.hdr.len, want);
	assert_int_equal(imsg.hdr.peerid, 0xdeadbeef);
	assert_int_equal(imsg.hdr.pid, getpid());
	assert_int_equal(imsg.hdr.flags, 0);
	assert_int_equal(imsg.fd, -1);
	assert_int_equal(imsg.datalen, want - HDRSZ);

	assert_int_equal(imsg_get_u32(&imsg, &u32), 0);
	assert_int_equal(u32, 0x01020304);
	assert_int_equal(imsg_get_u64(&imsg, &u64), 0);
	assert_true(u64 == 0x1122334455667788ULL);
	assert_int_equal(imsg_get_end(&imsg), -1);
	assert_int_equal(imsg_get_str(&imsg, str, sizeof(str)), 0);
	assert_string_equal(str, "hello");
	assert_int_equal(imsg_get_str(&imsg, str, sizeof(str)), 0);
	assert_string_equal(str, "");
	assert_int_equal(imsg_get_sa(&imsg, &ss, &slen), 0);
	assert_int_equal(slen, sizeof(sin));
	assert_memory_equal(&ss, &sin, sizeof(sin));
	assert_int_equal(imsg_get_sa(&imsg, &ss, &slen), 0);
	assert_int_equal(slen, sizeof(sin6));
	assert_memory_equal(&ss, &sin6, sizeof(sin6));
	assert_int_equal(imsg_get_end(&imsg), 0);
	/* Nothing more: every getter fails and leaves the position. */
	assert_int_equal(imsg_get_u32(&imsg, &u32), -1);
	assert_int_equal(imsg.rpos, imsg.datalen);
	imsg_free(&imsg);
	assert_null(imsg.data);

	assert_int_equal(get_one(&p.r, &imsg), (ssize_t)HDRSZ);
	assert_int_equal(imsg.hdr.type, 43);
	assert_int_equal(imsg.datalen, 0);
	assert_null(imsg.data);
	assert_int_equal(imsg_get_end(&imsg), 0);
	assert_int_equal(imsg_get_u32(&imsg, &u32), -1);
	imsg_free(&imsg);

	/* Nothing left: get says 0, read says EAGAIN. */
	assert_int_equal(imsgbuf_get(&p.r, &imsg), 0);
	assert_int_equal(imsg.fd, -1);
	errno = 0;
	assert_int_equal(imsgbuf_read(&p.r), -1);
	assert_int_equal(errno, EAGAIN);

	/* End of file. */
	close(p.sv[0]);
	p.sv[0] = -1;
	assert_int_equal(imsgbuf_read(&p.r), 0);
	pair_close(&p);
}

static void
test_fd_passing(void **state)
{
	struct pair	 p;
	struct imsg	 imsg;
	int		 pfd[2], fd, flags;
	char		 buf[16];

	(void)state;
	pair_open(&p);
	assert_int_equal(pipe(pfd), 0);

	/* The write end of the pipe goes to the other side. */
	assert_int_equal(imsg_compose(&p.w, 5, 9, pfd[1], "x", 1), 0);
	flush(&p.w);
	/* The sender's copy was closed once sent. */
	errno = 0;
	assert_int_equal(fcntl(pfd[1], F_GETFD), -1);
	assert_int_equal(errno, EBADF);

	assert_int_equal(get_one(&p.r, &imsg), (ssize_t)HDRSZ + 1);
	assert_int_equal(imsg.hdr.type, 5);
	assert_int_equal(imsg.hdr.peerid, 9);
	assert_int_equal(imsg.hdr.flags, IMSG_F_FD);
	assert_int_equal(imsg.datalen, 1);
	assert_int_equal(imsg.data[0], 'x');
	assert_true(imsg.fd >= 0);
	assert_int_equal(p.r.nrfds, 0);
	flags = fcntl(imsg.fd, F_GETFD);
	assert_true(flags != -1 && (flags & FD_CLOEXEC));

	fd = imsg.fd;
	assert_int_equal(write(fd, "hello", 5), 5);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	/* imsg_free closes the descriptor: the pipe now sees EOF. */
	imsg_free(&imsg);
	assert_int_equal(imsg.fd, -1);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 0);
	close(pfd[0]);
	pair_close(&p);
}

/* Descriptors are claimed in order, messages without one take none. */
static void
test_fd_order(void **state)
{
	struct pair	 p;
	struct imsg	 imsg;
	int		 pipes[3][2], i;
	char		 c;

	(void)state;
	pair_open(&p);
	for (i = 0; i < 3; i++)
		assert_int_equal(pipe(pipes[i]), 0);
	assert_int_equal(imsg_compose(&p.w, 1, 0, pipes[0][1], NULL, 0), 0);
	assert_int_equal(imsg_compose(&p.w, 2, 0, -1, "ab", 2), 0);
	assert_int_equal(imsg_compose(&p.w, 3, 0, pipes[1][1], NULL, 0), 0);
	assert_int_equal(imsg_compose(&p.w, 4, 0, pipes[2][1], "c", 1), 0);
	assert_int_equal(p.w.wqueued, 4);
	flush(&p.w);
	/* Everything read before anything is taken: three fds wait. */
	while (imsgbuf_read(&p.r) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(p.r.nrfds, 3);

	for (i = 0; i < 4; i++) {
		assert_int_equal(imsgbuf_get(&p.r, &imsg) > 0, 1);
		assert_int_equal(imsg.hdr.type, (uint32_t)i + 1);
		if (i == 1) {
			assert_int_equal(imsg.fd, -1);
			assert_int_equal(imsg.hdr.flags, 0);
		} else {
			int k = i == 0 ? 0 : i - 1;

			assert_true(imsg.fd >= 0);
			c = 'A' + k;
			assert_int_equal(write(imsg.fd, &c, 1), 1);
			c = 0;
			assert_int_equal(read(pipes[k][0], &c, 1), 1);
			assert_int_equal(c, 'A' + k);
		}
		imsg_free(&imsg);
	}
	assert_int_equal(p.r.nrfds, 0);
	for (i = 0; i < 3; i++)
		close(pipes[i][0]);
	pair_close(&p);
}

static void
fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7);
}

/*
 * Many messages queued, more than the socket holds, written and read in
 * turns: every one arrives whole and in order.
 */
static void
test_many_messages(void **state)
{
	struct pair	 p;
	struct imsg	 imsg;
	static uint8_t	 data[IMSG_MAX_SIZE], want[IMSG_MAX_SIZE];
	unsigned int	 i, got = 0;
	const unsigned int nmsg = 600;
	size_t		 len;
	ssize_t		 n;
	struct pollfd	 pfd;

	(void)state;
	pair_open(&p);
	for (i = 0; i < nmsg; i++) {
		len = (i * 997) % (IMSG_MAX_SIZE - HDRSZ + 1);
		fill_pattern(data, len, i);
		assert_int_equal(imsg_compose(&p.w, i, i, -1, data, len), 0);
	}
	assert_int_equal(p.w.wqueued, nmsg);

	while (got < nmsg) {
		assert_int_equal(imsgbuf_write(&p.w), 0);
		pfd.fd = p.sv[1];
		pfd.events = POLLIN;
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		n = imsgbuf_read(&p.r);
		assert_true(n > 0);
		while ((n = imsgbuf_get(&p.r, &imsg)) > 0) {
			len = (got * 997) % (IMSG_MAX_SIZE - HDRSZ + 1);
			assert_int_equal(n, (ssize_t)(len + HDRSZ));
			assert_int_equal(imsg.hdr.type, got);
			assert_int_equal(imsg.hdr.peerid, got);
			assert_int_equal(imsg.datalen, len);
			fill_pattern(want, len, got);
			if (len > 0)
				assert_memory_equal(imsg.data, want, len);
			imsg_free(&imsg);
			got++;
		}
		assert_int_equal(n, 0);
	}
	assert_false(imsgbuf_pending(&p.w));
	assert_int_equal(p.r.rlen, 0);
	pair_close(&p);
}

/*
 * The same stream trickled a few bytes at a time: headers and payloads
 * split anywhere, a descriptor riding on the first byte of its message.
 */
static void
test_read_in_pieces(void **state)
{
	struct pair	 p;
	struct imsg	 imsg;
	uint8_t		 stream[4096];
	size_t		 slen = 0, off, chunk, i;
	ssize_t		 n;
	int		 sv[2], got = 0, pfd[2];
	char		 c;
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr	*cmp;

	(void)state;
	/* Produce a reference byte stream with the real writer. */
	pair_open(&p);
	for (i = 0; i < 20; i++)
		assert_int_equal(imsg_compose(&p.w, (uint32_t)i, 0, -1,
		    "0123456789abcdefghij", i), 0);
	flush(&p.w);
	while ((n = read(p.sv[1], stream + slen, sizeof(stream) - slen)) > 0)
		slen += n;
	assert_int_equal(slen, 20 * HDRSZ + 190);
	pair_close(&p);

	for (chunk = 1; chunk <= 23; chunk += 11) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM |
		    SOCK_NONBLOCK, 0, sv), 0);
		imsgbuf_init(&p.r, sv[1]);
		got = 0;
		for (off = 0; off < slen; off += n) {
			n = slen - off < chunk ? slen - off : chunk;
			raw_write(sv[0], stream + off, n);
			assert_int_equal(imsgbuf_read(&p.r), n);
			while (imsgbuf_get(&p.r, &imsg) > 0) {
				assert_int_equal(imsg.hdr.type, got);
				assert_int_equal(imsg.datalen, (size_t)got);
				assert_memory_equal(imsg.data,
				    "0123456789abcdefghij", got);
				imsg_free(&imsg);
				got++;
			}
		}
		assert_int_equal(got, 20);
		imsgbuf_clear(&p.r);
		close(sv[0]);
		close(sv[1]);
	}

	/* A descriptor with the first byte, the rest of the header later. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	assert_int_equal(pipe(pfd), 0);
	imsgbuf_init(&p.r, sv[1]);
	{
		struct imsg_hdr h = { 77, HDRSZ, 0, 0, IMSG_F_FD };

		memcpy(stream, &h, sizeof(h));
	}
	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = stream;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	cmp = CMSG_FIRSTHDR(&msg);
	cmp->cmsg_len = CMSG_LEN(sizeof(int));
	cmp->cmsg_level = SOL_SOCKET;
	cmp->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cmp), &pfd[1], sizeof(int));
	assert_int_equal(sendmsg(sv[0], &msg, 0), 1);
	close(pfd[1]);
	assert_int_equal(imsgbuf_read(&p.r), 1);
	assert_int_equal(p.r.nrfds, 1);
	assert_int_equal(imsgbuf_get(&p.r, &imsg), 0);
	raw_write(sv[0], stream + 1, HDRSZ - 1);
	assert_int_equal(imsgbuf_read(&p.r), (ssize_t)HDRSZ - 1);
	assert_int_equal(imsgbuf_get(&p.r, &imsg), (ssize_t)HDRSZ);
	assert_int_equal(imsg.hdr.type, 77);
	assert_true(imsg.fd >= 0);
	c = 'z';
	assert_int_equal(write(imsg.fd, &c, 1), 1);
	c = 0;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	imsg_free(&imsg);
	close(pfd[0]);
	imsgbuf_clear(&p.r);
	close(sv[0]);
	close(sv[1]);
}

static void
expect_badmsg(struct pair *p)
{
	struct imsg	 imsg;

	assert_true(imsgbuf_read(&p->r) > 0);
	errno = 0;
	assert_int_equal(imsgbuf_get(&p->r, &imsg), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(imsg.fd, -1);
	assert_null(imsg.data);
}

static void
test_bad_headers(void **state)
{
	struct pair	 p;
	struct imsg	 imsg;
	static uint8_t	 payload[IMSG_MAX_SIZE];

	(void)state;
	/* Shorter than a header. */
	pair_open(&p);
	raw_hdr(p.sv[0], 1, HDRSZ - 1, 0);
	expect_badmsg(&p);
	pair_close(&p);

	pair_open(&p);
	raw_hdr(p.sv[0], 1, 0, 0);
	expect_badmsg(&p);
	pair_close(&p);

	/* Longer than the maximum, before its payload even arrived. */
	pair_open(&p);
	raw_hdr(p.sv[0], 1, IMSG_MAX_SIZE + 1, 0);
	expect_badmsg(&p);
	pair_close(&p);

	pair_open(&p);
	raw_hdr(p.sv[0], 1, UINT32_MAX, 0);
	expect_badmsg(&p);
	pair_close(&p);

	/* A flag nobody defined. */
	pair_open(&p);
	raw_hdr(p.sv[0], 1, HDRSZ, 0x2);
	expect_badmsg(&p);
	pair_close(&p);

	/* A descriptor claimed and never sent. */
	pair_open(&p);
	raw_hdr(p.sv[0], 1, HDRSZ + 3, IMSG_F_FD);
	raw_write(p.sv[0], "abc", 3);
	expect_badmsg(&p);
	pair_close(&p);

	/* Exactly the maximum is fine, and an incomplete one waits. */
	pair_open(&p);
	raw_hdr(p.sv[0], 3, IMSG_MAX_SIZE, 0);
	fill_pattern(payload, IMSG_MAX_SIZE - HDRSZ, 3);
	raw_write(p.sv[0], payload, 100);
	assert_int_equal(imsgbuf_read(&p.r), (ssize_t)HDRSZ + 100);
	assert_int_equal(imsgbuf_get(&p.r, &imsg), 0);
	raw_write(p.sv[0], payload + 100, IMSG_MAX_SIZE - HDRSZ - 100);
	assert_int_equal(get_one(&p.r, &imsg), IMSG_MAX_SIZE);
	assert_int_equal(imsg.datalen, IMSG_MAX_SIZE - HDRSZ);
	assert_memory_equal(imsg.data, payload, IMSG_MAX_SIZE - HDRSZ);
	imsg_free(&imsg);
	pair_close(&p);
}

/* More descriptors than the reader holds unclaimed: EBADMSG. */
static void
test_too_many_fds(void **state)
{
	struct pair	 p;
	int		 i, fd;
	ssize_t		 n;

	(void)state;
	pair_open(&p);
	for (i = 0; i < IMSG_MAX_FDS + 1; i++) {
		assert_true((fd = dup(0)) >= 0);
		assert_int_equal(imsg_compose(&p.w, 1, 0, fd, NULL, 0), 0);
	}
	flush(&p.w);
	for (i = 0; i < IMSG_MAX_FDS; i++)
		assert_int_equal(imsgbuf_read(&p.r), (ssize_t)HDRSZ);
	assert_int_equal(p.r.nrfds, IMSG_MAX_FDS);
	errno = 0;
	n = imsgbuf_read(&p.r);
	assert_int_equal(n, -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(p.r.nrfds, IMSG_MAX_FDS);
	/* imsgbuf_clear closes what was never claimed. */
	fd = p.r.rfds[0];
	assert_true(fcntl(fd, F_GETFD) != -1);
	imsgbuf_clear(&p.r);
	assert_int_equal(p.r.nrfds, 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	pair_close(&p);
}

/* Unsent descriptors are closed by imsgbuf_clear on the writer. */
static void
test_clear_writer(void **state)
{
	struct pair	 p;
	int		 fd;

	(void)state;
	pair_open(&p);
	assert_true((fd = dup(0)) >= 0);
	assert_int_equal(imsg_compose(&p.w, 1, 0, fd, NULL, 0), 0);
	assert_true(imsgbuf_pending(&p.w));
	imsgbuf_clear(&p.w);
	assert_false(imsgbuf_pending(&p.w));
	assert_int_equal(p.w.wqueued, 0);
	assert_null(p.w.wtail);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	/* The buffer is usable again. */
	assert_int_equal(imsg_compose(&p.w, 2, 0, -1, "q", 1), 0);
	flush(&p.w);
	pair_close(&p);
}

static void
test_compose_overflow(void **state)
{
	struct pair		 p;
	struct imsg_out		 out;
	static uint8_t		 big[IMSG_MAX_SIZE];

	(void)state;
	pair_open(&p);
	imsg_out_init(&out, 1, 0, -1);
	assert_int_equal(imsg_add_data(&out, big, IMSG_MAX_SIZE - HDRSZ), 0);
	assert_int_equal(out.len, IMSG_MAX_SIZE);
	assert_int_equal(imsg_add_data(&out, big, 0), 0);
	assert_int_equal(imsg_add_data(&out, big, 1), -1);
	/* Once overflowed, even what would fit is refused. */
	assert_int_equal(imsg_add_data(&out, big, 0), -1);
	errno = 0;
	assert_int_equal(imsgbuf_queue(&p.w, &out), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_false(imsgbuf_pending(&p.w));

	imsg_out_init(&out, 1, 0, -1);
	assert_int_equal(imsg_add_data(&out, big, IMSG_MAX_SIZE - HDRSZ - 3),
	    0);
	assert_int_equal(imsg_add_u32(&out, 1), -1);
	imsg_out_free(&out);
	imsg_out_init(&out, 1, 0, -1);
	assert_int_equal(imsg_add_data(&out, big, IMSG_MAX_SIZE - HDRSZ - 7),
	    0);
	assert_int_equal(imsg_add_u64(&out, 1), -1);
	imsg_out_free(&out);

	assert_int_equal(imsg_compose(&p.w, 1, 0, -1, big,
	    IMSG_MAX_SIZE - HDRSZ + 1), -1);
	assert_false(imsgbuf_pending(&p.w));
	assert_int_equal(imsg_compose(&p.w, 1, 0, -1, big,
	    IMSG_MAX_SIZE - HDRSZ), 0);
	assert_int_equal(p.w.wqueued, 1);
	pair_close(&p);
}

static void
test_get_short(void **state)
{
	struct imsg	 imsg;
	uint8_t		 raw[16];
	uint32_t	 u32 = 0x55;
	uint64_t	 u64 = 0x66;
	uint8_t		 three[3];

	(void)state;
	memset(raw, 0xab, sizeof(raw));

	fake_imsg(&imsg, raw, 3);
	assert_int_equal(imsg_get_u32(&imsg, &u32), -1);
	assert_int_equal(u32, 0x55);
	assert_int_equal(imsg.rpos, 0);
	assert_int_equal(imsg_get_data(&imsg, three, 4), -1);
	assert_int_equal(imsg_get_data(&imsg, three, 3), 0);
	assert_int_equal(imsg_get_end(&imsg), 0);
	imsg_free(&imsg);

	fake_imsg(&imsg, raw, 7);
	assert_int_equal(imsg_get_u64(&imsg, &u64), -1);
	assert_true(u64 == 0x66);
	assert_int_equal(imsg_get_u32(&imsg, &u32), 0);
	assert_int_equal(u32, 0xabababab);
	assert_int_equal(imsg_get_u32(&imsg, &u32), -1);
	assert_int_equal(imsg.rpos, 4);
	assert_int_equal(imsg_get_end(&imsg), -1);
	imsg_free(&imsg);

	fake_imsg(&imsg, NULL, 0);
	assert_int_equal(imsg_get_u32(&imsg, &u32), -1);
	assert_int_equal(imsg_get_u64(&imsg, &u64), -1);
	assert_int_equal(imsg_get_end(&imsg), 0);
	imsg_free(&imsg);

	/* Leftovers after a full read. */
	fake_imsg(&imsg, raw, 9);
	assert_int_equal(imsg_get_u64(&imsg, &u64), 0);
	assert_int_equal(imsg_get_end(&imsg), -1);
	assert_int_equal(imsg_get_data(&imsg, three, 1), 0);
	assert_int_equal(imsg_get_end(&imsg), 0);
	imsg_free(&imsg);
}

static void
put_str(uint8_t *p, size_t *off, uint32_t len, const char *s, size_t slen)
{
	memcpy(p + *off, &len, 4);
	*off += 4;
	memcpy(p + *off, s, slen);
	*off += slen;
}

static void
test_get_str(void **state)
{
	struct imsg	 imsg;
	uint8_t		 raw[64];
	char		 dst[11];
	size_t		 len;

	(void)state;
	/* Ten bytes need eleven with the NUL. */
	len = 0;
	put_str(raw, &len, 10, "0123456789", 10);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, 10), -1);
	assert_int_equal(imsg.rpos, 0);
	assert_int_equal(imsg_get_str(&imsg, dst, 11), 0);
	assert_string_equal(dst, "0123456789");
	assert_int_equal(imsg_get_end(&imsg), 0);
	imsg_free(&imsg);

	/* A zero-sized destination never holds anything. */
	len = 0;
	put_str(raw, &len, 0, "", 0);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, 0), -1);
	assert_int_equal(imsg_get_str(&imsg, dst, 1), 0);
	assert_string_equal(dst, "");
	imsg_free(&imsg);

	/* An embedded NUL. */
	len = 0;
	put_str(raw, &len, 3, "a\0b", 3);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), -1);
	assert_int_equal(imsg.rpos, 0);
	imsg_free(&imsg);

	/* A trailing NUL counted in the length is one too. */
	len = 0;
	put_str(raw, &len, 3, "ab\0", 3);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), -1);
	imsg_free(&imsg);

	/* The length says more than the payload holds. */
	len = 0;
	put_str(raw, &len, 5, "abcd", 4);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), -1);
	assert_int_equal(imsg.rpos, 0);
	imsg_free(&imsg);

	/* A huge length. */
	len = 0;
	put_str(raw, &len, UINT32_MAX, "abcd", 4);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), -1);
	imsg_free(&imsg);

	/* Not even a length. */
	fake_imsg(&imsg, "\3\0", 2);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), -1);
	imsg_free(&imsg);

	/* Two in a row, the second with leftovers. */
	len = 0;
	put_str(raw, &len, 2, "hi", 2);
	put_str(raw, &len, 3, "you!", 4);
	fake_imsg(&imsg, raw, len);
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), 0);
	assert_string_equal(dst, "hi");
	assert_int_equal(imsg_get_str(&imsg, dst, sizeof(dst)), 0);
	assert_string_equal(dst, "you");
	assert_int_equal(imsg_get_end(&imsg), -1);
	imsg_free(&imsg);
}

static void
sa_case(const void *sa, uint32_t len, size_t copy, int want)
{
	struct imsg		 imsg;
	uint8_t			 raw[4 + sizeof(struct sockaddr_storage) + 8];
	struct sockaddr_storage	 ss;
	socklen_t		 slen = 12345;

	memcpy(raw, &len, 4);
	memcpy(raw + 4, sa, copy);
	fake_imsg(&imsg, raw, 4 + copy);
	assert_int_equal(imsg_get_sa(&imsg, &ss, &slen), want);
	if (want == 0) {
		assert_int_equal(slen, len);
		assert_memory_equal(&ss, sa, len);
		assert_int_equal(imsg_get_end(&imsg), 0);
	} else {
		assert_int_equal(slen, 12345);
		assert_int_equal(imsg.rpos, 0);
	}
	imsg_free(&imsg);
}

static void
test_get_sa(void **state)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)&ss;

	(void)state;
	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(25);
	sa_case(&ss, sizeof(*sin), sizeof(*sin), 0);
	sa_case(&ss, sizeof(*sin) - 1, sizeof(*sin) - 1, -1);
	sa_case(&ss, sizeof(*sin) + 1, sizeof(*sin) + 1, -1);
	sa_case(&ss, sizeof(struct sockaddr_in6), sizeof(struct sockaddr_in6),
	    -1);
	/* Length says 16, 10 bytes are there. */
	sa_case(&ss, sizeof(*sin), 10, -1);

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(25);
	sin6->sin6_addr = in6addr_loopback;
	sa_case(&ss, sizeof(*sin6), sizeof(*sin6), 0);
	sa_case(&ss, sizeof(struct sockaddr_in), sizeof(struct sockaddr_in),
	    -1);
	sa_case(&ss, sizeof(*sin6) + 4, sizeof(*sin6) + 4, -1);

	memset(&ss, 0, sizeof(ss));
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, "/tmp/x");
	sa_case(&ss, sizeof(*sun), sizeof(*sun), -1);
	sa_case(&ss, sizeof(struct sockaddr_in), sizeof(struct sockaddr_in),
	    -1);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNSPEC;
	sa_case(&ss, sizeof(struct sockaddr_in), sizeof(struct sockaddr_in),
	    -1);

	/* Too short for a family, and larger than any sockaddr. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_INET;
	sa_case(&ss, 1, 1, -1);
	sa_case(&ss, 0, 0, -1);
	sa_case(&ss, sizeof(ss) + 1, sizeof(ss), -1);
	{
		uint8_t	 big[sizeof(ss) + 8];

		memset(big, 0, sizeof(big));
		memcpy(big, &ss, sizeof(ss));
		sa_case(big, sizeof(big), sizeof(big), -1);
	}
	sa_case(&ss, UINT32_MAX, sizeof(ss), -1);
}

/* A read position past the end (a copied, cut imsg) reads nothing. */
static void
test_get_past_end(void **state)
{
	struct imsg	 imsg;
	uint8_t		 data[4] = { 0 };
	uint32_t	 v;
	char		 s[8];

	(void)state;
	memset(&imsg, 0, sizeof(imsg));
	imsg.data = data;
	imsg.datalen = sizeof(data);
	imsg.rpos = 8;
	assert_int_equal(imsg_get_u32(&imsg, &v), -1);
	assert_int_equal(imsg_get_str(&imsg, s, sizeof(s)), -1);
	assert_int_equal(imsg_get_data(&imsg, &v, 0), -1);
	imsg.rpos = 4;
	assert_int_equal(imsg_get_data(&imsg, &v, 0), 0);
	assert_int_equal(imsg_get_end(&imsg), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_get_past_end),
		cmocka_unit_test(test_fd_passing),
		cmocka_unit_test(test_fd_order),
		cmocka_unit_test(test_many_messages),
		cmocka_unit_test(test_read_in_pieces),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_too_many_fds),
		cmocka_unit_test(test_clear_writer),
		cmocka_unit_test(test_compose_overflow),
		cmocka_unit_test(test_get_short),
		cmocka_unit_test(test_get_str),
		cmocka_unit_test(test_get_sa),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
