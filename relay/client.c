/*
 * The relay's ESMTP client (RFC 5321), one state machine per upstream
 * connection on the relay's event loop.  Replies are read with the same
 * strict line reader as the server side (CRLF only, bounded) and parsed
 * by reply.c.  Commands are pipelined when the upstream offers it
 * (RFC 2920: MAIL, every RCPT and DATA, then the replies in order); the
 * message is streamed from the spool file as the socket drains
 * (client_body.c).  Every wait has a time-out.
 *
 * STARTTLS, once asked for, is required: an upstream that does not
 * offer it is a failure, never a reason to go on in clear text (RFC 3207
 * 4, RFC 8314 5.3); the I/O, plain or under TLS, is client_io.c.  A
 * password is never logged, and is wiped from memory once sent and when
 * freed.
 *
 * A callback may free the client: entry points count themselves in
 * depth, and client_free() inside one only closes the connection and
 * leaves the memory to the outermost entry point.  What the three files
 * share is in client_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "client_int.h"
#include "log.h"
#include "tls.h"

#define CLIENT_PEER_MAX		64		/* an IP address literal */
#define CLIENT_HOST_MAX		255		/* the name TLS verifies */

static void	client_destroy(struct client *);

/* What a failure in each state was waiting for, for the text. */
const char *const client_state_names[] = {
	[CS_GREETING] = "greeting",	[CS_EHLO] = "EHLO",
	[CS_HELO] = "HELO",		[CS_STARTTLS] = "STARTTLS",
	[CS_TLS] = "TLS handshake",	[CS_AUTH] = "AUTH",
	[CS_IDLE] = "idle",
	[CS_LOCAL] = "local",		[CS_ENVELOPE] = "envelope",
	[CS_BODY] = "message",		[CS_DOT] = "end of data",
	[CS_RSET] = "RSET",		[CS_QUIT] = "QUIT",
	[CS_PROBE] = "RSET probe",
	[CS_FAILED] = "failed",
};

/* An entry point (event or timer) begins: the client stays allocated. */
void
client_enter(struct client *c)
{
	c->depth++;
}

/* The entry point ends: free the client if a callback asked for it. */
void
client_leave(struct client *c)
{
	if (--c->depth == 0 && c->dead)
		client_destroy(c);
}

/* Whether processing should stop: the connection is gone. */
int
client_gone(const struct client *c)
{
	return c->dead || c->fd == -1;
}

/* Arm the time-out of the wait we are in, or stop it when idle. */
void
client_rearm(struct client *c)
{
	if (client_gone(c))
		return;
	c->progress_ms = ev_now();
	if (c->state == CS_IDLE)
		ev_timer_del(&c->timer);
	else
		ev_timer_add(&c->timer, c->timeout_ms);
}

/*
 * Watch for writability only while there is something to write, and
 * TLS can write; and for whatever TLS waits for to go on.  In plain
 * text what is queued is written at once: the socket nearly always
 * takes it, and the write events it would wait for cost two epoll_ctl
 * calls and a round of the loop a command.
 */
void
client_events(struct client *c)
{
	int	 events = EV_READ;

	if (client_gone(c))
		return;
	if (!c->tls_on && c->state != CS_TLS && !c->flushing &&
	    buf_left(&c->out) > 0) {
		client_flush(c);
		if (client_gone(c))
			return;
	}
	if (c->state == CS_TLS)
		events = c->tls_want;
	else if ((buf_left(&c->out) > 0 && !c->write_wants_read) ||
	    c->read_wants_write)
		events |= EV_WRITE;
	if (ev_mod(c->fd, events) == -1)
		client_fail(c, "event registration failed");
}

/* Empty the output, wiping it first if a password may be in it. */
static void
client_out_free(struct client *c)
{
	if (c->out_secret && c->out.data != NULL)
		explicit_bzero(c->out.data, c->out.size);
	c->out_secret = 0;
	buf_free(&c->out);
}

