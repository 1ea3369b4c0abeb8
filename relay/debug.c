/*
 * Print a spooled message as Python 3.11's smtpd.DebuggingServer did
 * (SPEC section 5).  SMTPChannel.found_terminator took the data before
 * the final CRLF, split it at CRLF, removed one leading dot of each piece
 * (the worker has done that) and joined the pieces with "\n";
 * DebuggingServer._print_message_content cut that with splitlines() and
 * printed each line, "X-Peer: <ip>" before the first empty one.  Text
 * mode (decode_data=True) cut a str and printed it; bytes mode
 * (decode_data=False) cut a bytes object and printed repr()s, after the
 * MAIL and RCPT options.
 *
 * Data that is not UTF-8, on which text mode failed, is cut as if decoded
 * with surrogateescape: the multi-byte line breaks (U+0085, U+2028,
 * U+2029) start with a lead byte, which no decoder takes for the
 * continuation of an earlier character, so their byte sequences are
 * breaks wherever they stand.  The printer streams: only a bytes-mode
 * line is held, for the quote its repr() chooses.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"
#include "proto.h"

#define DEBUG_CHUNK	65536

struct printer {
	FILE		*out;
	const char	*peer_ip;
	int		 bytes;		/* the bytes flavour */
	int		 in_headers;	/* no empty line yet */
	int		 pending_cr;	/* a spool CR: of a CRLF or bare? */
	int		 skip_lf;	/* after "\r", "\n" ends no new line */
	unsigned char	 hold[2];	/* text: maybe a multi-byte break */
	size_t		 nhold;
	size_t		 linelen;	/* text: bytes printed of this line */
	unsigned char	*line;		/* bytes: this line, for repr() */
	size_t		 len;
	size_t		 cap;
	int		 nomem;
};

/* The quote repr() takes: " if the text has ' and no ", else '. */
static int
repr_quote(const unsigned char *s, size_t len)
{
	/* An empty line has no buffer yet: no memchr() on NULL. */
	if (len > 0 && memchr(s, '\'', len) != NULL &&
	    memchr(s, '"', len) == NULL)
		return '"';
	return '\'';
}

/*
 * One ASCII character as repr() writes it, of a bytes object or of a
 * str (Objects/bytesobject.c, Objects/unicodeobject.c): the two agree
 * below 0x80.
 */
static void
repr_ascii(FILE *out, unsigned char c, int quote)
{
	if (c == quote || c == '\\') {
		putc_unlocked('\\', out);
		putc_unlocked(c, out);
	} else if (c == '\t')
		fputs_unlocked("\\t", out);
	else if (c == '\n')
		fputs_unlocked("\\n", out);
	else if (c == '\r')
		fputs_unlocked("\\r", out);
	else if (c < ' ' || c == 0x7f)
		fprintf(out, "\\x%02x", c);
	else
		putc_unlocked(c, out);
}

/* Python's repr() of a bytes object: every byte from 0x80 is escaped. */
static void
repr_bytes(FILE *out, const unsigned char *s, size_t len)
{
	int	 quote = repr_quote(s, len);
	size_t	 i, run;

	putc_unlocked('b', out);
	putc_unlocked(quote, out);
	for (i = 0; i < len; i += run) {
		/* Printable ASCII stands as itself: a run at once. */
		for (run = 0; i + run < len && s[i + run] >= ' ' &&
		    s[i + run] < 0x7f && s[i + run] != quote &&
		    s[i + run] != '\\'; run++)
			;
		if (run > 0)
			fwrite_unlocked(s + i, 1, run, out);
		else if (s[i] >= 0x80) {
			fprintf(out, "\\x%02x", s[i]);
			run = 1;
		} else {
			repr_ascii(out, s[i], quote);
			run = 1;
		}
	}
	putc_unlocked(quote, out);
}

