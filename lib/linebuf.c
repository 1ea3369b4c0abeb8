/*
 * Line splitting for SMTP (RFC 5321 2.3.8: lines end with CRLF and
 * nothing else).  A too-long line is reported once, then skipped up to
 * and including its CRLF, so that its tail is never read as a command.
 */
#include <string.h>

#include "linebuf.h"

/* Use buf (size bytes) as the reader's storage. */
void
linebuf_init(struct linebuf *lb, uint8_t *buf, size_t size)
{
	lb->buf = buf;
	lb->size = size;
	lb->len = 0;
	lb->pos = 0;
	lb->discarding = 0;
}

/* Where the next read should go, and how much room is there. */
uint8_t *
linebuf_space(struct linebuf *lb, size_t *avail)
{
	if (lb->pos > 0) {
		memmove(lb->buf, lb->buf + lb->pos, lb->len - lb->pos);
		lb->len -= lb->pos;
		lb->pos = 0;
	}
	*avail = lb->size - lb->len;
	return lb->buf + lb->len;
}

/* Account for n bytes read into the space given by linebuf_space(). */
void
linebuf_fill(struct linebuf *lb, size_t n)
{
	lb->len += n;
}

/* Bytes received and not yet consumed as lines. */
size_t
linebuf_pending(const struct linebuf *lb)
{
	return lb->len - lb->pos;
}

/* Forget everything buffered (after STARTTLS, CVE-2011-0411). */
void
linebuf_discard(struct linebuf *lb)
{
	lb->len = 0;
	lb->pos = 0;
	lb->discarding = 0;
}

/* Skip the tail of an over-long line; 1 once its CRLF was consumed. */
static int
linebuf_skip_long(struct linebuf *lb)
{
	uint8_t	*p, *start = lb->buf + lb->pos;
	size_t	 avail = lb->len - lb->pos;

	while ((p = memchr(start, '\n', avail)) != NULL) {
		avail -= p - start + 1;
		start = p + 1;
		if (p > lb->buf + lb->pos && p[-1] == '\r') {
			lb->pos = start - lb->buf;
			lb->discarding = 0;
			return 1;
		}
	}
	/* Keep a trailing CR: its LF may be in the next read. */
	if (lb->len > lb->pos && lb->buf[lb->len - 1] == '\r')
		lb->pos = lb->len - 1;
	else
		lb->pos = lb->len;
	return 0;
}

/*
 * Return the next line (without its terminator) and how it ended.
 * maxlen counts the octets before the terminator.
 */
enum line_kind
linebuf_next(struct linebuf *lb, size_t maxlen, const uint8_t **line,
    size_t *linelen)
{
	const uint8_t	*start, *p, *end, *cr;
	size_t		 n, scan;

	*line = NULL;
	*linelen = 0;
	if (lb->discarding && !linebuf_skip_long(lb))
		return LINE_NONE;

	start = lb->buf + lb->pos;
	end = lb->buf + lb->len;
	/*
	 * The first CR or LF, no further than one past maxlen: two
	 * memchr()s, the LF looked for before the CR only.
	 */
	scan = (size_t)(end - start) <= maxlen ? (size_t)(end - start) :
	    maxlen + 1;
	cr = memchr(start, '\r', scan);
	p = memchr(start, '\n', cr != NULL ? (size_t)(cr - start) : scan);
	if (p == NULL)
		p = cr;
	if (p != NULL) {
		n = p - start;
		*line = start;
		*linelen = n;
		if (*p == '\n') {
			lb->pos += n + 1;
			return LINE_BARE_LF;
		}
		if (p + 1 == end) {
			/* A CR last: wait for what follows it. */
			*line = NULL;
			*linelen = 0;
			return LINE_NONE;
		}
		if (p[1] == '\n') {
			lb->pos += n + 2;
			return LINE_CRLF;
		}
		lb->pos += n + 1;
		return LINE_BARE_CR;
	}
	if ((size_t)(end - start) <= maxlen) {
		*line = NULL;
		return LINE_NONE;
	}
	*line = start;
	*linelen = maxlen;
	lb->pos += maxlen;
	lb->discarding = 1;
	linebuf_skip_long(lb);
	return LINE_TOO_LONG;
}
