/*
 * The path parser.  It works on a length-bounded byte range and never
 * reads past it; it accepts exactly the RFC 5321 grammar for Path and
 * Mailbox (4.1.2), with UTF-8 octets only when the caller allows them
 * (RFC 6531 3.3), and refuses source routes outright.
 */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

struct cursor {
	const unsigned char	*p;
	const unsigned char	*end;
};

static int
is_atext(int c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int
is_letdig(int c, int utf8)
{
	return (c < 0x80 && isalnum(c)) || (c >= 0x80 && utf8);
}

/* Local-part = Dot-string / Quoted-string. */
static enum addr_error
parse_local(struct cursor *c, int utf8, struct mailaddr *a)
{
	const unsigned char	*start = c->p;
	size_t			 len;
	int			 prev_dot = 1;

	if (c->p < c->end && *c->p == '"') {
		a->flags |= ADDR_F_QUOTED;
		for (c->p++; c->p < c->end && *c->p != '"'; c->p++) {
			if (*c->p == '\\') {
				if (++c->p == c->end || *c->p < 32 ||
				    *c->p > 126)
					return ADDR_ERR_SYNTAX;
			} else if (*c->p >= 0x80) {
				if (!utf8)
					return ADDR_ERR_8BIT;
			} else if (*c->p < 32 || *c->p == 127)
				return ADDR_ERR_SYNTAX;
			if (*c->p == '@')
				a->flags |= ADDR_F_QUOTED_AT;
		}
		if (c->p == c->end)
			return ADDR_ERR_SYNTAX;
		c->p++;
	} else {
		for (; c->p < c->end && *c->p != '@'; c->p++) {
			if (*c->p == '.') {
				if (prev_dot)
					return ADDR_ERR_SYNTAX;
				prev_dot = 1;
				continue;
			}
			if (*c->p >= 0x80 && !utf8)
				return ADDR_ERR_8BIT;
			if (!is_atext(*c->p, utf8))
				return ADDR_ERR_SYNTAX;
			prev_dot = 0;
		}
		if (prev_dot)
			return ADDR_ERR_SYNTAX;
	}
	len = c->p - start;
	if (len > ADDR_LOCAL_MAX)
		return ADDR_ERR_LENGTH;
	memcpy(a->local, start, len);
	a->local[len] = '\0';
	if (memchr(start, '%', len) != NULL)
		a->flags |= ADDR_F_PERCENT;
	if (memchr(start, '!', len) != NULL)
		a->flags |= ADDR_F_BANG;
	return ADDR_OK;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]" */
static enum addr_error
parse_literal(struct cursor *c, struct mailaddr *a)
{
	const unsigned char	*start = c->p, *close;
	char			 lit[ADDR_DOMAIN_MAX + 1];
	unsigned char		 bin[16];
	size_t			 len;

	close = memchr(c->p, ']', c->end - c->p);
	if (close == NULL)
		return ADDR_ERR_SYNTAX;
	len = close - (start + 1);
	if (len + 2 > ADDR_DOMAIN_MAX)
		return ADDR_ERR_LENGTH;
	/* A NUL would hide the rest of the literal from inet_pton(). */
	if (memchr(start + 1, '\0', len) != NULL)
		return ADDR_ERR_SYNTAX;
	memcpy(lit, start + 1, len);
	lit[len] = '\0';
	if (strncasecmp(lit, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, lit + 5, bin) != 1)
			return ADDR_ERR_SYNTAX;
	} else if (inet_pton(AF_INET, lit, bin) != 1)
		return ADDR_ERR_SYNTAX;
	memcpy(a->domain, start, len + 2);
	a->domain[len + 2] = '\0';
	a->flags |= ADDR_F_LITERAL;
	c->p = close + 1;
	return ADDR_OK;
}

/* Domain = sub-domain *("." sub-domain); one trailing dot is dropped. */
static enum addr_error
parse_domain(struct cursor *c, int utf8, struct mailaddr *a)
{
	const unsigned char	*start = c->p;
	size_t			 label = 0, len;

	if (c->p < c->end && *c->p == '[')
		return parse_literal(c, a);
	for (; c->p < c->end && *c->p != '>'; c->p++) {
		if (*c->p == '.') {
			if (label == 0 || c->p[-1] == '-')
				return ADDR_ERR_SYNTAX;
			label = 0;
			continue;
		}
		if (*c->p >= 0x80 && !utf8)
			return ADDR_ERR_8BIT;
		if (*c->p == '-') {
			if (label == 0)
				return ADDR_ERR_SYNTAX;
		} else if (!is_letdig(*c->p, utf8))
			return ADDR_ERR_SYNTAX;
		if (++label > 63)
			return ADDR_ERR_LENGTH;
	}
	len = c->p - start;
	if (len == 0)
		return ADDR_ERR_SYNTAX;
	if (label == 0) {
		/* A trailing dot: "example.net." is "example.net". */
		if (len == 1)
			return ADDR_ERR_SYNTAX;
		len--;
	} else if (c->p[-1] == '-')
		return ADDR_ERR_SYNTAX;
	if (len > ADDR_DOMAIN_MAX)
		return ADDR_ERR_LENGTH;
	memcpy(a->domain, start, len);
	a->domain[len] = '\0';
	return ADDR_OK;
}

