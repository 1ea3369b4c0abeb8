/*
 * The metrics listener: the parent binds it and hands it here
 * (IMSG_CONF_METRICS), and the relay answers "GET /metrics" with the
 * OpenMetrics text of smtpctl show metrics.
 *
 * Why the relay and not a process of its own: the relay already runs
 * unprivileged, chrooted and under seccomp, holds the counters, and
 * serves the control socket with the same bounded, timed requests; a
 * separate process would add a role, a sandbox and a channel only to
 * carry the same text.  What the relay gives up: HTTP from the network
 * reaches the process that can read the queue.  What bounds that: the
 * request is at most HTTP_REQUEST_MAX bytes, looked at by a parser of
 * a hundred lines that keeps no state (lib/httpreq.c, fuzzed by
 * regress/fuzz/fuzz_httpreq.c); nothing of it but the request line is
 * interpreted; each connection has a deadline for its request and one
 * for reading the answer, and there are at most METRICS_CONNS_MAX.
 * Bind it to a monitoring address, not to the world.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "event.h"
#include "httpreq.h"
#include "log.h"
#include "metrics_http.h"

enum mconn_state {
	MC_READ,		/* the request is coming */
	MC_WAIT,		/* the parent's counters are asked for */
	MC_WRITE,		/* the answer is going */
	MC_LINGER,		/* written: what the client still sends */
};

struct mconn {
	struct mconn		*next;
	uint32_t		 id;
	int			 fd;
	enum mconn_state	 state;
	char			 in[HTTP_REQUEST_MAX];
	size_t			 inlen;
	char			*out;
	size_t			 outlen;
	size_t			 outoff;
	struct ev_timer		 timer;
};

static struct {
	metrics_send_cb	 send;
	int		 started;	/* metrics_http_init() is done */
	int		 fds[METRICS_LISTENERS_MAX];
	unsigned int	 nfds;
	int		 next[METRICS_LISTENERS_MAX];	/* a reload's */
	unsigned int	 nnext;
	struct mconn	*conns;
	unsigned int	 nconns;
	uint32_t	 next_id;
} mh;

static void	mconn_io(int, int, void *);

static void
mconn_close(struct mconn *c)
{
	struct mconn	**cp;

	for (cp = &mh.conns; *cp != NULL; cp = &(*cp)->next)
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	mh.nconns--;
	ev_timer_del(&c->timer);
	ev_del(c->fd);
	close(c->fd);
	free(c->out);
	free(c);
}

static const char *
status_text(int status)
{
	switch (status) {
	case HTTP_OK:
		return "OK";
	case HTTP_NOT_FOUND:
		return "Not Found";
	case HTTP_BAD_METHOD:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case HTTP_TOO_LARGE:
		return "Request Header Fields Too Large";
	case HTTP_BAD_VERSION:
		return "HTTP Version Not Supported";
	case 500:
		return "Internal Server Error";
	default:
		return "Bad Request";
	}
}

/* The answer: status, body (len bytes), then the connection ends. */
static void
mconn_answer(struct mconn *c, int status, const char *body, size_t len)
{
	const char	*type = status == HTTP_OK ? "application/"
			    "openmetrics-text; version=1.0.0; charset=utf-8" :
			    "text/plain; charset=utf-8";
	int		 n, head;

	/* The answer to a HEAD has no body (RFC 9110 9.3.2), a 405 too. */
	head = c->inlen >= 5 && memcmp(c->in, "HEAD ", 5) == 0;
	free(c->out);
	c->out = NULL;
	n = asprintf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%.*s", status,
	    status_text(status), type, len, status == HTTP_BAD_METHOD ?
	    "Allow: GET\r\n" : "", head ? 0 : (int)len, body);
	if (n < 0) {
		c->out = NULL;
		mconn_close(c);
		return;
	}
	c->outlen = (size_t)n;
	c->outoff = 0;
	c->state = MC_WRITE;
	if (ev_mod(c->fd, EV_WRITE) == -1)
		mconn_close(c);
}

static void
mconn_error(struct mconn *c, int status)
{
	char	 body[64];
	int	 n;

	n = snprintf(body, sizeof(body), "%d %s\n", status,
	    status_text(status));
	mconn_answer(c, status, body, (size_t)n);
}

static void
mconn_timeout(void *arg)
{
	struct mconn	*c = arg;

	if (c->state != MC_READ) {
		mconn_close(c);
		return;
	}
	log_info("event=metrics-timeout bytes=%zu", c->inlen);
	mconn_error(c, 408);
	ev_timer_add(&c->timer, METRICS_LINGER_MS);
}