/* Close the connection; the client object stays. */
static void
client_close(struct client *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->tls_on = 0;
	}
	if (c->fd != -1) {
		ev_del(c->fd);
		close(c->fd);
		c->fd = -1;
	}
	ev_timer_del(&c->timer);
	ev_timer_del(&c->defer);
	client_out_free(c);
	client_body_free(c);
}

/* Free everything, now; the credentials do not stay in freed memory. */
static void
client_destroy(struct client *c)
{
	client_close(c);
	free(c->res.rcpt);
	explicit_bzero(c->auth_user, sizeof(c->auth_user));
	explicit_bzero(c->auth_pass, sizeof(c->auth_pass));
	free(c);
}

/* Set the text of a recipient's result. */
static void
client_rcpt_set(struct client_rcpt_result *rr, int code, const char *text)
{
	rr->code = code;
	snprintf(rr->text, sizeof(rr->text), "%s", text);
}

/*
 * The overall result from the recipients' (see client.h): the reply
 * that decided is the first recipient's whose class is the status.
 */
static void
client_decide(struct client *c)
{
	struct client_result	*res = &c->res;
	uint32_t		 i;
	int			 cls, status = 5;

	for (i = 0; i < c->msg.nrcpt; i++) {
		cls = res->rcpt[i].code / 100;
		if (cls == 2) {
			status = 2;
			break;
		}
		if (cls != 5)
			status = 4;
	}
	res->status = status;
	for (i = 0; i < c->msg.nrcpt; i++) {
		cls = res->rcpt[i].code / 100;
		if (cls == status || (status == 4 && cls != 2 && cls != 5)) {
			res->code = res->rcpt[i].code;
			snprintf(res->text, sizeof(res->text), "%s",
			    res->rcpt[i].text);
			break;
		}
	}
	c->decided = 1;
}

/*
 * The transaction is over: hand its result to done().  Input left over
 * means the upstream said more than it was asked: its next replies
 * could not be matched to our commands, so the connection goes.
 */
static void
client_finish(struct client *c, int broken)
{
	struct client_result	 r;
	client_done_cb		 cb = c->done_cb;
	void			*arg = c->done_arg;

	if (linebuf_pending(&c->lb) > 0 || c->rp.in_progress)
		broken = 1;
	r = c->res;
	r.broken = broken;
	if (c->mail_421)
		r.not_begun = 1;
	memset(&c->res, 0, sizeof(c->res));
	c->done_cb = NULL;
	c->done_arg = NULL;
	c->decided = 0;
	client_body_free(c);
	if (broken) {
		client_close(c);
		c->state = CS_FAILED;
	} else {
		c->state = CS_IDLE;
		client_rearm(c);
		client_events(c);
		if (client_gone(c))
			r.broken = 1;
	}
	if (cb != NULL)
		cb(c, &r, arg);
	free(r.rcpt);
}

/*
 * The connection failed or the upstream broke the protocol: close it
 * and tell whoever waits.  A transaction whose outcome was already
 * known (say, failing in RSET) keeps that outcome.
 */
void
client_fail(struct client *c, const char *fmt, ...)
{
	char			 text[REPLY_TEXT_MAX];
	enum client_state	 prev = c->state;
	client_ready_cb		 ready = c->ready_cb;
	va_list			 ap;
	uint32_t		 i;

	if (prev == CS_FAILED)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	client_close(c);
	c->state = CS_FAILED;

	switch (prev) {
	case CS_GREETING:
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_TLS:
	case CS_AUTH:
	case CS_PROBE:
		c->ready_cb = NULL;
		if (ready != NULL)
			ready(c, 0, text, c->ready_arg);
		break;
	case CS_LOCAL:
	case CS_ENVELOPE:
	case CS_BODY:
	case CS_DOT:
	case CS_RSET:
		if (prev == CS_ENVELOPE && c->reply_next == 0)
			c->res.not_begun = 1;
		if (!c->decided) {
			c->res.status = 4;
			c->res.code = 0;
			snprintf(c->res.text, sizeof(c->res.text), "%s", text);
			for (i = 0; i < c->msg.nrcpt; i++)
				client_rcpt_set(&c->res.rcpt[i], 0, text);
		}
		client_finish(c, 1);
		break;
	case CS_QUIT:
		client_free(c);
		break;
	case CS_IDLE:
		log_debug("upstream connection lost while idle: %s", text);
		break;
	case CS_FAILED:
		break;
	}
}