/* Length of the UTF-8 character at s, 0 if it is not one. */
static size_t
utf8_char(const unsigned char *s, size_t len, unsigned int *cp)
{
	size_t	 n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (len < n)
		return 0;
	*cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && *cp < 0x800) || (n == 4 && *cp < 0x10000) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff) || *cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * Python's repr() of a str: as a bytes repr without the b, but a
 * printable non-ASCII character stands as itself.  The Latin-1 ones
 * that are not printable are escaped; further ones are taken as
 * printable (options are ASCII in all but odd cases).
 */
static void
repr_str(FILE *out, const unsigned char *s, size_t len)
{
	int		 quote = repr_quote(s, len);
	unsigned int	 cp;
	size_t		 i, n;

	putc_unlocked(quote, out);
	for (i = 0; i < len; i += n) {
		n = 1;
		if (s[i] < 0x80)
			repr_ascii(out, s[i], quote);
		else if ((n = utf8_char(s + i, len - i, &cp)) == 0) {
			n = 1;
			fprintf(out, "\\x%02x", s[i]);
		} else if (cp <= 0xa0 || cp == 0xad)
			fprintf(out, "\\x%02x", cp);
		else
			fwrite_unlocked(s + i, 1, n, out);
	}
	putc_unlocked(quote, out);
}

/* "mail options: ['SIZE=100', 'BODY=8BITMIME']": a list of str. */
static void
print_options(FILE *out, const char *what, const char *opts)
{
	const char	*p = opts, *sp;
	size_t		 n;

	fprintf(out, "%s options: [", what);
	for (;;) {
		sp = strchr(p, ' ');
		n = sp == NULL ? strlen(p) : (size_t)(sp - p);
		repr_str(out, (const unsigned char *)p, n);
		if (sp == NULL)
			break;
		fputs_unlocked(", ", out);
		p = sp + 1;
	}
	fputs_unlocked("]\n", out);
}

/* The end of a line; before the first empty one comes X-Peer. */
static void
line_end(struct printer *p)
{
	char	 peer[64];
	int	 n;

	if (p->in_headers && (p->bytes ? p->len : p->linelen) == 0) {
		n = snprintf(peer, sizeof(peer), "X-Peer: %s", p->peer_ip);
		if (n < 0 || (size_t)n >= sizeof(peer))
			n = 0;
		if (p->bytes)
			repr_bytes(p->out, (unsigned char *)peer, n);
		else
			fwrite_unlocked(peer, 1, n, p->out);
		putc_unlocked('\n', p->out);
		p->in_headers = 0;
	}
	if (p->bytes)
		repr_bytes(p->out, p->line, p->len);
	putc_unlocked('\n', p->out);
	p->len = 0;
	p->linelen = 0;
}

/* n characters of the current line: printed (text) or held (bytes). */
static void
line_addn(struct printer *p, const unsigned char *s, size_t n)
{
	unsigned char	*nl;
	size_t		 cap;

	if (!p->bytes) {
		fwrite_unlocked(s, 1, n, p->out);
		p->linelen += n;
		return;
	}
	if (p->len + n > p->cap) {
		for (cap = p->cap ? p->cap : 1024; cap < p->len + n; cap *= 2)
			;
		if ((nl = realloc(p->line, cap)) == NULL) {
			p->nomem = 1;
			return;
		}
		p->line = nl;
		p->cap = cap;
	}
	memcpy(p->line + p->len, s, n);
	p->len += n;
}

static void
line_add(struct printer *p, unsigned char c)
{
	if (!p->bytes) {
		putc_unlocked(c, p->out);
		p->linelen++;
		return;
	}
	line_addn(p, &c, 1);
}

static void
hold_flush(struct printer *p)
{
	size_t	 i;

	for (i = 0; i < p->nhold; i++)
		line_add(p, p->hold[i]);
	p->nhold = 0;
}

/*
 * Text mode: C2 85, E2 80 A8 and E2 80 A9 end a line too.  1 if c was
 * taken (as a break, or held as a possible start of one).
 */