static struct mconn *
mconn_find(uint32_t id)
{
	struct mconn	*c;

	for (c = mh.conns; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* The parent's counters: now the whole text can be written. */
void
metrics_http_result(uint32_t id, const char *parent_text)
{
	struct mconn	*c;
	char		*buf;
	size_t		 len;

	if ((c = mconn_find(id)) == NULL || c->state != MC_WAIT)
		return;
	if (stats_metrics(parent_text, &buf, &len) == -1) {
		mconn_error(c, 500);
		return;
	}
	mconn_answer(c, HTTP_OK, buf, len);
	free(buf);
}

/* A complete request: ask the parent for its counters, or refuse. */
static void
mconn_request(struct mconn *c, int status)
{
	struct imsg_out	 out;

	if (status != HTTP_OK) {
		log_info("event=metrics-refused status=%d", status);
		mconn_error(c, status);
		return;
	}
	c->state = MC_WAIT;
	if (ev_mod(c->fd, 0) == -1) {
		mconn_close(c);
		return;
	}
	imsg_out_init(&out, IMSG_CTL_REQUEST, c->id, -1);
	imsg_add_u32(&out, CTL_REQ_STATS);
	mh.send(&out);
}

static void
mconn_read(struct mconn *c)
{
	char	 discard[4096];
	ssize_t	 n;
	int	 status;

	if (c->state == MC_LINGER) {
		n = read(c->fd, discard, sizeof(discard));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			mconn_close(c);
		return;
	}
	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mconn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	if ((status = http_request(c->in, c->inlen)) != HTTP_MORE)
		mconn_request(c, status);
}

/*
 * Written: our side ends, and what the client still sends is read and
 * dropped for a while, so that a close with unread bytes does not reset
 * the connection before the client has read the answer.
 */
static void
mconn_write(struct mconn *c)
{
	ssize_t	 n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			mconn_close(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	if (shutdown(c->fd, SHUT_WR) == -1 || ev_mod(c->fd, EV_READ) == -1) {
		mconn_close(c);
		return;
	}
	c->state = MC_LINGER;
	ev_timer_add(&c->timer, METRICS_LINGER_MS);
}

static void
mconn_io(int fd, int events, void *arg)
{
	struct mconn	*c = arg;

	(void)fd;
	if (c->state == MC_WRITE && (events & EV_WRITE))
		mconn_write(c);
	else if (events & EV_READ)
		mconn_read(c);
}

static void
metrics_accept_one(int fd)
{
	struct mconn	*c;

	if (mh.nconns >= METRICS_CONNS_MAX ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		if (mh.nconns >= METRICS_CONNS_MAX)
			log_warnx("event=metrics-busy clients=%u", mh.nconns);
		close(fd);
		return;
	}
	c->fd = fd;
	c->state = MC_READ;
	if (++mh.next_id >= METRICS_ID_BIT)
		mh.next_id = 1;
	c->id = METRICS_ID_BIT | mh.next_id;
	if (ev_add(fd, EV_READ, mconn_io, c) == -1) {
		free(c);
		close(fd);
		return;
	}
	c->next = mh.conns;
	mh.conns = c;
	mh.nconns++;
	ev_timer_set(&c->timer, mconn_timeout, c);
	ev_timer_add(&c->timer, METRICS_REQUEST_MS);
}

static void
metrics_accept(int fd, int events, void *arg)
{
	int	 s;

	(void)events;
	(void)arg;
	while ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1)
		metrics_accept_one(s);
	if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
		log_warn("event=metrics-accept");
}

static void
metrics_listen_all(void)
{
	unsigned int	 i;

	for (i = 0; i < mh.nfds; i++) {
		proc_nonblock(mh.fds[i]);
		if (ev_add(mh.fds[i], EV_READ, metrics_accept, NULL) == -1)
			fatal("ev_add metrics");
	}
}

void
metrics_http_init(metrics_send_cb send)
{
	mh.send = send;
	mh.started = 1;
	metrics_listen_all();
}

/*
 * IMSG_CONF_METRICS: a listening socket, at start-up, or a reload's
 * (between POLICY_BEGIN and POLICY_END: the whole new set).
 */
int
metrics_http_on_socket(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	if (!mh.started) {
		if (mh.nfds == METRICS_LISTENERS_MAX)
			return -1;
		mh.fds[mh.nfds++] = imsg->fd;
	} else {
		if (mh.nnext == METRICS_LISTENERS_MAX)
			return -1;
		mh.next[mh.nnext++] = imsg->fd;
	}
	imsg->fd = -1;
	return 0;
}

/* A reload begins: what an earlier one left unapplied is dropped. */
void
metrics_http_reload_begin(void)
{
	while (mh.nnext > 0)
		close(mh.next[--mh.nnext]);
}

/*
 * A reload ends: its listeners replace the running ones.  An unchanged
 * listener is the same socket in the parent, dup'ed again, so what
 * waits in its backlog is not lost; a removed one is closed here for
 * good; clients being answered are not touched.
 */
void
metrics_http_reload_end(void)
{
	unsigned int	 i;

	for (i = 0; i < mh.nfds; i++) {
		ev_del(mh.fds[i]);
		close(mh.fds[i]);
	}
	memcpy(mh.fds, mh.next, mh.nnext * sizeof(mh.fds[0]));
	mh.nfds = mh.nnext;
	mh.nnext = 0;
	metrics_listen_all();
}