/* Queue one command line; the ceiling is never near, but check. */
int
client_cmd(struct client *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	if (rc == -1)
		client_fail(c, "cannot queue command");
	return rc;
}

/* Send RSET to close a transaction the upstream still holds open. */
static void
client_rset(struct client *c)
{
	c->state = CS_RSET;
	client_cmd(c, "RSET\r\n");
}

/* The size we announce (RFC 1870): spool, prepend and X-Peer line. */
static uint64_t
client_msg_size(const struct client_msg *m)
{
	uint64_t	 size = m->size;

	if (m->prepend != NULL)
		size += strlen(m->prepend);
	if (m->x_peer_ip != NULL)
		size += strlen("X-Peer: \r\n") + strlen(m->x_peer_ip);
	return size;
}

/* Queue MAIL, RCPT and DATA: all of them when pipelining, else one. */
void
client_envelope_queue(struct client *c)
{
	const struct client_msg	*m = &c->msg;
	char			 size[32];
	int			 rc;

	while (c->state == CS_ENVELOPE && c->cmd_next <= m->nrcpt + 1 &&
	    buf_left(&c->out) < CLIENT_OUT_LOW) {
		if (!c->pipelined && c->cmd_next != c->reply_next)
			break;
		if (c->cmd_next == 0) {
			size[0] = '\0';
			if (c->capa & CAPA_SIZE)
				snprintf(size, sizeof(size), " SIZE=%llu",
				    (unsigned long long)client_msg_size(m));
			rc = client_cmd(c, "MAIL FROM:<%s>%s%s%s\r\n",
			    m->mail_from, size,
			    (m->body_8bit && (c->capa & CAPA_8BITMIME)) ?
			    " BODY=8BITMIME" : "",
			    m->smtputf8 ? " SMTPUTF8" : "");
		} else if (c->cmd_next <= m->nrcpt)
			rc = client_cmd(c, "RCPT TO:<%s>\r\n",
			    m->rcpts[c->cmd_next - 1]);
		else
			rc = client_cmd(c, "DATA\r\n");
		if (rc == -1)
			return;
		c->cmd_next++;
	}
}

/* Reply to MAIL, to one RCPT, or to DATA, in the order sent. */
static void
client_envelope_reply(struct client *c, const struct smtp_reply *r)
{
	struct client_result	*res = &c->res;
	uint32_t		 k = c->reply_next++, n = c->msg.nrcpt, i;
	int			 cls = r->code / 100;

	if (k == 0) {
		c->mail_421 = r->code == 421;
		if (cls == 2)
			c->mail_ok = 1;
		else if (cls == 4 || cls == 5) {
			/* A refused MAIL is every recipient's answer. */
			for (i = 0; i < n; i++)
				client_rcpt_set(&res->rcpt[i], r->code,
				    r->text);
			if (!c->pipelined) {
				client_decide(c);
				client_rset(c);
				return;
			}
		} else {
			client_fail(c, "unexpected reply to MAIL: %d %s",
			    r->code, r->text);
			return;
		}
	} else if (k <= n) {
		if (cls != 2 && cls != 4 && cls != 5) {
			client_fail(c, "unexpected reply to RCPT: %d %s",
			    r->code, r->text);
			return;
		}
		if (c->mail_ok) {
			client_rcpt_set(&res->rcpt[k - 1], r->code, r->text);
			if (cls == 2)
				c->naccepted++;
		}
		if (!c->pipelined && k == n && c->naccepted == 0) {
			client_decide(c);
			client_rset(c);
			return;
		}
	} else {
		if (r->code == 354) {
			if (c->mail_ok && c->naccepted > 0) {
				client_body_start(c);
				return;
			}
			/*
			 * RFC 2920 3.1: DATA should have been refused with
			 * nobody to send to.  End it empty; the reply to that
			 * does not matter.
			 */
			client_decide(c);
			c->dot_ignore = 1;
			c->state = CS_DOT;
			client_cmd(c, ".\r\n");
			return;
		}
		if (cls != 4 && cls != 5) {
			client_fail(c, "unexpected reply to DATA: %d %s",
			    r->code, r->text);
			return;
		}
		if (c->mail_ok)
			for (i = 0; i < n; i++)
				if (res->rcpt[i].code / 100 == 2)
					client_rcpt_set(&res->rcpt[i],
					    r->code, r->text);
		client_decide(c);
		client_rset(c);
		return;
	}
	client_envelope_queue(c);
}

