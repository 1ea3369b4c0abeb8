/*
 * libFuzzer harness for the upstream reply parser: the input is split
 * into lines at LF (a CR before it dropped, as the line reader would),
 * each fed to reply_parse_line().  It must never crash, and what it
 * returns must hold what client.h promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/client.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Abort on a reply that breaks the parser's promises. */
static void
fuzz_check(const struct smtp_reply *r)
{
	size_t	 i, len;

	if (r->code < 200 || r->code > 559 || r->code % 100 > 59)
		abort();
	if (r->nlines < 1 || r->nlines > CLIENT_REPLY_LINES_MAX)
		abort();
	len = strnlen(r->text, sizeof(r->text));
	if (len >= sizeof(r->text))
		abort();
	for (i = 0; i < len; i++)
		if (r->text[i] < 0x20 || r->text[i] > 0x7e)
			abort();
	if (r->capa & ~(CAPA_PIPELINING | CAPA_SIZE | CAPA_8BITMIME |
	    CAPA_SMTPUTF8 | CAPA_STARTTLS))
		abort();
	if (r->size_limit != 0 && !(r->capa & CAPA_SIZE))
		abort();
}

/* One input: its lines in order, through one parser. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reply_parser	 p;
	struct smtp_reply	 r;
	const uint8_t		*line, *nl;
	char			*copy;
	size_t			 len;

	reply_parser_init(&p);
	while (size > 0) {
		line = data;
		if ((nl = memchr(data, '\n', size)) != NULL) {
			len = (size_t)(nl - data);
			data = nl + 1;
			size -= len + 1;
		} else {
			len = size;
			data += size;
			size = 0;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		/* An exact-size copy, so ASan sees any read past the end. */
		if ((copy = malloc(len ? len : 1)) == NULL)
			return 0;
		memcpy(copy, line, len);
		if (reply_parse_line(&p, copy, len, &r) == REPLY_DONE)
			fuzz_check(&r);
		free(copy);
	}
	return 0;
}
