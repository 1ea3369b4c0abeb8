/*
 * The control socket, served by the relay: the parent made it and
 * passed it here (IMSG_CONF_CONTROL).  Each client's uid comes from
 * the kernel (SO_PEERCRED); the parent says what that uid may do and
 * what its name is, and nothing of the request is read before that.
 * See control.h for the protocol.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "conn.h"
#include "control.h"
#include "control_env.h"
#include "log.h"
#include "metrics_http.h"

static int	control_open(struct conn *);
static void	control_read(struct conn *);
static void	control_free(struct conn *);

static struct {
	const struct smtpd_conf	*conf;
	control_send_cb		 send;
	int			 fd;		/* listening, -1: none */
	/*
	 * Nothing is read before the parent says who the client is; the
	 * ids have no METRICS_ID_BIT, so the parent's replies come here.
	 */
	struct conn_list	 conns;
} ctl = {
	.fd = -1,
	.conns = {
		.name = "control",
		.size = sizeof(struct ctl_conn),
		.max = CTL_CONNS_MAX,
		.events = 0,
		.deadline_ms = CTL_TIMEOUT_MS,
		.open = control_open,
		.read = control_read,
		.free = control_free,
	},
};

const struct smtpd_conf *
control_conf(void)
{
	return ctl.conf;
}

static struct ctl_conn *
control_find(uint32_t id)
{
	return (struct ctl_conn *)conn_find(&ctl.conns, id);
}

static void
control_close(struct ctl_conn *c)
{
	conn_close(&c->conn);
}

/* What a client keeps beside its connection: a submission, the request. */
static void
control_free(struct conn *cn)
{
	struct ctl_conn	*c = (struct ctl_conn *)cn;

	control_submit_free(c);
	free(c->in);
}

/* The answer is buf (malloc'd, len bytes); it is written, then closed. */
void
control_answer(struct ctl_conn *c, char *buf, size_t len)
{
	c->dispatched = 1;
	conn_answer(&c->conn, buf, len);
}

/* A status line and a text of the command's output after it. */
void
control_reply(struct ctl_conn *c, const char *status, const char *fmt, ...)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*f;
	va_list	 ap;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		control_close(c);
		return;
	}
	fprintf(f, "%s", status);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) != 0) {
		free(buf);
		control_close(c);
		return;
	}
	control_answer(c, buf, len);
}

/* An order only the parent can carry out; its result ends c's answer. */
void
control_ask_parent(struct ctl_conn *c, uint32_t req)
{
	struct imsg_out	 out;

	c->waiting = req;
	c->dispatched = 1;
	ev_mod(c->conn.fd, 0);
	imsg_out_init(&out, IMSG_CTL_REQUEST, c->conn.id, -1);
	imsg_add_u32(&out, req);
	ctl.send(&out);
}

/*
 * The request's lines are in: split the first one, and act.  1 if a
 * submission waits for its message; 0 if the request was answered (the
 * answer may have closed the connection: c is not to be touched).
 */
static int
control_request(struct ctl_conn *c)
{
	char	*words[32], *line, *p;
	int	 n;

	c->in[c->inlen] = '\0';
	line = c->in;
	if ((p = strchr(line, '\n')) != NULL)
		*p++ = '\0';
	if (strcmp(line, "submit") == 0)
		return control_submit_start(c, p);
	if ((n = control_words(line, words, 32)) <= 0)
		control_reply(c, "error bad request\n", "%s", "");
	else
		control_dispatch(c, words, n);
	return 0;
}

/* Read what the client sends: the request's lines, then a message. */
static void
control_read(struct conn *cn)
{
	struct ctl_conn	*c = (struct ctl_conn *)cn;
	char		 buf[16384], *end;
	ssize_t		 n;
	size_t		 used;

	if ((n = read(cn->fd, buf, sizeof(buf))) == -1 && (errno == EAGAIN ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		control_close(c);
		return;
	}
	if (c->msg != NULL) {
		control_submit_data(c, buf, (size_t)n);
		return;
	}
	if (c->inlen + (size_t)n > CTL_HEADER_MAX) {
		control_reply(c, "error request too long\n", "%s", "");
		return;
	}
	memcpy(c->in + c->inlen, buf, (size_t)n);
	c->inlen += (size_t)n;
	c->in[c->inlen] = '\0';
	if ((end = strstr(c->in, "\n\n")) == NULL)
		return;
	used = (size_t)(end + 2 - c->in);
	end[1] = '\0';
	n = (ssize_t)c->inlen - (ssize_t)used;
	c->inlen = used - 1;
	memcpy(buf, c->in + used, (size_t)n);
	if (control_request(c) && n > 0)
		control_submit_data(c, buf, (size_t)n);
}

/* Ask the parent who the peer is; its request waits for the answer. */
static int
control_open(struct conn *cn)
{
	struct ctl_conn	*c = (struct ctl_conn *)cn;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	struct imsg_out	 out;

	c->spoolfd = -1;
	if (getsockopt(cn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (c->in = malloc(CTL_HEADER_MAX + 1)) == NULL)
		return -1;
	c->uid = cred.uid;
	c->gid = cred.gid;
	imsg_out_init(&out, IMSG_CTL_PEER, cn->id, -1);
	imsg_add_u32(&out, (uint32_t)cred.uid);
	imsg_add_u32(&out, (uint32_t)cred.gid);
	ctl.send(&out);
	return 0;
}

void
control_init(const struct smtpd_conf *conf, control_send_cb send)
{
	ctl.conf = conf;
	ctl.send = send;
	if (ctl.fd != -1)
		conn_listen(&ctl.conns, ctl.fd);
}

/* IMSG_CONF_CONTROL: the listening socket, at start-up. */
int
control_on_socket(struct proc_chan *pc, struct imsg *imsg)
{
	(void)pc;
	if (ctl.fd != -1)
		close(ctl.fd);
	ctl.fd = imsg->fd;
	imsg->fd = -1;
	return 0;
}

/* IMSG_CTL_PEER_INFO: who the client is; now its request is read. */
int
control_on_peer_info(struct proc_chan *pc, struct imsg *imsg)
{
	struct ctl_conn	*c;
	uint32_t	 admin;
	char		 user[CTL_USER_MAX];

	(void)pc;
	if (imsg_get_u32(imsg, &admin) == -1 || admin > 1 ||
	    imsg_get_str(imsg, user, sizeof(user)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if ((c = control_find(imsg->hdr.peerid)) == NULL || c->known)
		return 0;
	c->known = 1;
	c->admin = (int)admin;
	strlcpy(c->user, user, sizeof(c->user));
	if (ev_mod(c->conn.fd, EV_READ) == -1)
		control_close(c);
	return 0;
}

/* IMSG_CTL_RESULT: what the parent made of an order. */
int
control_on_result(struct proc_chan *pc, struct imsg *imsg)
{
	struct ctl_conn	*c;
	uint32_t	 ok;
	char		 text[2048];

	(void)pc;
	if (imsg_get_u32(imsg, &ok) == -1 || ok > 1 ||
	    imsg_get_str(imsg, text, sizeof(text)) == -1 ||
	    imsg_get_end(imsg) == -1)
		return -1;
	if (imsg->hdr.peerid & METRICS_ID_BIT) {
		metrics_http_result(imsg->hdr.peerid, text);
		return 0;
	}
	if ((c = control_find(imsg->hdr.peerid)) == NULL || !c->waiting)
		return 0;
	control_parent_result(c, (int)ok, text);
	return 0;
}