/* Reply to the final dot: it decides for the accepted recipients. */
static void
client_dot_reply(struct client *c, const struct smtp_reply *r)
{
	struct client_result	*res = &c->res;
	uint32_t		 i;
	int			 cls = r->code / 100;

	if (c->dot_ignore) {
		c->dot_ignore = 0;
		client_finish(c, 0);
		return;
	}
	if (cls != 2 && cls != 4 && cls != 5) {
		client_fail(c, "unexpected reply to end of data: %d %s",
		    r->code, r->text);
		return;
	}
	for (i = 0; i < c->msg.nrcpt; i++)
		if (res->rcpt[i].code / 100 == 2)
			client_rcpt_set(&res->rcpt[i], r->code, r->text);
	client_decide(c);
	client_finish(c, 0);
}

/* The session is set up: the client can take a message. */
void
client_session_ready(struct client *c, const char *text)
{
	client_ready_cb	 ready;

	c->state = CS_IDLE;
	client_rearm(c);
	ready = c->ready_cb;
	c->ready_cb = NULL;
	if (ready != NULL)
		ready(c, 1, text, c->ready_arg);
}

/* Start the handshake: from now on every byte goes through TLS. */
static void
client_tls_start(struct client *c)
{
	c->state = CS_TLS;
	c->tls_on = 1;
	c->tls_want = EV_WRITE;
	client_rearm(c);	/* the whole handshake is one wait */
	client_tls_step(c);
}

/*
 * The reply to STARTTLS.  Whatever came after the 220 was sent before
 * the handshake, yet would be read as if it came under TLS: a server
 * must not pipeline there (RFC 3207 5), so it is dropped.
 */
static void
client_starttls_reply(struct client *c, const struct smtp_reply *r)
{
	if (r->code != 220) {
		client_fail(c, "STARTTLS: %d %s", r->code, r->text);
		return;
	}
	if (buf_left(&c->out) > 0) {
		client_fail(c, "protocol violation: reply before STARTTLS");
		return;
	}
	if (linebuf_pending(&c->lb) > 0) {
		log_info("event=upstream-starttls-extra octets=%zu "
		    "action=discarded", linebuf_pending(&c->lb));
		linebuf_discard(&c->lb);
	}
	client_tls_start(c);
}

/*
 * EHLO or HELO was answered: STARTTLS when it is asked for and not yet
 * done, else AUTH when there are credentials, else the session is set.
 */
static void
client_session_next(struct client *c, const char *text)
{
	if ((c->tls_mode == CLIENT_TLS_STARTTLS ||
	    (c->tls_mode == CLIENT_TLS_OPPORTUNISTIC &&
	    (c->capa & CAPA_STARTTLS))) && !c->tls_up) {
		if (!(c->capa & CAPA_STARTTLS)) {
			client_fail(c, "upstream does not offer STARTTLS");
			return;
		}
		c->state = CS_STARTTLS;
		client_cmd(c, "STARTTLS\r\n");
		return;
	}
	if (c->auth_user[0] != '\0' && !c->authed) {
		client_auth_start(c);
		return;
	}
	client_session_ready(c, text);
}

