/*
 * libFuzzer harness for AUTH towards the upstream (relay/client_auth.c)
 * in a round trip with smtpd's own server side (auth_server.c: the
 * engine of smtp.c and smtp_auth.c, each line through its line reader).
 * The first byte says what the upstream offers (PLAIN, LOGIN, both);
 * the rest is "user\npassword" as upstream-auth holds them.
 *
 * client_set_auth() takes exactly what SPEC allows (1-255 octets each,
 * a password); every line the client sends is one CRLF line, the AUTH
 * command of at most 512 octets (RFC 5321 4.5.3.1.4, RFC 4954 4: no
 * initial response that makes it longer); the server answers each with
 * one reply; the credentials it passes on are exactly the client's,
 * and when they are a name the server takes (no blank or control
 * character) the client ends authenticated, else failed.
 *
 * FUZZ_SRCS: regress/fuzz/auth_server.c smtpd/smtp.c smtpd/smtp_auth.c
 * FUZZ_SRCS: relay/client.c relay/client_body.c relay/client_io.c
 * FUZZ_SRCS: relay/client_auth.c relay/reply.c lib/linebuf.c lib/buf.c
 * FUZZ_SRCS: lib/addr.c lib/policy.c lib/imsg.c lib/base64.c lib/log.c
 * FUZZ_SRCS: lib/conf.c lib/event.c lib/tls.c lib/proc.c
 * FUZZ_SRCS: lib/envelope.c smtpd/smtp_log.c smtpd/smtp_params.c
 * FUZZ_SRCS: lib/imsg_rules.c
 * FUZZ_SRCS: lib/rules.c relay/client_probe.c
 * FUZZ_LIBS: -lssl -lcrypto
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/client_int.h"
#include "proto.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

void	auth_server_start(void);
int	auth_server_line(const char *, size_t, char *, size_t);
int	auth_server_checked(char *, char *);
void	auth_server_end(void);

#define LINE_MAX_LEN	512

/* Whether smtp_auth.c takes user as a name. */
static int
server_name_ok(const char *u)
{
	for (; *u != '\0'; u++)
		if ((unsigned char)*u <= ' ' || *u == 127)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int capas[] = { CAPA_AUTH_PLAIN, CAPA_AUTH_LOGIN,
	    CAPA_AUTH_PLAIN | CAPA_AUTH_LOGIN, CAPA_AUTH_LOGIN };
	struct smtp_reply	 r;
	struct client		*c;
	const char		*nl, *line;
	char			*user, *pass, suser[256], spass[256];
	size_t			 n, len;
	int			 rc, want, steps;

	if (size < 1)
		return 0;
	log_init_child(0, 0, "fuzz", NULL);
	nl = memchr(data + 1, '\n', size - 1);
	if (nl == NULL || memchr(data + 1, '\0', size - 1) != NULL)
		return 0;
	user = strndup((const char *)data + 1, nl - (const char *)data - 1);
	pass = strndup(nl + 1, (const char *)data + size - nl - 1);
	if (user == NULL || pass == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->fd = -1;
	buf_init(&c->out, CLIENT_OUT_MAX);
	rc = client_set_auth(c, user, pass);
	want = *user == '\0' || (strlen(user) <= AUTH_FIELD_MAX &&
	    *pass != '\0' && strlen(pass) <= AUTH_FIELD_MAX);
	if ((rc == 0) != want)
		abort();
	if (rc == -1 || *user == '\0')
		goto done;
	c->capa = capas[data[0] & 3];
	auth_server_start();
	client_auth_start(c);
	for (steps = 0; c->state == CS_AUTH; steps++) {
		line = c->out.data + c->out.off;
		len = buf_left(&c->out);
		/* A command fits 512 octets, a response 12288 (RFC 4954 4). */
		if (steps == 3 || len < 2 || len > (steps == 0 ? LINE_MAX_LEN :
		    12288) ||
		    memchr(line, '\n', len) != line + len - 1 ||
		    line[len - 2] != '\r')
			abort();
		memset(&r, 0, sizeof(r));
		r.code = auth_server_line(line, len, r.text, sizeof(r.text));
		r.nlines = 1;
		buf_drain(&c->out, len);
		client_auth_reply(c, &r);
	}
	n = auth_server_checked(suser, spass);
	/*
	 * smtpd takes AUTH responses of 510 octets only (its one
	 * deviation from RFC 4954 4): PLAIN alone cannot carry more.
	 */
	if (server_name_ok(user) && (c->capa & CAPA_AUTH_LOGIN ||
	    (strlen(user) + strlen(pass) + 4) / 3 * 4 <= SMTP_CMD_MAX)) {
		if (!n || strcmp(suser, user) != 0 || strcmp(spass, pass) != 0 ||
		    !c->authed || c->state != CS_IDLE)
			abort();
	} else if (n || c->authed || c->state != CS_FAILED)
		abort();
	auth_server_end();
done:
	ev_timer_del(&c->timer);
	buf_free(&c->out);
	explicit_bzero(c, sizeof(*c));
	free(c);
	free(user);
	free(pass);
	return 0;
}
