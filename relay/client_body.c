/*
 * The message on its way to the upstream, for the relay's ESMTP client
 * (client.c): the prepend, then the spool file, read with pread() a
 * chunk at a time as the socket drains, dot-stuffed (RFC 5321 4.5.2),
 * with the X-Peer header put at the end of the header block, then the
 * final dot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_int.h"

/* Release what the message being sent holds. */
void
client_body_free(struct client *c)
{
	free(c->body.chunk);
	memset(&c->body, 0, sizeof(c->body));
}

/* Append n octets of the encoded message and remember the last two. */
static int
client_body_emit(struct client *c, const char *p, size_t n)
{
	struct body	*b = &c->body;

	if (n == 0)
		return 0;
	if (buf_add(&c->out, p, n) == -1)
		return -1;
	if (n >= 2) {
		b->last[0] = p[n - 2];
		b->last[1] = p[n - 1];
	} else {
		b->last[0] = b->last[1];
		b->last[1] = p[0];
	}
	b->nsent += n;
	return 0;
}

/* The X-Peer header, once, where the header block ends. */
static int
client_body_peer(struct client *c)
{
	const char	*ip = c->msg.x_peer_ip;

	c->body.peer = 0;
	if (client_body_emit(c, "X-Peer: ", 8) == -1 ||
	    client_body_emit(c, ip, strlen(ip)) == -1 ||
	    client_body_emit(c, "\r\n", 2) == -1)
		return -1;
	return 0;
}

/*
 * Encode n octets of the message.  A dot after a CR or LF, or first, is
 * doubled (RFC 5321 4.5.2): after any line end a lenient upstream might
 * see, not only CRLF, so that no spool content can end the data early.
 * A CR is held until the next octet tells whether it ends an empty line
 * (CRLF right after CRLF), before which X-Peer goes, as in debug mode.
 */
static int
client_body_encode(struct client *c, const char *p, size_t n)
{
	struct body	*b = &c->body;
	size_t		 i, start = 0;

	for (i = 0; i < n; i++) {
		if (b->cr) {
			b->cr = 0;
			if (p[i] == '\n') {
				if (b->peer && b->hdr_bol &&
				    client_body_peer(c) == -1)
					return -1;
				if (client_body_emit(c, "\r\n", 2) == -1)
					return -1;
				b->hdr_bol = b->dot_bol = 1;
				start = i + 1;
				continue;
			}
			if (client_body_emit(c, "\r", 1) == -1)
				return -1;
			b->hdr_bol = 0;
			b->dot_bol = 1;
		}
		if (p[i] == '\r') {
			if (client_body_emit(c, p + start, i - start) == -1)
				return -1;
			b->cr = 1;
			start = i + 1;
			continue;
		}
		if (p[i] == '.' && b->dot_bol) {
			if (client_body_emit(c, p + start, i - start) == -1 ||
			    client_body_emit(c, ".", 1) == -1)
				return -1;
			start = i;
		}
		b->dot_bol = p[i] == '\n';
		b->hdr_bol = 0;
	}
	return client_body_emit(c, p + start, n - start);
}

/*
 * The end of the message: a last line without CRLF gets one, X-Peer
 * goes after the last line when there was no empty line, then the dot.
 */
static int
client_body_end(struct client *c)
{
	struct body	*b = &c->body;

	if (b->cr) {
		b->cr = 0;
		if (client_body_emit(c, "\r", 1) == -1)
			return -1;
	}
	if (b->nsent > 0 && (b->last[0] != '\r' || b->last[1] != '\n') &&
	    client_body_emit(c, "\r\n", 2) == -1)
		return -1;
	if (b->peer && client_body_peer(c) == -1)
		return -1;
	return buf_add(&c->out, ".\r\n", 3);
}

/*
 * Top the output up to CLIENT_OUT_LOW from the prepend and the spool;
 * at the end of the spool queue the dot and wait for the reply.  One
 * chunk encodes to at most 1.5 times its size plus X-Peer, so the
 * buffer stays under its ceiling.
 */
void
client_body_fill(struct client *c)
{
	struct body	*b = &c->body;
	size_t		 n;
	ssize_t		 r;

	while (c->state == CS_BODY && buf_left(&c->out) < CLIENT_OUT_LOW) {
		if (b->preplen > 0) {
			n = b->preplen < CLIENT_CHUNK ? b->preplen :
			    CLIENT_CHUNK;
			if (client_body_encode(c, b->prep, n) == -1)
				goto full;
			b->prep += n;
			b->preplen -= n;
			continue;
		}
		/* The size was checked: no read to find the end. */
		r = (uint64_t)b->off >= c->msg.size ? 0 :
		    pread(c->msg.spool_fd, b->chunk, c->msg.size - b->off <
		    CLIENT_CHUNK ? c->msg.size - b->off : CLIENT_CHUNK, b->off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			client_fail(c, "spool read: %s", strerror(errno));
			return;
		}
		if (r == 0) {
			if (client_body_end(c) == -1)
				goto full;
			client_body_free(c);
			c->state = CS_DOT;
			return;
		}
		b->off += r;
		if (client_body_encode(c, b->chunk, (size_t)r) == -1)
			goto full;
	}
	return;

full:
	client_fail(c, "cannot queue message data");
}

/* DATA got 354: start streaming the message. */
void
client_body_start(struct client *c)
{
	struct body	*b = &c->body;

	client_body_free(c);
	if ((b->chunk = malloc(CLIENT_CHUNK)) == NULL) {
		client_fail(c, "out of memory");
		return;
	}
	b->prep = c->msg.prepend != NULL ? c->msg.prepend : "";
	b->preplen = strlen(b->prep);
	b->peer = c->msg.x_peer_ip != NULL;
	b->hdr_bol = b->dot_bol = 1;
	c->state = CS_BODY;
	client_body_fill(c);
}
