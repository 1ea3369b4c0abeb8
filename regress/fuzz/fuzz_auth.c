/*
 * libFuzzer harness for the AUTH PLAIN and LOGIN exchange of
 * smtpd/smtp_auth.c, on a session past EHLO (over TLS or from
 * loopback, as the first byte says).  The rest is lines split on LF:
 * an AUTH argument ("PLAIN AGFsaWNl...", "LOGIN") when no exchange is
 * under way, a response to the 334 otherwise.
 *
 * Each line gets exactly one reply, well formed, of a code RFC 4954
 * allows; after three failures the session closes.  A differential
 * check: the response is decoded by a strict base64 decoder of this
 * harness and split as RFC 4616 says, and the credentials reach the
 * password check if and only if they are well formed there, and are
 * exactly those.
 *
 * FUZZ_SRCS: smtpd/smtp.c smtpd/smtp_auth.c lib/linebuf.c lib/buf.c
 * FUZZ_SRCS: lib/addr.c lib/policy.c lib/imsg.c lib/base64.c lib/log.c
 * FUZZ_SRCS: lib/conf.c
 * FUZZ_SRCS: lib/envelope.c smtpd/smtp_log.c smtpd/smtp_params.c
 * FUZZ_SRCS: lib/rules.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "log.h"
#include "smtpd/smtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define SASL_MAX	(3 * AUTH_FIELD_MAX + 3)

struct fuzz {
	struct smtpd_conf	 conf;
	struct smtp_session	 s;
	int			 later;		/* answer after the call */
	int			 checked;	/* auth_check was called */
	char			 user[AUTH_FIELD_MAX + 1];
	char			 pass[AUTH_FIELD_MAX + 1];
	int			 ok;
	char			 login_user[AUTH_FIELD_MAX + 1];
	int			 login_user_ok;
};

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict RFC 4648 base64, one encoding a value; the length, or -1. */
static long
decode(const char *in, unsigned char *out, size_t max)
{
	size_t		 len = strlen(in), i, o = 0, pad = 0;
	unsigned long	 v;
	int		 j, x;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len; i += 4) {
		v = 0;
		for (j = 0; j < 4; j++) {
			if (i + j >= len - pad && i + 4 == len) {
				if (in[i + j] != '=')
					return -1;
				x = 0;
			} else if ((x = b64val((unsigned char)in[i + j])) < 0)
				return -1;
			v = v << 6 | x;
		}
		if ((pad == 1 && i + 4 == len && (v & 0xff)) ||
		    (pad == 2 && i + 4 == len && (v & 0xffff)))
			return -1;
		for (j = 0; j < 3; j++) {
			if (i + 4 == len && j >= 3 - (int)pad)
				break;
			if (o == max)
				return -1;
			out[o++] = v >> (16 - 8 * j) & 0xff;
		}
	}
	return (long)o;
}

