/*
 * libFuzzer harness for sendmail -t's reading of a header block
 * (ctl/sendmail_hdr.c).  The input is the message as sendmail read it.
 *
 * What must hold: the body (from the empty line on) comes out as it
 * went in; the header block comes out as it went in less exactly its
 * Bcc: fields (split here at line ends not followed by a space or a
 * tab, our own way); and every recipient is a non-empty string with no
 * line break, at most SM_RCPT_MAX of them.
 *
 * FUZZ_SRCS: ctl/sendmail_hdr.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/smtpctl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The offset of the end of the header block: after the line that an
 * empty line follows. */
static size_t
header_end(const char *m, size_t len)
{
	size_t	 i;

	for (i = 0; i + 1 < len; i++)
		if (m[i] == '\n' && (m[i + 1] == '\n' || (m[i + 1] == '\r' &&
		    i + 2 < len && m[i + 2] == '\n')))
			return i + 1;
	return len;
}

/* The fields of in[0..hend) but the Bcc: ones, into out; its length. */
static size_t
without_bcc(const char *in, size_t hend, char *out)
{
	size_t	 off = 0, end, o = 0;

	while (off < hend) {
		for (end = off; end < hend; end++)
			if (in[end] == '\n' && (end + 1 >= hend ||
			    (in[end + 1] != ' ' && in[end + 1] != '\t')))
				break;
		if (end < hend)
			end++;
		if (!(end - off >= 4 && strncasecmp(in + off, "bcc:", 4) == 0)) {
			memcpy(out + o, in + off, end - off);
			o += end - off;
		}
		off = end;
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*msg, *want, *rcpts[SM_RCPT_MAX];
	size_t	 hend, wlen, len, n = 0, i;

	if ((msg = malloc(size + 1)) == NULL ||
	    (want = malloc(size + 1)) == NULL)
		abort();
	memcpy(msg, data, size);
	msg[size] = '\0';
	hend = header_end(msg, size);
	wlen = without_bcc(msg, hend, want);
	memcpy(want + wlen, msg + hend, size - hend);
	wlen += size - hend;

	len = sm_extract(msg, size, rcpts, &n);
	if (len != wlen || memcmp(msg, want, len) != 0)
		abort();
	if (n > SM_RCPT_MAX)
		abort();
	for (i = 0; i < n; i++) {
		if (rcpts[i] == NULL || rcpts[i][0] == '\0' ||
		    strpbrk(rcpts[i], "\r\n") != NULL)
			abort();
		free(rcpts[i]);
	}
	free(want);
	free(msg);
	return 0;
}