/* The greeting, the reply to EHLO or HELO, STARTTLS or in AUTH. */
static void
client_session_reply(struct client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case CS_GREETING:
		if (r->code != 220) {
			client_fail(c, "greeting: %d %s", r->code, r->text);
			return;
		}
		c->state = CS_EHLO;
		client_cmd(c, "EHLO %s\r\n", c->helo);
		return;
	case CS_EHLO:
		if (r->code / 100 == 5) {
			/* RFC 5321 4.1.4: an old server; try HELO. */
			c->state = CS_HELO;
			client_cmd(c, "HELO %s\r\n", c->helo);
			return;
		}
		if (r->code != 250) {
			client_fail(c, "EHLO: %d %s", r->code, r->text);
			return;
		}
		c->capa = (r->capa & ~CAPA_ESMTP) | CAPA_ESMTP |
		    (r->auth & (CAPA_AUTH_PLAIN | CAPA_AUTH_LOGIN));
		c->size_limit = r->size_limit;
		break;
	case CS_STARTTLS:
		client_starttls_reply(c, r);
		return;
	case CS_AUTH:
		client_auth_reply(c, r);
		return;
	default:
		if (r->code != 250) {
			client_fail(c, "HELO: %d %s", r->code, r->text);
			return;
		}
		c->capa = 0;
		c->size_limit = 0;
		break;
	}
	client_session_next(c, r->text);
}

/* A whole reply arrived: what it answers depends on the state. */
static void
client_reply(struct client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case CS_GREETING:
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_AUTH:
		client_session_reply(c, r);
		break;
	case CS_ENVELOPE:
		client_envelope_reply(c, r);
		break;
	case CS_DOT:
		if (buf_left(&c->out) > 0)
			client_fail(c, "reply before end of data: %d %s",
			    r->code, r->text);
		else
			client_dot_reply(c, r);
		break;
	case CS_RSET:
		if (r->code / 100 != 2)
			client_fail(c, "RSET: %d %s", r->code, r->text);
		else
			client_finish(c, 0);
		break;
	case CS_PROBE:
		client_probe_reply(c, r);
		break;
	case CS_QUIT:
		/* Say goodbye to TLS too (close_notify), as best we can. */
		if (c->tls_up && !c->tls_bad) {
			ERR_clear_error();
			SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		client_free(c);
		break;
	case CS_IDLE:
	case CS_LOCAL:
	case CS_BODY:
	case CS_TLS:
		client_fail(c, "unexpected reply: %d %s", r->code, r->text);
		break;
	case CS_FAILED:
		break;
	}
}

/* Take every complete line read; anything but CRLF ends the session. */
void
client_lines(struct client *c)
{
	struct smtp_reply	 r;
	const uint8_t		*line;
	size_t			 len;

	while (!client_gone(c)) {
		switch (linebuf_next(&c->lb, CLIENT_REPLY_LINE_MAX, &line,
		    &len)) {
		case LINE_NONE:
			return;
		case LINE_CRLF:
			break;
		case LINE_BARE_LF:
			client_fail(c, "protocol violation: bare LF in reply");
			return;
		case LINE_BARE_CR:
			client_fail(c, "protocol violation: bare CR in reply");
			return;
		case LINE_TOO_LONG:
			client_fail(c, "protocol violation: reply line too "
			    "long");
			return;
		}
		switch (reply_parse_line(&c->rp, (const char *)line, len, &r)) {
		case REPLY_MORE:
			continue;
		case REPLY_BAD:
			client_fail(c, "protocol violation: malformed reply");
			return;
		case REPLY_DONE:
			break;
		}
		client_reply(c, &r);
		client_rearm(c);
		client_events(c);
	}
}

/* A wait lasted too long (RFC 5321 4.5.3.2). */
static void
client_timeout(void *arg)
{
	struct client	*c = arg;

	client_enter(c);
	if (c->state == CS_QUIT)
		client_free(c);
	else
		client_fail(c, "timeout in %s", client_state_names[c->state]);
	client_leave(c);
}

