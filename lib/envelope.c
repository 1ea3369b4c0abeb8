/*
 * The envelope codec.  The worker encodes its commit, the relay decodes
 * it, and a worker is never trusted: every field is bounded, every
 * address is parsed again with the same strict parser the worker used
 * (and kept parsed for the relay's policy), the peer must be an IP
 * literal.  The envelope of a deliver run goes from the relay to the
 * parent the same way.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "envelope.h"

/* Parse s into a as a mailbox the parser accepts (or "" for <>). */
static int
envelope_parse_addr(const char *s, int allow_null, int utf8,
    struct mailaddr *a)
{
	char		 path[ADDR_PATH_MAX + 3];
	size_t		 used;
	int		 n;

	n = snprintf(path, sizeof(path), "<%s>", s);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	if (addr_parse_path(path, n, allow_null, utf8, a, &used) != ADDR_OK ||
	    used != (size_t)n)
		return -1;
	return 0;
}

/*
 * A HELO or EHLO argument, in the session and again in the relay: one
 * to ENV_HELO_MAX bytes, no blank, control or DEL byte (it goes into a
 * Received: header), 8-bit only with SMTPUTF8, and then well-formed
 * UTF-8 without bidirectional controls (SPEC 9).
 */
int
helo_valid(const char *s, int smtputf8)
{
	const unsigned char	*p;
	size_t			 len = strlen(s);

	if (len == 0 || len > ENV_HELO_MAX)
		return HELO_SYNTAX;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == 127 || (*p >= 0x80 && !smtputf8))
			return HELO_SYNTAX;
	if (addr_utf8_check(s) == -1)
		return HELO_UTF8;
	return HELO_OK;
}

/*
 * The MAIL options: what a MAIL that the worker accepted can carry, as
 * it normalised them (upper case, one space between).
 */
static int
envelope_check_mail_opts(const char *s, uint32_t flags)
{
	char		 buf[ENV_OPTS_MAX + 1], *p, *tok;
	const char	*v;

	if (*s == '\0')
		return 0;
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	p = buf;
	while ((tok = strsep(&p, " ")) != NULL) {
		if (strncmp(tok, "SIZE=", 5) == 0) {
			v = tok + 5;
			if (*v == '\0' || strspn(v, "0123456789") != strlen(v))
				return -1;
		} else if (strcmp(tok, "BODY=8BITMIME") == 0) {
			if (!(flags & ENV_F_8BIT))
				return -1;
		} else if (strcmp(tok, "SMTPUTF8") == 0) {
			if (!(flags & ENV_F_SMTPUTF8))
				return -1;
		} else if (strcmp(tok, "BODY=7BIT") != 0)
			return -1;
	}
	return 0;
}

/*
 * The options of the last RCPT (refused ones count: Python kept them):
 * words of bytes that are neither blank nor line ends nor lower case,
 * one space between.
 */
static int
envelope_check_rcpt_opts(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;

	if (*p == ' ')
		return -1;
	for (; *p != '\0'; p++) {
		if (*p == ' ' && (p[1] == ' ' || p[1] == '\0'))
			return -1;
		if (*p == '\t' || *p == '\n' || *p == '\v' || *p == '\f' ||
		    *p == '\r' || (*p >= 0x1c && *p <= 0x1f) ||
		    (*p >= 'a' && *p <= 'z'))
			return -1;
	}
	return 0;
}

/* The TLS protocol, only logged: a name such as "TLSv1.3", or "". */
static int
envelope_check_tls(const char *s)
{
	const char	*ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789.";

	return strspn(s, ok) == strlen(s) ? 0 : -1;
}

/* The recipients of the commit: each parsed, but a bare postmaster. */
static int
envelope_decode_rcpts(struct imsg *imsg, struct envelope *env, int utf8)
{
	struct env_rcpt	*r;
	uint32_t	 i;

	if ((env->rcpts = calloc(env->nrcpt, sizeof(*env->rcpts))) == NULL)
		return -1;
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		if (imsg_get_str(imsg, r->path, sizeof(r->path)) == -1)
			return -1;
		if (strcasecmp(r->path, "postmaster") == 0)
			r->postmaster = 1;
		else if (envelope_parse_addr(r->path, 0, utf8, &r->addr) == -1)
			return -1;
	}
	return 0;
}

