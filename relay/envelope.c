/*
 * Decoding of a committed envelope.  A worker is never trusted: every
 * field is bounded, every address is parsed again with the same strict
 * parser the worker used, and the peer must be an IP literal.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "addr.h"
#include "relay.h"

/* Check that s is a mailbox the parser accepts (or "" for <>). */
static int
envelope_check_addr(const char *s, int allow_null, int utf8)
{
	char		 path[ADDR_PATH_MAX + 3];
	struct mailaddr	 a;
	size_t		 used;
	int		 n;

	n = snprintf(path, sizeof(path), "<%s>", s);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	if (addr_parse_path(path, n, allow_null, utf8, &a, &used) != ADDR_OK ||
	    used != (size_t)n)
		return -1;
	return 0;
}

/*
 * Check a HELO argument as the worker did: no blank, control or DEL
 * byte (it goes into a Received: header), 8-bit only with SMTPUTF8.
 */
static int
envelope_check_helo(const char *s, int utf8)
{
	const unsigned char	*p;

	if (*s == '\0')
		return -1;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == 127 || (*p >= 0x80 && !utf8))
			return -1;
	return addr_utf8_check(s);
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

/* Fill env from an IMSG_MSG_COMMIT; -1 if the worker sent nonsense. */
int
envelope_decode(struct imsg *imsg, struct envelope *env, int smtputf8)
{
	unsigned char	 bin[sizeof(struct in6_addr)];
	uint32_t	 i;

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
	    envelope_check_helo(env->helo, smtputf8) == -1 ||
	    env->nrcpt == 0 || env->nrcpt > ENV_RCPT_MAX ||
	    envelope_check_addr(env->mail_from, 1, smtputf8) == -1)
		return -1;
	if ((env->rcpts = calloc(env->nrcpt, sizeof(*env->rcpts))) == NULL)
		return -1;
	for (i = 0; i < env->nrcpt; i++)
		if (imsg_get_str(imsg, env->rcpts[i], sizeof(env->rcpts[i])) ==
		    -1 || (strcasecmp(env->rcpts[i], "postmaster") != 0 &&
		    envelope_check_addr(env->rcpts[i], 0, smtputf8) == -1))
			goto bad;
	if (imsg_get_u64(imsg, &env->size) == -1 ||
	    imsg_get_u32(imsg, &env->flags) == -1 ||
	    imsg_get_str(imsg, env->mail_opts, sizeof(env->mail_opts)) == -1 ||
	    imsg_get_str(imsg, env->rcpt_opts, sizeof(env->rcpt_opts)) == -1 ||
	    imsg_get_end(imsg) == -1 || (env->flags & ~(uint32_t)ENV_F_MASK) != 0)
		goto bad;
	if (envelope_check_mail_opts(env->mail_opts, env->flags) == -1 ||
	    envelope_check_rcpt_opts(env->rcpt_opts) == -1)
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
