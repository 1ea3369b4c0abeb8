/*
 * The metrics listener: the parent binds it and hands it here
 * (IMSG_CONF_METRICS), and the relay answers "GET /metrics" with the
 * OpenMetrics text of smtpctl show metrics.
 *
 * Why the relay and not a process of its own: the relay already runs
 * unprivileged, chrooted and under seccomp, holds the counters, and
 * serves the control socket with the same bounded, timed requests
 * (relay/conn.c); a separate process would add a role, a sandbox and a
 * channel only to carry the same text.  What the relay gives up: HTTP
 * from the network reaches the process that can read the queue.  What
 * bounds that: the request is at most HTTP_REQUEST_MAX bytes, looked at
 * by a parser of a hundred lines that keeps no state (lib/httpreq.c,
 * fuzzed by regress/fuzz/fuzz_httpreq.c); nothing of it but the request
 * line is interpreted; each connection has a deadline for its request
 * and one for reading the answer, and there are at most
 * METRICS_CONNS_MAX.  Bind it to a monitoring address, not to the world.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "control.h"
#include "event.h"
#include "httpreq.h"
#include "log.h"
#include "metrics_http.h"

/* Before the answer; conn.c has it from there on (CONN_WRITE, CONN_LINGER). */
enum mconn_state {
	MC_READ,		/* the request is coming */
	MC_WAIT,		/* the parent's counters are asked for */
};

struct mconn {
	struct conn		 conn;	/* first: conn.c allocates it all */
	enum mconn_state	 state;
	char			 in[HTTP_REQUEST_MAX];
	size_t			 inlen;
};

static void	mconn_read(struct conn *);
static void	mconn_timeout(struct conn *);

static struct {
	metrics_send_cb	 send;
	int		 started;	/* metrics_http_init() is done */
	int		 fds[METRICS_LISTENERS_MAX];
	unsigned int	 nfds;
	int		 next[METRICS_LISTENERS_MAX];	/* a reload's */
	unsigned int	 nnext;
	/*
	 * A deadline for the request, then one for reading the answer
	 * (lingering); the ids have METRICS_ID_BIT, by which
	 * control_on_result() gives the parent's counters back here.
	 */
	struct conn_list conns;
} mh = {
	.conns = {
		.name = "metrics",
		.size = sizeof(struct mconn),
		.max = METRICS_CONNS_MAX,
		.id_bit = METRICS_ID_BIT,
		.events = EV_READ,
		.deadline_ms = METRICS_REQUEST_MS,
		.linger_ms = METRICS_LINGER_MS,
		.read = mconn_read,
		.timeout = mconn_timeout,
	},
};

static void
mconn_close(struct mconn *c)
{
	conn_close(&c->conn);
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
	char		*buf;
	int		 n, head;

	/* The answer to a HEAD has no body (RFC 9110 9.3.2), a 405 too. */
	head = c->inlen >= 5 && memcmp(c->in, "HEAD ", 5) == 0;
	n = asprintf(&buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%.*s", status,
	    status_text(status), type, len, status == HTTP_BAD_METHOD ?
	    "Allow: GET\r\n" : "", head ? 0 : (int)len, body);
	if (n < 0) {
		mconn_close(c);
		return;
	}
	conn_answer(&c->conn, buf, (size_t)n);
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

/*
 * The request's deadline: a client still sending is told so, and has
 * the linger time to read it.  One waiting for the parent is closed.
 */
static void
mconn_timeout(struct conn *cn)
{
	struct mconn	*c = (struct mconn *)cn;

	if (c->state != MC_READ) {
		mconn_close(c);
		return;
	}
	log_info("event=metrics-timeout bytes=%zu", c->inlen);
	ev_timer_add(&cn->timer, METRICS_LINGER_MS);
	mconn_error(c, 408);
}

/* The parent's counters: now the whole text can be written. */
void
metrics_http_result(uint32_t id, const char *parent_text)
{
	struct mconn	*c;
	char		*buf;
	size_t		 len;

	c = (struct mconn *)conn_find(&mh.conns, id);
	if (c == NULL || c->conn.state != CONN_REQUEST || c->state != MC_WAIT)
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
	if (ev_mod(c->conn.fd, 0) == -1) {
		mconn_close(c);
		return;
	}
	imsg_out_init(&out, IMSG_CTL_REQUEST, c->conn.id, -1);
	imsg_add_u32(&out, CTL_REQ_STATS);
	mh.send(&out);
}

static void
mconn_read(struct conn *cn)
{
	struct mconn	*c = (struct mconn *)cn;
	ssize_t		 n;
	int		 status;

	n = read(cn->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
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

static void
metrics_listen_all(void)
{
	unsigned int	 i;

	for (i = 0; i < mh.nfds; i++)
		conn_listen(&mh.conns, mh.fds[i]);
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