static int
text_multibyte(struct printer *p, unsigned char c)
{
	if (p->nhold == 1 && p->hold[0] == 0xc2 && c == 0x85) {
		p->nhold = 0;
		line_end(p);
		return 1;
	}
	if (p->nhold == 1 && p->hold[0] == 0xe2 && c == 0x80) {
		p->hold[p->nhold++] = c;
		return 1;
	}
	if (p->nhold == 2 && (c == 0xa8 || c == 0xa9)) {
		p->nhold = 0;
		line_end(p);
		return 1;
	}
	hold_flush(p);
	if (c == 0xc2 || c == 0xe2) {
		p->hold[p->nhold++] = c;
		return 1;
	}
	return 0;
}

/* One character of the joined text: str or bytes splitlines(). */
static void
split_char(struct printer *p, unsigned char c)
{
	if (p->skip_lf) {
		p->skip_lf = 0;
		if (c == '\n')
			return;
	}
	if (!p->bytes && text_multibyte(p, c))
		return;
	switch (c) {
	case '\r':
		p->skip_lf = 1;
		/* FALLTHROUGH */
	case '\n':
		line_end(p);
		return;
	case '\v':
	case '\f':
	case 0x1c:
	case 0x1d:
	case 0x1e:
		if (!p->bytes) {
			line_end(p);
			return;
		}
		break;
	}
	line_add(p, c);
}

/* One spool byte: each CRLF becomes "\n", as found_terminator joined. */
static void
spool_char(struct printer *p, unsigned char c)
{
	if (p->pending_cr) {
		p->pending_cr = 0;
		if (c == '\n') {
			split_char(p, '\n');
			return;
		}
		split_char(p, '\r');
	}
	if (c == '\r')
		p->pending_cr = 1;
	else
		split_char(p, c);
}

/*
 * The bytes that may start or end a line, or be part of a break, in
 * each flavour (1 text, 2 bytes): the others, most of any message, go
 * through in runs.
 */
static const unsigned char special[256] = {
	['\r'] = 3, ['\n'] = 3,
	['\v'] = 1, ['\f'] = 1, [0x1c] = 1, [0x1d] = 1, [0x1e] = 1,
	[0xc2] = 1, [0xe2] = 1,
};

/* Feed n bytes of the spool: runs of ordinary ones at once. */
static void
printer_feed(struct printer *p, const unsigned char *s, size_t n)
{
	unsigned char	 mask = p->bytes ? 2 : 1;
	size_t		 i = 0, run;

	while (i < n) {
		/* Nothing half-seen (a CR, a CR's LF, a lead byte): a run. */
		if (!p->pending_cr && !p->skip_lf && p->nhold == 0) {
			for (run = 0; i + run < n &&
			    !(special[s[i + run]] & mask); run++)
				;
			if (run > 0) {
				line_addn(p, s + i, run);
				i += run;
				continue;
			}
		}
		spool_char(p, s[i++]);
	}
}

/*
 * The chunk the spool is read through.  debug_spool_check() leaves a
 * small message in it whole, for the print that follows: one pread() a
 * message, which also measured it.
 */
static unsigned char	 chunk[DEBUG_CHUNK];

/*
 * Feed the size bytes of the spool but a final CRLF, which is not data;
 * -1 on a read error.  No further than the size committed: the file is
 * not ours.  The first ds->have bytes are in chunk already.
 */
static int
printer_read(struct printer *p, const struct debug_spool *ds)
{
	unsigned char		 end[2];
	uint64_t		 off = 0, body, size = ds->size;
	size_t			 want, feed, i;
	ssize_t			 n = (ssize_t)ds->have;

	/* The last two bytes wait: they are fed unless they are CRLF. */
	body = size < 2 ? size : size - 2;
	while (off < size) {
		want = size - off < DEBUG_CHUNK ? (size_t)(size - off) :
		    DEBUG_CHUNK;
		if (n == 0)
			n = pread(ds->fd, chunk, want, (off_t)(ds->base + off));
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			return -1;
		feed = off >= body ? 0 : body - off < (uint64_t)n ?
		    (size_t)(body - off) : (size_t)n;
		printer_feed(p, chunk, feed);
		for (i = feed; i < (size_t)n; i++)
			end[off + i - body] = chunk[i];
		off += (uint64_t)n;
		n = 0;
	}
	if (size >= 2 && (end[0] != '\r' || end[1] != '\n'))
		printer_feed(p, end, 2);
	return 0;
}

