/*
 * libFuzzer harness for the line reader.  The first bytes choose maxlen,
 * the buffer size and how the rest is split into reads; every line that
 * comes out is checked against a reference reader working on the whole
 * stream at once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct ref {
	const uint8_t	*s;
	size_t		 n;
	size_t		 pos;
	size_t		 maxlen;
	int		 discarding;
};

/* The next line of the whole stream; LINE_NONE at its incomplete end. */
static enum line_kind
ref_next(struct ref *r, size_t *off, size_t *len)
{
	size_t	 i;

	for (;;) {
		if (r->discarding) {
			for (i = r->pos; i + 1 < r->n; i++)
				if (r->s[i] == '\r' && r->s[i + 1] == '\n')
					break;
			if (i + 1 >= r->n)
				return LINE_NONE;
			r->pos = i + 2;
			r->discarding = 0;
		}
		for (i = r->pos; i < r->n && r->s[i] != '\r' &&
		    r->s[i] != '\n'; i++)
			;
		*off = r->pos;
		if (i - r->pos > r->maxlen) {
			*len = r->maxlen;
			r->pos += r->maxlen;
			r->discarding = 1;
			return LINE_TOO_LONG;
		}
		*len = i - r->pos;
		if (i == r->n)
			return LINE_NONE;
		if (r->s[i] == '\n') {
			r->pos = i + 1;
			return LINE_BARE_LF;
		}
		if (i + 1 == r->n)
			return LINE_NONE;
		if (r->s[i + 1] == '\n') {
			r->pos = i + 2;
			return LINE_CRLF;
		}
		r->pos = i + 1;
		return LINE_BARE_CR;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf	 lb;
	struct ref	 ref;
	const uint8_t	*line;
	uint8_t		*buf, *p;
	size_t		 maxlen, bufsize, off, chunk, avail, len, roff, rlen;
	uint32_t	 seed;
	enum line_kind	 k, rk;

	if (size < 4)
		return 0;
	maxlen = data[0] % 80;
	bufsize = maxlen + 2 + data[1] % 64;
	seed = data[2] | (uint32_t)data[3] << 8;
	data += 4;
	size -= 4;

	if ((buf = malloc(bufsize)) == NULL)
		return 0;
	linebuf_init(&lb, buf, bufsize);
	memset(&ref, 0, sizeof(ref));
	ref.s = data;
	ref.n = size;
	ref.maxlen = maxlen;

	for (off = 0; off < size; ) {
		p = linebuf_space(&lb, &avail);
		/* With room for maxlen and a CRLF it never stalls. */
		if (avail == 0 || avail > bufsize || p < buf ||
		    p + avail != buf + bufsize)
			abort();
		seed = seed * 1103515245 + 12345;
		chunk = 1 + (seed >> 8) % avail;
		if (chunk > size - off)
			chunk = size - off;
		memcpy(p, data + off, chunk);
		linebuf_fill(&lb, chunk);
		off += chunk;
		if (linebuf_pending(&lb) > bufsize)
			abort();
		while ((k = linebuf_next(&lb, maxlen, &line, &len)) !=
		    LINE_NONE) {
			rk = ref_next(&ref, &roff, &rlen);
			if (k != rk || len != rlen ||
			    memcmp(line, data + roff, len) != 0)
				abort();
			if (len > maxlen || line < buf || line + len >
			    buf + bufsize)
				abort();
			if (k != LINE_TOO_LONG &&
			    (memchr(line, '\r', len) != NULL ||
			    memchr(line, '\n', len) != NULL))
				abort();
		}
		if (line != NULL || len != 0)
			abort();
	}
	/* The reference has nothing more either. */
	if (ref_next(&ref, &roff, &rlen) != LINE_NONE)
		abort();
	linebuf_discard(&lb);
	if (linebuf_pending(&lb) != 0)
		abort();
	free(buf);
	return 0;
}
