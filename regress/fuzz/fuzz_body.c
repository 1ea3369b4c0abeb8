/*
 * libFuzzer harness for the upstream body writer (relay/client_body.c):
 * dot-stuffing, the X-Peer header at the end of the header block, the
 * final dot.  The first byte says whether there is an X-Peer header
 * (bit 0) and whether the spool starts with 65530-65537 octets of
 * filler so that what follows straddles the writer's 64 KiB chunks (bit
 * 1); the second is the length of the prepend, taken from what
 * follows (as a C string); the rest is the spool file.
 *
 * What the writer sends is then read back two ways.  By the real server
 * engine (smtpd/smtp.c, in DATA after a real transaction): the data
 * ends exactly at the writer's final dot, never before; and when the
 * message has no bare CR or LF and no over-long line, the engine
 * spools exactly the expected message.  By a lenient reader that takes
 * a bare CR or LF as a line end too (as some upstreams do): the data
 * ends only at the final dot there as well, and unstuffed it is the
 * expected message.  The expected message is the prepend and the
 * spool, X-Peer before the first empty line (at the end without one),
 * a CRLF added to a last line without it.
 *
 * FUZZ_SRCS: regress/fuzz/body_server.c
 * FUZZ_SRCS: relay/client.c relay/client_body.c relay/client_io.c
 * FUZZ_SRCS: relay/client_auth.c relay/reply.c smtpd/smtp.c
 * FUZZ_SRCS: smtpd/smtp_auth.c lib/linebuf.c lib/buf.c lib/addr.c
 * FUZZ_SRCS: lib/policy.c lib/imsg.c lib/base64.c lib/log.c lib/conf.c
 * FUZZ_SRCS: lib/event.c lib/tls.c lib/proc.c
 * FUZZ_SRCS: lib/envelope.c smtpd/smtp_log.c smtpd/smtp_params.c
 * FUZZ_SRCS: lib/imsg_rules.c
 * FUZZ_SRCS: lib/rules.c relay/client_probe.c
 * FUZZ_LIBS: -lssl -lcrypto
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/client_int.h"
#include "proto.h"
#include "log.h"

/* body_server.c: smtp.c's reading (its headers clash with the client's). */
void	body_server_check(const char *, size_t, const char *, size_t, int);

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define PEER_IP		"192.0.2.7"
#define FILLER_MAX	(CLIENT_CHUNK + 1)

static int	 spoolfd = -1;
static char	*filler;

/* A lenient reader: any of CR, LF, CRLF ends a line. */
static void
lenient_check(const char *w, size_t wlen, const char *exp, size_t explen)
{
	char	*got;
	size_t	 i, g = 0;
	int	 bol = 1;

	if ((got = malloc(wlen)) == NULL)
		abort();
	for (i = 0; i < wlen; i++) {
		if (bol && w[i] == '.') {
			if (i + 1 == wlen || w[i + 1] == '\r' ||
			    w[i + 1] == '\n') {
				/* The end: the final dot, nothing else. */
				if (i + 3 != wlen || w[i + 1] != '\r' ||
				    w[i + 2] != '\n')
					abort();
				break;
			}
			i++;
		}
		got[g++] = w[i];
		bol = w[i] == '\r' || w[i] == '\n';
	}
	if (i == wlen || g != explen || memcmp(got, exp, explen) != 0)
		abort();
	free(got);
}

