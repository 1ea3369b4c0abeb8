/*
 * Socket and TLS I/O of the relay's ESMTP client (client.c).  Under TLS
 * the same bytes go through an SSL object instead of the socket:
 * OpenSSL may want to read when we write and the reverse, and may hold
 * decrypted bytes the socket no longer signals, so reads go on until it
 * wants more from the socket.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "client_int.h"
#include "log.h"
#include "tls.h"

#define CLIENT_IO_AGAIN		(-2)		/* wait for the socket */
#define CLIENT_WRITES_MAX	16		/* writes in one event */

/* Why the last TLS operation failed, for the text. */
static void
client_tls_error(char *buf, size_t len)
{
	if (ERR_peek_error() != 0)
		tls_error(buf, len);
	else if (errno != 0)
		snprintf(buf, len, "%s", strerror(errno));
	else
		snprintf(buf, len, "connection closed by upstream");
}

/*
 * Read from the socket, or through TLS once it is on: octets, 0 at the
 * end, CLIENT_IO_AGAIN, or -1 with the reason in err.
 */
static ssize_t
client_recv(struct client *c, void *p, size_t len, char *err,
    size_t errlen)
{
	char	 why[REPLY_TEXT_MAX - 16];
	ssize_t	 n;

	if (!c->tls_on) {
		if ((n = read(c->fd, p, len)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return CLIENT_IO_AGAIN;
			snprintf(err, errlen, "read: %s", strerror(errno));
		}
		return n;
	}
	c->read_wants_write = 0;
	switch ((n = tls_read(c->ssl, p, len))) {
	case TLS_IO_WANT_WRITE:
		c->read_wants_write = 1;
		return CLIENT_IO_AGAIN;
	case TLS_IO_WANT_READ:
		return CLIENT_IO_AGAIN;
	case TLS_IO_ERROR:
		c->tls_bad = 1;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
		/* SMTP frames its replies: no close_notify is just an end. */
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return 0;
		}
#endif
		client_tls_error(why, sizeof(why));
		snprintf(err, errlen, "TLS read: %s", why);
		return -1;
	}
	return n;
}