/* done() for a message refused before anything was sent. */
static void
client_deferred(void *arg)
{
	struct client	*c = arg;

	client_enter(c);
	client_finish(c, 0);
	client_leave(c);
}

/* Whether s may go on a command line: bounded, no control octets. */
static int
client_valid_arg(const char *s, size_t max, int empty_ok)
{
	size_t	 i;

	if (s == NULL)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max)
			return 0;
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	}
	return empty_ok || i > 0;
}

/* Take over fd and start: greeting, then EHLO or HELO. */
struct client *
client_new(int fd, const char *helo_name, client_ready_cb ready, void *arg)
{
	struct client	*c;
	size_t		 i;
	int		 flags;

	if (fd < 0 || !client_valid_arg(helo_name, CLIENT_HELO_MAX, 0)) {
		errno = EINVAL;
		return NULL;
	}
	for (i = 0; helo_name[i] != '\0'; i++)
		if (helo_name[i] == ' ') {
			errno = EINVAL;
			return NULL;
		}
	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return NULL;
	if (!(flags & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	c->state = CS_GREETING;
	c->timeout_ms = CLIENT_TIMEOUT_MS;
	snprintf(c->helo, sizeof(c->helo), "%s", helo_name);
	c->ready_cb = ready;
	c->ready_arg = arg;
	ev_timer_set(&c->timer, client_timeout, c);
	ev_timer_set(&c->defer, client_deferred, c);
	linebuf_init(&c->lb, c->in, sizeof(c->in));
	reply_parser_init(&c->rp);
	buf_init(&c->out, CLIENT_OUT_MAX);
	if (ev_add(fd, EV_READ, client_io, c) == -1) {
		free(c);
		return NULL;
	}
	client_rearm(c);
	return c;
}

/*
 * TLS for the connection, set before the loop runs: STARTTLS after
 * EHLO, or the handshake first, which the loop starts once the socket
 * can take the hello.
 */
int
client_set_tls(struct client *c, SSL_CTX *ctx, int mode,
    const char *verify_host)
{
	if (c->state != CS_GREETING || c->ssl != NULL ||
	    linebuf_pending(&c->lb) > 0) {
		errno = EINVAL;
		return -1;
	}
	if (mode == CLIENT_TLS_NONE)
		return 0;
	if ((mode != CLIENT_TLS_STARTTLS && mode != CLIENT_TLS_IMPLICIT &&
	    mode != CLIENT_TLS_OPPORTUNISTIC) ||
	    ctx == NULL ||
	    !client_valid_arg(verify_host, CLIENT_HOST_MAX, 0)) {
		errno = EINVAL;
		return -1;
	}
	if ((c->ssl = tls_client_ssl(ctx, c->fd, verify_host)) == NULL) {
		ERR_clear_error();
		errno = ENOMEM;
		return -1;
	}
	c->tls_mode = mode;
	c->tls_verify = (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) != 0;
	if (mode == CLIENT_TLS_IMPLICIT) {
		if (ev_mod(c->fd, EV_WRITE) == -1)
			return -1;
		c->state = CS_TLS;
		c->tls_on = 1;
		c->tls_want = EV_WRITE;
	}
	return 0;
}

/* Refuse the message here, with done() from the loop, not from inside. */
static void
client_refuse(struct client *c, int code, const char *text)
{
	uint32_t	 i;

	for (i = 0; i < c->msg.nrcpt; i++)
		client_rcpt_set(&c->res.rcpt[i], code, text);
	client_decide(c);
	c->state = CS_LOCAL;
	ev_timer_add(&c->defer, 0);
}

/* Start sending m; done() follows with its result. */
int
client_send(struct client *c, const struct client_msg *m,
    client_done_cb done, void *arg)
{
	uint32_t	 i;

	if (c->state != CS_IDLE || client_gone(c)) {
		errno = c->state == CS_IDLE ? EPIPE : EBUSY;
		return -1;
	}
	if (done == NULL || m->nrcpt == 0 || m->nrcpt > UINT32_MAX - 2 ||
	    m->rcpts == NULL || m->spool_fd < 0 ||
	    !client_valid_arg(m->mail_from, ADDR_PATH_MAX, 1) ||
	    (m->x_peer_ip != NULL &&
	    (!client_valid_arg(m->x_peer_ip, CLIENT_PEER_MAX, 0) ||
	    strchr(m->x_peer_ip, ' ') != NULL))) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (!client_valid_arg(m->rcpts[i], ADDR_PATH_MAX, 0)) {
			errno = EINVAL;
			return -1;
		}
	memset(&c->res, 0, sizeof(c->res));
	if ((c->res.rcpt = calloc(m->nrcpt, sizeof(*c->res.rcpt))) == NULL)
		return -1;
	c->msg = *m;
	c->done_cb = done;
	c->done_arg = arg;
	c->decided = 0;
	c->cmd_next = c->reply_next = 0;
	c->mail_ok = 0;
	c->mail_421 = 0;
	c->naccepted = 0;
	c->dot_ignore = 0;
	c->pipelined = (c->capa & CAPA_PIPELINING) != 0;

	/* RFC 6531 3.4: no downgrade; the sender gets a DSN. */
	if (m->smtputf8 && !(c->capa & CAPA_SMTPUTF8)) {
		client_refuse(c, 553,
		    "5.6.7 upstream does not support SMTPUTF8");
		return 0;
	}
	/* RFC 1870 6.1: a message too big would only be refused. */
	if ((c->capa & CAPA_SIZE) && c->size_limit > 0 &&
	    client_msg_size(m) > c->size_limit) {
		client_refuse(c, 552,
		    "5.3.4 message exceeds upstream size limit");
		return 0;
	}
	/* RFC 6152 3: no conversion here; most servers take it. */
	if (m->body_8bit && !(c->capa & CAPA_8BITMIME))
		log_info("event=upstream-no-8bitmime queue_id=%s "
		    "action=sent-as-is", m->queue_id != NULL ? m->queue_id :
		    "-");

	/* A failure here calls done() at once: keep c until it returns. */
	client_enter(c);
	c->state = CS_ENVELOPE;
	client_envelope_queue(c);
	client_rearm(c);
	client_events(c);
	client_leave(c);
	return 0;
}

/* Say QUIT when idle and free the client after the reply; else close. */
void
client_quit(struct client *c)
{
	if (c == NULL)
		return;
	if (c->state != CS_IDLE || client_gone(c)) {
		client_free(c);
		return;
	}
	c->ready_cb = NULL;
	c->state = CS_QUIT;
	client_enter(c);
	if (client_cmd(c, "QUIT\r\n") == 0) {
		client_rearm(c);
		client_events(c);
	}
	client_leave(c);
}

/* Close the connection and free the client, without callbacks. */
void
client_free(struct client *c)
{
	if (c == NULL)
		return;
	c->ready_cb = NULL;
	c->done_cb = NULL;
	if (c->depth > 0) {
		client_close(c);
		c->state = CS_FAILED;
		c->dead = 1;
		return;
	}
	client_destroy(c);
}

/* What EHLO said the upstream supports (CAPA_*). */
int
client_capa(const struct client *c)
{
	return c->capa;
}

/* Whether the connection is under TLS now. */
int
client_tls(const struct client *c)
{
	return c->tls_up && c->ssl != NULL;
}

/* Whether the upstream accepted our credentials. */
int
client_authenticated(const struct client *c)
{
	return c->authed;
}

/* Whether the client is in the middle of something. */
int
client_busy(const struct client *c)
{
	return c->state != CS_IDLE && c->state != CS_FAILED;
}

/* Change the time-out of every wait, the current one included. */
void
client_set_timeout(struct client *c, uint64_t ms)
{
	c->timeout_ms = ms;
	if (ev_timer_pending(&c->timer))
		ev_timer_add(&c->timer, ms);
}