/* What the upstream should get, unstuffed. */
static char *
expected(const char *msg, size_t len, int peer, size_t *outlen)
{
	static const char	 xp[] = "X-Peer: " PEER_IP "\r\n";
	char			*e;
	size_t			 k, n = 0;

	if ((e = malloc(len + sizeof(xp) + 2)) == NULL)
		abort();
	/* The empty line: CRLF first, or right after a CRLF. */
	for (k = 0; k + 1 < len; k++)
		if (msg[k] == '\r' && msg[k + 1] == '\n' && (k == 0 ||
		    (k >= 2 && msg[k - 2] == '\r' && msg[k - 1] == '\n')))
			break;
	if (k + 1 >= len)
		k = len;
	memcpy(e, msg, k);
	n = k;
	if (peer && k < len) {
		memcpy(e + n, xp, sizeof(xp) - 1);
		n += sizeof(xp) - 1;
	}
	memcpy(e + n, msg + k, len - k);
	n += len - k;
	if (len > 0 && (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n')) {
		memcpy(e + n, "\r\n", 2);
		n += 2;
	}
	if (peer && k == len) {
		memcpy(e + n, xp, sizeof(xp) - 1);
		n += sizeof(xp) - 1;
	}
	*outlen = n;
	return e;
}

/* No bare CR or LF, no line over 998 octets sent: smtp.c takes it. */
static int
is_clean(const char *m, size_t len)
{
	size_t	 i, col = 0;

	for (i = 0; i < len; i++) {
		if (m[i] == '\r' && i + 1 < len && m[i + 1] == '\n') {
			i++;
			col = 0;
			continue;
		}
		if (m[i] == '\r' || m[i] == '\n')
			return 0;
		/* A leading dot is sent twice: the line grows by one. */
		col++;
		if (col + (m[i - col + 1] == '.') > SMTP_TEXT_MAX)
			return 0;
	}
	if (len > 0 && m[len - 1] == '\r')
		return 0;
	return 1;
}

static void
init_once(void)
{
	if (spoolfd != -1)
		return;
	log_init_child(0, 0, "fuzz", NULL);
	if ((spoolfd = memfd_create("spool", 0)) == -1 ||
	    (filler = malloc(FILLER_MAX)) == NULL)
		abort();
	memset(filler, 'a', FILLER_MAX);
}

/* The writer's whole output for the message, as the socket gets it. */
static char *
write_body(const char *prep, int peer, uint64_t spoolsize, size_t *wlen)
{
	struct client	*c;
	char		*w = NULL;
	size_t		 n;
	FILE		*wf;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (wf = open_memstream(&w, wlen)) == NULL)
		abort();
	c->fd = -1;
	c->state = CS_ENVELOPE;
	buf_init(&c->out, CLIENT_OUT_MAX);
	c->msg.spool_fd = spoolfd;
	c->msg.size = spoolsize;	/* as the queue checked it */
	c->msg.prepend = *prep != '\0' ? prep : NULL;
	c->msg.x_peer_ip = peer ? PEER_IP : NULL;
	client_body_start(c);
	for (;;) {
		if ((n = buf_left(&c->out)) > 0) {
			if (fwrite(c->out.data + c->out.off, 1, n, wf) != n)
				abort();
			buf_drain(&c->out, n);
		}
		if (c->state != CS_BODY)
			break;
		client_body_fill(c);
	}
	if (fclose(wf) != 0 || c->state != CS_DOT)
		abort();
	client_body_free(c);
	buf_free(&c->out);
	free(c);
	return w;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*body;
	char		*prep, *msg, *exp, *w;
	size_t		 skip, bodylen, preplen, fill = 0, msglen, explen, wlen;
	int		 peer;

	if (size < 2)
		return 0;
	init_once();
	peer = data[0] & 1;
	if (data[0] & 2)
		fill = CLIENT_CHUNK - 6 + (data[0] >> 2 & 7);
	skip = data[1] < size - 2 ? data[1] : size - 2;
	if ((prep = strndup((const char *)data + 2, skip)) == NULL)
		abort();
	preplen = strlen(prep);
	body = data + 2 + skip;
	bodylen = size - 2 - skip;
	if (ftruncate(spoolfd, 0) == -1 ||
	    pwrite(spoolfd, filler, fill, 0) != (ssize_t)fill ||
	    pwrite(spoolfd, body, bodylen, fill) != (ssize_t)bodylen)
		abort();
	msglen = preplen + fill + bodylen;
	if ((msg = malloc(msglen + 1)) == NULL)
		abort();
	memcpy(msg, prep, preplen);
	memcpy(msg + preplen, filler, fill);
	memcpy(msg + preplen + fill, body, bodylen);
	exp = expected(msg, msglen, peer, &explen);

	w = write_body(prep, peer, fill + bodylen, &wlen);
	lenient_check(w, wlen, exp, explen);
	body_server_check(w, wlen, exp, explen, is_clean(msg, msglen));
	free(w);
	free(exp);
	free(msg);
	free(prep);
	return 0;
}
