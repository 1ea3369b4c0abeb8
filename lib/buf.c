/*
 * Growable buffer with a ceiling; adding past the ceiling fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

/* Append len bytes; -1 when that would pass the ceiling. */
int
buf_add(struct buf *b, const void *data, size_t len)
{
	size_t	 need, size;
	char	*p;

	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	need = b->len + len;
	if (need < b->len || need - b->off > b->max)
		return -1;
	if (need > b->size) {
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
			need = b->len + len;
		}
		for (size = b->size ? b->size : 512; size < need; size *= 2)
			;
		if (size > need && need <= b->size)
			size = b->size;
		if (size > b->size) {
			if ((p = realloc(b->data, size)) == NULL)
				return -1;
			b->data = p;
			b->size = size;
		}
	}
	/* Nothing to add to an empty buffer: b->data may be NULL. */
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* Append formatted text (a line of at most 1024 octets); -1 if too long. */
int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	char	 line[1024];
	int	 n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	return buf_add(b, line, n);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

/* Bytes waiting. */
size_t
buf_left(const struct buf *b)
{
	return b->len - b->off;
}

/* Mark n bytes as written; the memory goes when nothing is left. */
void
buf_drain(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len) {
		free(b->data);
		b->data = NULL;
		b->len = b->off = b->size = 0;
	}
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->off = b->size = 0;
}
