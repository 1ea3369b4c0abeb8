/*
 * The arguments of MAIL and RCPT: the keyword, the path (parsed
 * strictly by lib/addr.c), the MAIL parameters, and the parameters as
 * DebuggingServer printed them.
 */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>

#include "addr.h"
#include "smtp.h"

/* Reply to a bad path with the code RFC 5321 and SPEC section 7 give. */
static void
smtp_addr_error(struct smtp_session *s, enum addr_error err, int sender)
{
	const char	*enh = sender ? "5.1.7" : "5.1.3";

	if (err == ADDR_ERR_SYNTAX)
		smtp_reply(s, 501, "5.5.4", "Syntax: %s",
		    sender ? "MAIL FROM:<address>" : "RCPT TO:<address>");
	else
		smtp_reply(s, 553, enh, "%s", addr_strerror(err));
}

/* "FROM:" or "TO:", any case, then optional spaces before the path. */
char *
smtp_path_arg(char *arg, const char *keyword)
{
	size_t	 n = strlen(keyword);

	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

/* MAIL parameters: SIZE, BODY, SMTPUTF8 (RFC 1870, 6152, 6531). */
int
smtp_mail_params(struct smtp_session *s, char *params)
{
	char			*p, *val;
	const char		*errstr;
	unsigned long long	 size;

	while ((p = strsep(&params, " ")) != NULL) {
		if (*p == '\0')
			continue;
		if ((val = strchr(p, '=')) != NULL)
			*val++ = '\0';
		if (strcasecmp(p, "SIZE") == 0 && val != NULL) {
			errstr = NULL;
			size = strtonum(val, 0, LLONG_MAX, &errstr);
			if (errstr != NULL || !isdigit((unsigned char)*val)) {
				smtp_reply(s, 501, "5.5.4", "Bad SIZE value");
				return -1;
			}
			if (size > s->conf->max_size) {
				smtp_reply(s, 552, "5.3.4", "Message size "
				    "exceeds fixed maximum message size");
				return -1;
			}
		} else if (strcasecmp(p, "BODY") == 0 && val != NULL) {
			if (strcasecmp(val, "8BITMIME") == 0)
				s->body_8bit = 1;
			else if (strcasecmp(val, "7BIT") != 0) {
				smtp_reply(s, 501, "5.5.4", "Bad BODY value");
				return -1;
			}
		} else if (strcasecmp(p, "SMTPUTF8") == 0 && val == NULL &&
		    s->conf->smtputf8) {
			s->smtputf8 = 1;
		} else {
			smtp_reply(s, 555, "5.5.4", "Unsupported parameter");
			return -1;
		}
	}
	return 0;
}

/*
 * Keep MAIL or RCPT parameters as Python's smtpd kept them for
 * DebuggingServer (params.upper().split(), joined here by one space).
 */
int
smtp_opts_save(char **dst, const char *params)
{
	char		*o, *q;
	const char	*p;
	int		 word = 0;

	if ((o = malloc(strlen(params) + 1)) == NULL)
		return -1;
	for (p = params, q = o; *p != '\0'; p++) {
		if (*p == ' ' || (*p >= '\t' && *p <= '\r') ||
		    (*p >= 0x1c && *p <= 0x1f)) {
			word = 0;
			continue;
		}
		if (!word && q != o)
			*q++ = ' ';
		word = 1;
		*q++ = *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p;
	}
	*q = '\0';
	free(*dst);
	*dst = o;
	return 0;
}

/* Split "<path> params" after the path; the path parse is strict. */
int
smtp_parse_path(struct smtp_session *s, char *arg, int sender,
    struct mailaddr *a, char **params, int utf8)
{
	enum addr_error	 err;
	size_t		 used;

	err = addr_parse_path(arg, strlen(arg), sender, utf8, a, &used);
	if (err != ADDR_OK) {
		smtp_addr_error(s, err, sender);
		return -1;
	}
	if (arg[used] != '\0' && arg[used] != ' ') {
		smtp_reply(s, 501, "5.5.4", "Syntax: %s", sender ?
		    "MAIL FROM:<address>" : "RCPT TO:<address>");
		return -1;
	}
	*params = arg + used;
	return 0;
}
