/*
 * The request parser of the metrics listener.  It accepts only what a
 * scraper sends: a request line "GET /metrics HTTP/1.x" (a query is
 * allowed), header fields that are "name: value" lines, and the empty
 * line.  Nothing of a header field is used, so nothing in one is
 * interpreted; a body is never read, the connection ends after the
 * answer.  What arrives is bounded (HTTP_REQUEST_MAX): the whole of it
 * is looked at again at each read, which keeps this without state.
 */
#include <string.h>

#include "httpreq.h"

/* RFC 9110 5.6.2: the characters of a method (a token). */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The length of the line at p (without its LF or CRLF), or -1. */
static long
line_len(const char *p, const char *end, const char **next)
{
	const char	*lf;

	if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return -1;
	*next = lf + 1;
	if (lf > p && lf[-1] == '\r')
		lf--;
	return lf - p;
}

/* A header field line: a name of tchars, ':', a value of no controls. */
static int
field_ok(const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && tchar((unsigned char)p[i]); i++)
		;
	if (i == 0 || i == len || p[i] != ':')
		return 0;
	for (i++; i < len; i++)
		if (((unsigned char)p[i] < ' ' && p[i] != '\t') ||
		    p[i] == 127)
			return 0;
	return 1;
}

/* "GET SP /metrics[?query] SP HTTP/1.x": the status of the answer. */
static int
request_line(const char *p, size_t len)
{
	const char	*sp1, *sp2, *end = p + len, *v;
	size_t		 mlen, tlen;
	size_t		 i;

	if ((sp1 = memchr(p, ' ', len)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) == NULL ||
	    memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)) != NULL)
		return HTTP_BAD_REQUEST;
	mlen = (size_t)(sp1 - p);
	tlen = (size_t)(sp2 - sp1 - 1);
	if (mlen == 0 || tlen == 0)
		return HTTP_BAD_REQUEST;
	for (i = 0; i < mlen; i++)
		if (!tchar((unsigned char)p[i]))
			return HTTP_BAD_REQUEST;
	for (i = 0; i < tlen; i++)
		if ((unsigned char)sp1[1 + i] <= ' ' ||
		    (unsigned char)sp1[1 + i] >= 127)
			return HTTP_BAD_REQUEST;
	v = sp2 + 1;
	if ((size_t)(end - v) != 8 || memcmp(v, "HTTP/", 5) != 0 ||
	    v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' ||
	    v[7] > '9')
		return HTTP_BAD_REQUEST;
	if (v[5] != '1')
		return HTTP_BAD_VERSION;
	if (mlen != 3 || memcmp(p, "GET", 3) != 0)
		return HTTP_BAD_METHOD;
	if ((tlen == 8 || (tlen > 8 && sp1[9] == '?')) &&
	    memcmp(sp1 + 1, "/metrics", 8) == 0)
		return HTTP_OK;
	return HTTP_NOT_FOUND;
}

/*
 * What buf (len bytes, as the client sent them) asks for: HTTP_MORE
 * until its empty line has come, then the status of the answer.  A bad
 * request line is answered as soon as it is complete.
 */
int
http_request(const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len, *next;
	long		 n;
	int		 status;

	if (len > HTTP_REQUEST_MAX)
		return HTTP_TOO_LARGE;
	if (memchr(buf, '\0', len) != NULL)
		return HTTP_BAD_REQUEST;
	if ((n = line_len(p, end, &next)) == -1)
		return len == HTTP_REQUEST_MAX ? HTTP_TOO_LARGE : HTTP_MORE;
	if ((status = request_line(p, (size_t)n)) == HTTP_BAD_REQUEST ||
	    status == HTTP_BAD_VERSION)
		return status;
	for (p = next; (n = line_len(p, end, &next)) != -1; p = next) {
		if (n == 0)
			return status;
		if (!field_ok(p, (size_t)n))
			return HTTP_BAD_REQUEST;
	}
	return len == HTTP_REQUEST_MAX ? HTTP_TOO_LARGE : HTTP_MORE;
}