static int
user_ok(const char *u)
{
	if (*u == '\0' || strlen(u) > AUTH_FIELD_MAX)
		return 0;
	for (; *u != '\0'; u++)
		if ((unsigned char)*u <= ' ' || *u == 127)
			return 0;
	return 1;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd, authzid as authcid. */
static int
plain_expect(const char *b64, char *user, char *pass)
{
	unsigned char	 buf[SASL_MAX + 1];
	const char	*z, *u, *p;
	long		 n;

	if ((n = decode(b64, buf, SASL_MAX)) < 0)
		return 0;
	buf[n] = '\0';
	z = (const char *)buf;
	u = z + strlen(z) + 1;
	if (u > z + n)
		return 0;
	p = u + strlen(u) + 1;
	if (p > z + n || p + strlen(p) != z + n)
		return 0;
	if ((*z != '\0' && strcmp(z, u) != 0) || !user_ok(u) || *p == '\0' ||
	    strlen(p) > AUTH_FIELD_MAX)
		return 0;
	strcpy(user, u);
	strcpy(pass, p);
	return 1;
}

/* A LOGIN value: base64 of at most 255 octets, no NUL. */
static int
login_expect(const char *b64, char *out)
{
	unsigned char	 buf[AUTH_FIELD_MAX + 1];
	long		 n;

	if ((n = decode(b64, buf, AUTH_FIELD_MAX)) < 0 ||
	    memchr(buf, '\0', n) != NULL)
		return -1;
	memcpy(out, buf, n);
	out[n] = '\0';
	return 0;
}

static void
h_open(struct smtp_session *s)
{
	(void)s;
	abort();
}

static void
h_commit(struct smtp_session *s)
{
	(void)s;
	abort();
}

static void
h_auth(struct smtp_session *s, const char *user, const char *password)
{
	struct fuzz	*f = s->owner;

	if (f->checked || s->wait != SMTP_WAIT_AUTH)
		abort();
	f->checked = 1;
	strcpy(f->user, user);
	strcpy(f->pass, password);
	f->ok = strcmp(user, "alice") == 0 && strcmp(password, "secret") == 0;
	if (!f->later)
		smtp_auth_done(s, f->ok);
}

static const struct smtp_ops ops = { h_open, h_commit, NULL, h_auth };

/* The replies to one line: exactly one, of an AUTH code. */
static int
take_reply(struct fuzz *f)
{
	struct buf	*out = &f->s.out;
	const char	*p = out->data + out->off, *nl;
	size_t		 n = buf_left(out), len;
	char		 text[512];
	unsigned char	 bin[512];
	int		 code;

	if (n == 0 || (nl = memchr(p, '\n', n)) == NULL ||
	    (size_t)(nl - p + 1) != n)
		abort();
	len = n;
	if (len < 6 || len > 512 || p[len - 2] != '\r' || p[3] != ' ')
		abort();
	code = atoi(p);
	switch (code) {
	case 235: case 334: case 421: case 501: case 503: case 504:
	case 535:
		break;
	default:
		abort();
	}
	/* A challenge is base64 too (RFC 4954 4). */
	if (code == 334) {
		memcpy(text, p + 4, len - 6);
		text[len - 6] = '\0';
		if (decode(text, bin, sizeof(bin)) < 0)
			abort();
	}
	buf_drain(out, n);
	return code;
}

/* One line, AUTH argument or response, and what must come of it. */
static void
line(struct fuzz *f, char *l)
{
	struct smtp_session	*s = &f->s;
	enum smtp_auth_step	 step = s->auth_step;
	char			 user[AUTH_FIELD_MAX + 1], pass[AUTH_FIELD_MAX + 1];
	char			*arg = l, *mech, *ir;
	int			 want = -1, code, was_auth = s->authenticated;

	f->checked = 0;
	if (strcmp(l, "*") == 0 && step != AUTH_NONE)
		want = 0;
	else if (step == AUTH_PLAIN_RESPONSE)
		want = plain_expect(l, user, pass);
	else if (step == AUTH_LOGIN_USER)
		f->login_user_ok = login_expect(l, f->login_user) == 0;
	else if (step == AUTH_LOGIN_PASSWORD)
		want = login_expect(l, pass) == 0 && user_ok(f->login_user) &&
		    *pass != '\0';
	else {
		mech = strsep(&arg, " ");
		ir = arg;
		if (!s->authenticated && ir != NULL &&
		    strchr(ir, ' ') == NULL && strcasecmp(mech, "PLAIN") == 0)
			want = plain_expect(strcmp(ir, "=") == 0 ? "" : ir,
			    user, pass);
		else if (!s->authenticated && ir != NULL &&
		    strchr(ir, ' ') == NULL && strcasecmp(mech, "LOGIN") == 0)
			f->login_user_ok = login_expect(ir, f->login_user) == 0;
		else
			want = 0;
		if (arg != NULL)
			arg[-1] = ' ';	/* the engine splits it again */
	}
	if (step == AUTH_LOGIN_PASSWORD && want == 1)
		strcpy(user, f->login_user);
	if (step == AUTH_NONE)
		smtp_cmd_auth(s, l);
	else
		smtp_auth_line(s, l);
	if (want == -1 ? f->checked : want != f->checked)
		abort();
	if (f->checked && (strcmp(user, f->user) != 0 ||
	    strcmp(pass, f->pass) != 0))
		abort();
	if (f->later && s->wait == SMTP_WAIT_AUTH)
		smtp_auth_done(s, f->ok);
	if (s->wait != SMTP_WAIT_NONE)
		abort();
	code = take_reply(f);
	if ((code == 235) != (f->checked && f->ok) ||
	    (s->authenticated && !was_auth && code != 235))
		abort();
	if (want == -1 && (code == 334) != f->login_user_ok)
		abort();
	if (code == 334 && s->auth_step == AUTH_NONE)
		abort();
	if (code != 334 && s->auth_step != AUTH_NONE)
		abort();
	if (code == 421 && (s->state != SMTP_CLOSING ||
	    s->auth_failures != SMTP_AUTH_FAILURES))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 inited;
	struct fuzz	*f;
	char		 l[SMTP_CMD_MAX + 1];
	const uint8_t	*p, *end, *nl;
	size_t		 n;

	if (size < 1)
		return 0;
	if (!inited) {
		log_init_child(0, 0, "fuzz", NULL);
		inited = 1;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		abort();
	conf_defaults(&f->conf);
	strcpy(f->conf.hostname, "mx.test");
	f->conf.max_bad = UINT32_MAX;	/* that limit is fuzz_session's */
	smtp_init(&f->s, &f->conf, &ops, f, "127.0.0.1", 4242);
	f->s.listen_flags = LISTEN_AUTH;
	f->s.auth_configured = 1;
	f->s.esmtp = 1;
	f->s.state = SMTP_HELO;
	if (data[0] & 1)
		f->s.tls_active = 1;
	else
		f->s.loopback = 1;
	f->later = (data[0] & 2) != 0;
	end = data + size;
	for (p = data + 1; p < end && f->s.state != SMTP_CLOSING; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		n = nl - p;
		/* The engine never hands over a NUL or a longer line. */
		if (n > SMTP_CMD_MAX || memchr(p, '\0', n) != NULL)
			continue;
		memcpy(l, p, n);
		l[n] = '\0';
		line(f, l);
	}
	smtp_free(&f->s);
	free(f);
	return 0;
}
