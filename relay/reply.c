/*
 * The upstream's replies (RFC 5321 4.2): "ddd-text" lines that go on,
 * a "ddd text" or "ddd" line that ends the reply, every line with the
 * same code.  The upstream is not trusted: anything else, or a reply
 * longer than CLIENT_REPLY_LINES_MAX lines, is a protocol violation.
 * The text kept is the first line's, made printable, for logs and DSNs;
 * the EHLO keywords (RFC 5321 4.1.1.1) come from the lines after it,
 * and from AUTH the mechanisms the client can use, kept apart.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "client.h"

/* The EHLO keywords we use, and the bit each sets. */
static const struct {
	const char	*keyword;
	int		 capa;
} reply_keywords[] = {
	{ "PIPELINING",	CAPA_PIPELINING },	/* RFC 2920 */
	{ "SIZE",	CAPA_SIZE },		/* RFC 1870 */
	{ "8BITMIME",	CAPA_8BITMIME },	/* RFC 6152 */
	{ "SMTPUTF8",	CAPA_SMTPUTF8 },	/* RFC 6531 */
	{ "STARTTLS",	CAPA_STARTTLS },	/* RFC 3207 */
};

/* Start with no reply under way. */
void
reply_parser_init(struct reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* Keep text as the reply's text: printable ASCII only, truncated. */
static void
reply_copy_text(struct smtp_reply *r, const char *text, size_t len)
{
	size_t	 i;

	if (len > sizeof(r->text) - 1)
		len = sizeof(r->text) - 1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		r->text[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	r->text[len] = '\0';
}

/*
 * The SIZE parameter (RFC 1870 4): digits only.  Anything else, or a
 * number past 2^64, leaves no limit: the server will still say 552.
 */
static uint64_t
reply_size_param(const char *s, size_t len)
{
	uint64_t	 n = 0;
	size_t		 i;

	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	return n;
}

/*
 * The SASL mechanisms we can use among those of an AUTH keyword (RFC
 * 4954 3): names separated by spaces, compared without case.
 */
static int
reply_auth_mechs(const char *s, size_t len)
{
	size_t	 i = 0, start;
	int	 capa = 0;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		for (start = i; i < len && s[i] != ' '; i++)
			;
		if (i - start != 5)
			continue;
		if (strncasecmp(s + start, "PLAIN", 5) == 0)
			capa |= CAPA_AUTH_PLAIN;
		else if (strncasecmp(s + start, "LOGIN", 5) == 0)
			capa |= CAPA_AUTH_LOGIN;
	}
	return capa;
}

/* Note an EHLO keyword line ("KEYWORD [params]") in r. */
static void
reply_keyword(struct smtp_reply *r, const char *text, size_t len)
{
	size_t	 i, klen, kwlen;

	for (klen = 0; klen < len && text[klen] != ' '; klen++)
		;
	if (klen == 4 && strncasecmp(text, "AUTH", 4) == 0) {
		r->auth |= reply_auth_mechs(text + 4, len - 4);
		return;
	}
	/* "AUTH=mech ..." is what old servers say for old clients. */
	if (klen >= 5 && strncasecmp(text, "AUTH=", 5) == 0) {
		r->auth |= reply_auth_mechs(text + 5, len - 5);
		return;
	}
	for (i = 0; i < sizeof(reply_keywords) / sizeof(reply_keywords[0]);
	    i++) {
		kwlen = strlen(reply_keywords[i].keyword);
		if (klen != kwlen ||
		    strncasecmp(text, reply_keywords[i].keyword, kwlen) != 0)
			continue;
		r->capa |= reply_keywords[i].capa;
		if (reply_keywords[i].capa == CAPA_SIZE && klen < len)
			r->size_limit = reply_size_param(text + klen + 1,
			    len - klen - 1);
		return;
	}
}

/*
 * Take one line (without its CRLF).  REPLY_DONE puts the whole reply
 * in *out; after REPLY_DONE or REPLY_BAD the parser starts afresh.
 */
enum reply_status
reply_parse_line(struct reply_parser *p, const char *line, size_t len,
    struct smtp_reply *out)
{
	struct smtp_reply	*r = &p->cur;
	int			 code, last;

	/* RFC 5321 4.2: the first digit is 2..5, the second 0..5. */
	if (len < 3 || len > CLIENT_REPLY_LINE_MAX ||
	    line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '5' ||
	    line[2] < '0' || line[2] > '9')
		goto bad;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		goto bad;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';

	if (!p->in_progress) {
		memset(r, 0, sizeof(*r));
		r->code = code;
		if (len > 4)
			reply_copy_text(r, line + 4, len - 4);
		p->in_progress = 1;
	} else {
		if (code != r->code)
			goto bad;
		if (len > 4)
			reply_keyword(r, line + 4, len - 4);
	}
	if (++r->nlines > CLIENT_REPLY_LINES_MAX)
		goto bad;
	if (!last)
		return REPLY_MORE;
	*out = *r;
	reply_parser_init(p);
	return REPLY_DONE;

bad:
	reply_parser_init(p);
	return REPLY_BAD;
}
