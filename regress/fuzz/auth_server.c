/*
 * The server side of fuzz_client_auth.c: smtpd's own engine (smtp.c
 * and smtp_auth.c) on a loopback session past EHLO, reading what the
 * relay's client sends.  A file of its own: the server's and the
 * client's headers cannot meet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "conf.h"
#include "smtpd/smtp.h"

void	auth_server_start(void);
int	auth_server_line(const char *, size_t, char *, size_t);
int	auth_server_checked(char *, char *);
void	auth_server_end(void);

static struct smtpd_conf	 conf;
static struct smtp_session	 s;
static int			 checked;
static char			 cuser[AUTH_FIELD_MAX + 1], cpass[AUTH_FIELD_MAX + 1];

static void
no_msg(struct smtp_session *ss)
{
	(void)ss;
	abort();
}

/* The parent says yes to any credentials that reach it. */
static void
check(struct smtp_session *ss, const char *user, const char *password)
{
	checked = 1;
	strlcpy(cuser, user, sizeof(cuser));
	strlcpy(cpass, password, sizeof(cpass));
	smtp_auth_done(ss, 1);
}

static const struct smtp_ops ops = { no_msg, no_msg, NULL, check };

void
auth_server_start(void)
{
	static const char	 ehlo[] = "EHLO relay.test\r\n";
	uint8_t			*p;
	size_t			 avail;

	conf_defaults(&conf);
	strcpy(conf.hostname, "mx.test");
	smtp_init(&s, &conf, &ops, NULL, "127.0.0.1", 25);
	s.loopback = 1;
	s.auth_configured = 1;
	s.listen_flags = LISTEN_AUTH;
	checked = 0;
	if ((p = smtp_input_space(&s, &avail)) == NULL)
		abort();
	memcpy(p, ehlo, sizeof(ehlo) - 1);
	smtp_input_fill(&s, sizeof(ehlo) - 1);
	smtp_process(&s);
	buf_drain(&s.out, buf_left(&s.out));
}

/* One line from the client (CRLF included); its one reply's code. */
int
auth_server_line(const char *line, size_t len, char *text, size_t textlen)
{
	const char	*r, *nl;
	uint8_t		*p;
	size_t		 avail, n;
	int		 code;

	while (len > 0) {
		if ((p = smtp_input_space(&s, &avail)) == NULL || avail == 0)
			abort();
		n = len < avail ? len : avail;
		memcpy(p, line, n);
		smtp_input_fill(&s, n);
		smtp_process(&s);
		line += n;
		len -= n;
	}
	r = s.out.data + s.out.off;
	n = buf_left(&s.out);
	if (n < 6 || (nl = memchr(r, '\n', n)) == NULL || nl != r + n - 1 ||
	    r[3] != ' ')
		abort();	/* one reply, one line */
	code = atoi(r);
	n = (size_t)(nl - r - 5);
	if (n > textlen - 1)
		n = textlen - 1;
	memcpy(text, r + 4, n);
	text[n] = '\0';
	buf_drain(&s.out, buf_left(&s.out));
	return code;
}

int
auth_server_checked(char *user, char *pass)
{
	strlcpy(user, cuser, AUTH_FIELD_MAX + 1);
	strlcpy(pass, cpass, AUTH_FIELD_MAX + 1);
	return checked;
}

void
auth_server_end(void)
{
	smtp_free(&s);
}