/* Write to the socket or through TLS, as client_recv() reads. */
static ssize_t
client_xmit(struct client *c, const void *p, size_t len, char *err,
    size_t errlen)
{
	char	 why[REPLY_TEXT_MAX - 16];
	ssize_t	 n;

	if (!c->tls_on) {
		/* send(): no SIGPIPE; the relay's filter allows sendto. */
		if ((n = send(c->fd, p, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return CLIENT_IO_AGAIN;
			snprintf(err, errlen, "write: %s", strerror(errno));
		}
		return n;
	}
	c->write_wants_read = 0;
	switch ((n = tls_write(c->ssl, p, len))) {
	case TLS_IO_WANT_READ:
		c->write_wants_read = 1;
		return CLIENT_IO_AGAIN;
	case TLS_IO_WANT_WRITE:
		return CLIENT_IO_AGAIN;
	case 0:
		snprintf(err, errlen, "TLS write: connection closed by "
		    "upstream");
		return -1;
	case TLS_IO_ERROR:
		c->tls_bad = 1;
		client_tls_error(why, sizeof(why));
		snprintf(err, errlen, "TLS write: %s", why);
		return -1;
	}
	return n;
}

/*
 * Read what the upstream sent.  The socket says when there is more
 * plain text; TLS may hold decrypted octets it no longer signals, so
 * reading goes on until TLS needs the socket again.
 */
static void
client_read(struct client *c)
{
	char	 err[REPLY_TEXT_MAX];
	uint8_t	*p;
	size_t	 avail;
	ssize_t	 n;

	while (!client_gone(c) && c->state != CS_TLS) {
		p = linebuf_space(&c->lb, &avail);
		if (avail == 0) {
			client_fail(c, "protocol violation: reply line too "
			    "long");
			return;
		}
		n = client_recv(c, p, avail, err, sizeof(err));
		if (n == CLIENT_IO_AGAIN)
			break;
		if (n == -1) {
			client_fail(c, "%s", err);
			return;
		}
		if (n == 0) {
			client_fail(c, "connection closed by upstream in %s",
			    client_state_names[c->state]);
			return;
		}
		linebuf_fill(&c->lb, (size_t)n);
		client_lines(c);
		if (!c->tls_on)
			return;
	}
	if (c->tls_on)
		client_events(c);
}

/*
 * Write what is queued, then queue more of the envelope or message;
 * client_events() after, which may call this again (c->flushing).
 */
void
client_flush(struct client *c)
{
	char	 err[REPLY_TEXT_MAX];
	size_t	 left;
	ssize_t	 n;
	int	 i;

	c->flushing = 1;
	for (i = 0; i < CLIENT_WRITES_MAX && !client_gone(c) &&
	    (left = buf_left(&c->out)) > 0; i++) {
		n = client_xmit(c, c->out.data + c->out.off, left, err,
		    sizeof(err));
		if (n == CLIENT_IO_AGAIN)
			break;
		if (n == -1) {
			c->flushing = 0;
			client_fail(c, "%s", err);
			return;
		}
		/* What went out of a line with a password is not kept. */
		if (c->out_secret)
			explicit_bzero(c->out.data + c->out.off, (size_t)n);
		buf_drain(&c->out, (size_t)n);
		if (buf_left(&c->out) == 0)
			c->out_secret = 0;
		client_rearm(c);
	}
	if (c->state == CS_BODY)
		client_body_fill(c);
	else if (c->state == CS_ENVELOPE)
		client_envelope_queue(c);
	c->flushing = 0;
}

static void
client_write(struct client *c)
{
	client_flush(c);
	client_events(c);
}

/*
 * One step of the TLS handshake; once done, check the certificate and
 * go on: the greeting for implicit TLS, EHLO again after STARTTLS.
 */
void
client_tls_step(struct client *c)
{
	char		 err[REPLY_TEXT_MAX];
	const char	*verr;

	errno = 0;
	switch (tls_handshake(c->ssl)) {
	case TLS_HANDSHAKE_WANT_READ:
		c->tls_want = EV_READ;
		client_events(c);
		return;
	case TLS_HANDSHAKE_WANT_WRITE:
		c->tls_want = EV_WRITE;
		client_events(c);
		return;
	case TLS_HANDSHAKE_DONE:
		break;
	default:
		c->tls_bad = 1;
		if (c->tls_verify && (verr = tls_verify_error(c->ssl)) != NULL)
			client_fail(c, "certificate verify failed: %s", verr);
		else {
			client_tls_error(err, sizeof(err));
			client_fail(c, "TLS handshake failed: %s", err);
		}
		return;
	}
	/* SSL_VERIFY_PEER fails the handshake already; this is a backstop. */
	if (c->tls_verify && (verr = tls_verify_error(c->ssl)) != NULL) {
		client_fail(c, "certificate verify failed: %s", verr);
		return;
	}
	c->tls_up = 1;
	log_debug("event=upstream-tls protocol=%s cipher=%s verified=%s",
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
	    c->tls_verify ? "yes" : "no");
	if (c->tls_mode == CLIENT_TLS_IMPLICIT)
		c->state = CS_GREETING;
	else {
		/* RFC 3207 4.2: forget what was said in clear text. */
		c->capa = 0;
		c->size_limit = 0;
		c->state = CS_EHLO;
		if (client_cmd(c, "EHLO %s\r\n", c->helo) == -1)
			return;
	}
	client_rearm(c);
	client_events(c);
	/* The greeting may already be in TLS's hands. */
	client_read(c);
}

/* The socket is ready for what we, or TLS, wait for. */
void
client_io(int fd, int events, void *arg)
{
	struct client	*c = arg;

	(void)fd;
	client_enter(c);
	if (c->state == CS_TLS)
		client_tls_step(c);
	else {
		if ((events & EV_WRITE) ||
		    ((events & EV_READ) && c->write_wants_read))
			client_write(c);
		if (!client_gone(c) && ((events & EV_READ) ||
		    ((events & EV_WRITE) && c->read_wants_write)))
			client_read(c);
	}
	client_leave(c);
}