/* Fill env from an IMSG_MSG_COMMIT; -1 if the worker sent nonsense. */
int
envelope_decode(struct imsg *imsg, struct envelope *env, int smtputf8)
{
	unsigned char	 bin[sizeof(struct in6_addr)];

	memset(env, 0, sizeof(*env));
	if (imsg_get_str(imsg, env->peer_ip, sizeof(env->peer_ip)) == -1 ||
	    imsg_get_u32(imsg, &env->peer_port) == -1 ||
	    imsg_get_str(imsg, env->helo, sizeof(env->helo)) == -1 ||
	    imsg_get_str(imsg, env->mail_from, sizeof(env->mail_from)) == -1 ||
	    imsg_get_u32(imsg, &env->nrcpt) == -1)
		return -1;
	if ((inet_pton(AF_INET, env->peer_ip, bin) != 1 &&
	    inet_pton(AF_INET6, env->peer_ip, bin) != 1) ||
	    env->peer_port > 65535 ||
	    helo_valid(env->helo, smtputf8) != HELO_OK ||
	    env->nrcpt == 0 || env->nrcpt > ENV_RCPT_MAX ||
	    envelope_parse_addr(env->mail_from, 1, smtputf8, &env->from) == -1)
		return -1;
	if (envelope_decode_rcpts(imsg, env, smtputf8) == -1)
		goto bad;
	if (imsg_get_u64(imsg, &env->size) == -1 ||
	    imsg_get_u32(imsg, &env->flags) == -1 ||
	    imsg_get_str(imsg, env->mail_opts, sizeof(env->mail_opts)) == -1 ||
	    imsg_get_str(imsg, env->rcpt_opts, sizeof(env->rcpt_opts)) == -1 ||
	    imsg_get_str(imsg, env->tls_proto, sizeof(env->tls_proto)) == -1 ||
	    imsg_get_end(imsg) == -1 || (env->flags & ~(uint32_t)ENV_F_MASK) != 0)
		goto bad;
	if (envelope_check_mail_opts(env->mail_opts, env->flags) == -1 ||
	    envelope_check_rcpt_opts(env->rcpt_opts) == -1 ||
	    envelope_check_tls(env->tls_proto) == -1)
		goto bad;
	return 0;
bad:
	envelope_free(env);
	return -1;
}

void
envelope_free(struct envelope *env)
{
	free(env->rcpts);
	env->rcpts = NULL;
}

/* The envelope as a worker commits it (IMSG_MSG_COMMIT). */
void
envelope_encode(struct imsg_out *out, const struct envelope_ref *e)
{
	uint32_t	 i;

	imsg_add_str(out, e->peer_ip);
	imsg_add_u32(out, e->peer_port);
	imsg_add_str(out, e->helo);
	imsg_add_str(out, e->mail_from);
	imsg_add_u32(out, e->nrcpt);
	for (i = 0; i < e->nrcpt; i++)
		imsg_add_str(out, e->rcpt(e->arg, i));
	imsg_add_u64(out, e->size);
	imsg_add_u32(out, e->flags);
	imsg_add_str(out, e->mail_opts != NULL ? e->mail_opts : "");
	imsg_add_str(out, e->rcpt_opts != NULL ? e->rcpt_opts : "");
	imsg_add_str(out, e->tls_proto != NULL ? e->tls_proto : "");
}

static const char *
envelope_rcpt(const void *arg, uint32_t i)
{
	const struct envelope	*env = arg;

	return env->rcpts[i].path;
}

/* A decoded envelope as envelope_encode() takes it. */
void
envelope_ref(const struct envelope *env, struct envelope_ref *e)
{
	memset(e, 0, sizeof(*e));
	e->peer_ip = env->peer_ip;
	e->peer_port = env->peer_port;
	e->helo = env->helo;
	e->mail_from = env->mail_from;
	e->nrcpt = env->nrcpt;
	e->rcpt = envelope_rcpt;
	e->arg = env;
	e->size = env->size;
	e->flags = env->flags;
	e->mail_opts = env->mail_opts;
	e->rcpt_opts = env->rcpt_opts;
	e->tls_proto = env->tls_proto;
}

/*
 * A deliver run (IMSG_DELIVER_RUN, after the relay's descriptor): the
 * queue id, the client as "address:port", HELO, sender and recipients.
 */
void
deliver_env_encode(struct imsg_out *out, const char *qid,
    const struct envelope_ref *e)
{
	char		 peer[64];
	uint32_t	 i;

	snprintf(peer, sizeof(peer), "%s:%u", e->peer_ip, e->peer_port);
	imsg_add_str(out, qid);
	imsg_add_str(out, peer);
	imsg_add_str(out, e->helo);
	imsg_add_str(out, e->mail_from);
	imsg_add_u32(out, e->nrcpt);
	for (i = 0; i < e->nrcpt; i++)
		imsg_add_str(out, e->rcpt(e->arg, i));
}

/* The parent's side: every field bounded; -1 if the relay lied. */
int
deliver_env_decode(struct imsg *imsg, struct deliver_env *d)
{
	char		 rcpt[ADDR_PATH_MAX + 1], *more;
	size_t		 len = 0, n;
	uint32_t	 i;

	memset(d, 0, sizeof(*d));
	if (imsg_get_str(imsg, d->qid, sizeof(d->qid)) == -1 ||
	    imsg_get_str(imsg, d->peer, sizeof(d->peer)) == -1 ||
	    imsg_get_str(imsg, d->helo, sizeof(d->helo)) == -1 ||
	    imsg_get_str(imsg, d->from, sizeof(d->from)) == -1 ||
	    imsg_get_u32(imsg, &d->nrcpt) == -1 || d->nrcpt == 0 ||
	    d->nrcpt > ENV_RCPT_MAX)
		return -1;
	for (i = 0; i < d->nrcpt; i++) {
		if (imsg_get_str(imsg, rcpt, sizeof(rcpt)) == -1)
			goto bad;
		n = strlen(rcpt) + 2;
		if ((more = realloc(d->rcpts, len + n)) == NULL)
			goto bad;
		d->rcpts = more;
		len += snprintf(d->rcpts + len, n, "%s%s", i ? "," : "", rcpt);
	}
	if (imsg_get_end(imsg) == -1)
		goto bad;
	return 0;
bad:
	deliver_env_free(d);
	return -1;
}

void
deliver_env_free(struct deliver_env *d)
{
	free(d->rcpts);
	d->rcpts = NULL;
}