/* Well-formed UTF-8 (RFC 3629): no overlong form, surrogate or more. */
static int
utf8_valid(const unsigned char *p, const unsigned char *end)
{
	unsigned int	 c, cp;
	int		 i, n;

	while (p < end) {
		if ((c = *p++) < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return 0;
		if (end - p < n)
			return 0;
		for (i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
	}
	return 1;
}

/*
 * Parse "<mailbox>" or "<>" at the start of s (len bytes).  *consumed
 * says how far the path went, for the ESMTP parameters after it.
 */
enum addr_error
addr_parse_path(const char *s, size_t len, int allow_null, int allow_utf8,
    struct mailaddr *a, size_t *consumed)
{
	struct cursor		 c;
	enum addr_error		 err;
	const unsigned char	*open, *close;
	int			 utf8;

	memset(a, 0, sizeof(*a));
	*consumed = 0;
	c.p = (const unsigned char *)s;
	c.end = c.p + len;
	if (c.p == c.end || *c.p != '<')
		return ADDR_ERR_SYNTAX;
	open = c.p++;
	close = memchr(c.p, '>', c.end - c.p);
	if (close == NULL)
		return ADDR_ERR_SYNTAX;
	if ((size_t)(close - open + 1) > ADDR_PATH_MAX)
		return ADDR_ERR_LENGTH;
	if (c.p == close) {
		if (!allow_null)
			return ADDR_ERR_EMPTY;
		a->null = 1;
		*consumed = 2;
		return ADDR_OK;
	}
	if (*c.p == '@')
		return ADDR_ERR_ROUTE;
	/* A quoted local part may hold '>': find the real end later. */
	c.end = (const unsigned char *)s + len;
	if ((err = parse_local(&c, allow_utf8, a)) != ADDR_OK)
		return err;
	if (c.p == c.end || *c.p != '@')
		return ADDR_ERR_SYNTAX;
	c.p++;
	if ((err = parse_domain(&c, allow_utf8, a)) != ADDR_OK)
		return err;
	if (c.p == c.end || *c.p != '>')
		return ADDR_ERR_SYNTAX;
	c.p++;
	utf8 = 0;
	for (open = (const unsigned char *)s; open < c.p; open++)
		if (*open >= 0x80)
			utf8 = 1;
	if (utf8) {
		if (!utf8_valid((const unsigned char *)s, c.p))
			return ADDR_ERR_SYNTAX;
		a->flags |= ADDR_F_UTF8;
	}
	if ((size_t)(c.p - (const unsigned char *)s) > ADDR_PATH_MAX)
		return ADDR_ERR_LENGTH;
	*consumed = c.p - (const unsigned char *)s;
	return ADDR_OK;
}

/* Write the mailbox as local@domain (empty for <>); -1 if truncated. */
int
addr_format(const struct mailaddr *a, char *buf, size_t size)
{
	int	 n;

	if (a->null)
		n = snprintf(buf, size, "%s", "");
	else
		n = snprintf(buf, size, "%s@%s", a->local, a->domain);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Compare domains case-insensitively, a trailing dot ignored. */
int
addr_domain_eq(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/*
 * 0 if s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) holding no bidirectional
 * formatting control (U+202A-U+202E, U+2066-U+2069), which would make a
 * log line or a header read otherwise than it is; -1 if not.
 */
int
addr_utf8_check(const char *str)
{
	const unsigned char	*p = (const unsigned char *)str;
	uint32_t		 cp, min;
	int			 n, i;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			n = 1;
			cp = *p & 0x1f;
			min = 0x80;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			n = 2;
			cp = *p & 0x0f;
			min = 0x800;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			n = 3;
			cp = *p & 0x07;
			min = 0x10000;
		} else
			return -1;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return -1;
		if ((cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069))
			return -1;
		p += n + 1;
	}
	return 0;
}

/*
 * The reserved postmaster (RFC 5321 4.5.1): the bare "postmaster", or
 * postmaster at the host's own name.  Case-insensitive.
 */
int
addr_is_postmaster(const char *rcpt, const char *hostname)
{
	const char	*at;

	if (strcasecmp(rcpt, "postmaster") == 0)
		return 1;
	if ((at = strchr(rcpt, '@')) == NULL || at - rcpt != 10 ||
	    strncasecmp(rcpt, "postmaster", 10) != 0)
		return 0;
	return addr_domain_eq(at + 1, hostname);
}

const char *
addr_strerror(enum addr_error err)
{
	switch (err) {
	case ADDR_OK:
		return "ok";
	case ADDR_ERR_SYNTAX:
		return "Syntax error in address";
	case ADDR_ERR_ROUTE:
		return "Source routes are not accepted";
	case ADDR_ERR_LENGTH:
		return "Address too long";
	case ADDR_ERR_8BIT:
		return "UTF-8 address needs SMTPUTF8";
	case ADDR_ERR_EMPTY:
		return "Null address not allowed here";
	}
	return "Bad address";
}
