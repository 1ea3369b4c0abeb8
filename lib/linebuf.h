/*
 * A bounded line reader over a caller-owned buffer.  It tells a line
 * ended by CRLF from one ended by a bare LF or a bare CR, and from one
 * longer than allowed: SMTP smuggling lives in the difference.
 */
#ifndef SMTPD_LINEBUF_H
#define SMTPD_LINEBUF_H

#include <stddef.h>
#include <stdint.h>

enum line_kind {
	LINE_NONE,		/* no complete line yet */
	LINE_CRLF,		/* a line ended by CR LF */
	LINE_BARE_LF,		/* a line ended by LF alone */
	LINE_BARE_CR,		/* a line ended by a CR not followed by LF */
	LINE_TOO_LONG,		/* more than maxlen octets before CR LF */
};

struct linebuf {
	uint8_t		*buf;
	size_t		 size;
	size_t		 len;		/* bytes held */
	size_t		 pos;		/* first byte not yet consumed */
	int		 discarding;	/* skipping the rest of a long line */
};

void		linebuf_init(struct linebuf *, uint8_t *, size_t);
uint8_t	       *linebuf_space(struct linebuf *, size_t *);
void		linebuf_fill(struct linebuf *, size_t);
enum line_kind	linebuf_next(struct linebuf *, size_t maxlen,
		    const uint8_t **, size_t *);
size_t		linebuf_pending(const struct linebuf *);
void		linebuf_discard(struct linebuf *);

#endif