/*
 * Whether spoolfd holds exactly size bytes from base on, as the kernel
 * has them (a worker lies), into ds for debug_print_spool(); -1 if not.
 * A message smaller than a chunk is read whole here, asking one byte
 * more: the read comes short at the end of the file, which measures
 * it, and the print reads nothing again.  A larger one is measured with
 * fstat().
 */
int
debug_spool_check(int spoolfd, uint64_t base, uint64_t size,
    struct debug_spool *ds)
{
	struct stat	 st;
	ssize_t		 n;

	ds->fd = spoolfd;
	ds->base = base;
	ds->size = size;
	ds->have = 0;
	if (size >= DEBUG_CHUNK) {
		if (fstat(spoolfd, &st) == -1 ||
		    (uint64_t)st.st_size - base != size)
			return -1;
		return 0;
	}
	while ((n = pread(spoolfd, chunk, (size_t)size + 1, (off_t)base)) ==
	    -1 && errno == EINTR)
		;
	if (n == -1 || (uint64_t)n != size)
		return -1;
	ds->have = (size_t)n;
	return 0;
}

/*
 * Print the spool ds describes into out, without flushing it: the
 * caller flushes before it answers.  -1 on a read error, out of memory,
 * or an error of out.
 */
int
debug_print_spool(const struct debug_spool *ds, const struct debug_msg *m,
    FILE *out)
{
	struct printer	 p;
	int		 rv;

	memset(&p, 0, sizeof(p));
	p.out = out;
	p.peer_ip = m->peer_ip;
	p.bytes = m->format == DEBUG_FORMAT_BYTES;
	p.in_headers = 1;
	fputs_unlocked("---------- MESSAGE FOLLOWS ----------\n", out);
	if (p.bytes && m->mail_opts != NULL && *m->mail_opts != '\0')
		print_options(out, "mail", m->mail_opts);
	if (p.bytes && m->rcpt_opts != NULL && *m->rcpt_opts != '\0') {
		print_options(out, "rcpt", m->rcpt_opts);
		putc_unlocked('\n', out);
	}
	rv = printer_read(&p, ds);
	if (p.pending_cr)
		split_char(&p, '\r');
	hold_flush(&p);
	/* A line break at the very end yields no further line. */
	if ((p.bytes ? p.len : p.linelen) > 0)
		line_end(&p);
	free(p.line);
	fputs_unlocked("------------ END MESSAGE ------------\n", out);
	if (ferror(out) || p.nomem)
		return -1;
	return rv;
}

/* Print the size bytes of spoolfd and flush; -1 on a read or write error. */
int
debug_print(int spoolfd, uint64_t size, const struct debug_msg *m,
    FILE *out)
{
	struct debug_spool	 ds = { spoolfd, 0, size, 0 };
	int			 rv;

	rv = debug_print_spool(&ds, m, out);
	if (fflush(out) == EOF || ferror(out))
		return -1;
	return rv;
}

/*
 * Ready a printed spool file for the session's next message (MSG_KEPT),
 * in place of a new memfd, its descriptor passed, and both ends closing
 * theirs: *base is where that message will start.  The worker's
 * descriptor shares this one's open file, opened for appending
 * (relay_open()): its next write() goes to the end of the file, after
 * this message, or at 0 once the file holds DEBUG_SPOOL_KEEP bytes and
 * is emptied here.  -1 if it cannot be.
 */
int
debug_spool_next(const struct debug_spool *ds, uint64_t *base)
{
	if (ds->base + ds->size < DEBUG_SPOOL_KEEP) {
		*base = ds->base + ds->size;
		return 0;
	}
	if (ftruncate(ds->fd, 0) == -1)
		return -1;
	*base = 0;
	return 0;
}
