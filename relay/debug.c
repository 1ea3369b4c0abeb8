/*
 * Print a spooled message as smtpd.DebuggingServer (text mode) did:
 * the message's lines with CRLF turned into LF, "X-Peer: <ip>" before the
 * first empty line (or after the last line when there is none), between
 * the two marker lines.  Python split the data on LF after dropping the
 * final CRLF, so an empty message printed as one empty line: so does
 * this.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"

#define DEBUG_CHUNK	65536

struct printer {
	FILE		*out;
	const char	*peer_ip;
	int		 in_headers;
	int		 at_line_start;
	int		 pending_cr;
};

static void
printer_peer(struct printer *p)
{
	fprintf(p->out, "X-Peer: %s\n", p->peer_ip);
	p->in_headers = 0;
}

/* One chunk of spool bytes; a CR is held until its LF is seen. */
static void
printer_feed(struct printer *p, const char *data, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		char c = data[i];

		if (p->pending_cr) {
			p->pending_cr = 0;
			if (c == '\n') {
				if (p->in_headers && p->at_line_start)
					printer_peer(p);
				putc_unlocked('\n', p->out);
				p->at_line_start = 1;
				continue;
			}
			putc_unlocked('\r', p->out);
			p->at_line_start = 0;
		}
		if (c == '\r') {
			p->pending_cr = 1;
			continue;
		}
		putc_unlocked(c, p->out);
		p->at_line_start = 0;
	}
}

/* Print the size bytes of spoolfd; -1 on a read or write error. */
int
debug_print(int spoolfd, uint64_t size, const char *peer_ip, FILE *out)
{
	struct printer	 p;
	char		*chunk;
	off_t		 off = 0;
	ssize_t		 n;
	int		 empty = 1;

	if ((chunk = malloc(DEBUG_CHUNK)) == NULL)
		return -1;
	memset(&p, 0, sizeof(p));
	p.out = out;
	p.peer_ip = peer_ip;
	p.in_headers = 1;
	p.at_line_start = 1;
	fputs("---------- MESSAGE FOLLOWS ----------\n", out);
	/* No further than the size committed: the file is not ours. */
	while ((uint64_t)off < size) {
		n = pread(spoolfd, chunk, size - (uint64_t)off < DEBUG_CHUNK ?
		    (size_t)(size - (uint64_t)off) : DEBUG_CHUNK, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(chunk);
			return -1;
		}
		if (n == 0)
			break;
		empty = 0;
		printer_feed(&p, chunk, n);
		off += n;
	}
	free(chunk);
	if (p.pending_cr)
		putc_unlocked('\r', out);
	if (empty) {
		printer_peer(&p);
		putc_unlocked('\n', out);
	} else if (p.in_headers) {
		if (!p.at_line_start)
			putc_unlocked('\n', out);
		printer_peer(&p);
	}
	fputs("------------ END MESSAGE ------------\n", out);
	return fflush(out) == EOF ? -1 : 0;
}
