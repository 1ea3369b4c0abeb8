/*
 * libFuzzer harness for the metrics listener's request parser
 * (lib/httpreq.c).  The input is what a client sends; it is given to
 * the parser as the relay does, a longer prefix at each read (the
 * first byte chooses the read size), up to the first answer.  Checked:
 * only the known statuses come out; a full buffer is always answered
 * (no client can make the relay wait for more than HTTP_REQUEST_MAX
 * bytes); 200 only for a GET of /metrics; and the parser reads no byte
 * past what it is given (ASan, on a copy of exactly that size).
 *
 * FUZZ_SRCS: lib/httpreq.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpreq.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
parse_copy(const uint8_t *data, size_t len)
{
	char	*copy;
	int	 status;

	if ((copy = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(copy, data, len);
	status = http_request(copy, len);
	free(copy);
	return status;
}

static void
check(const uint8_t *data, size_t len, int status)
{
	switch (status) {
	case HTTP_MORE:
		if (len >= HTTP_REQUEST_MAX)
			abort();	/* a full buffer, and still waiting */
		break;
	case HTTP_OK:
		if (len < 13 || memcmp(data, "GET /metrics", 12) != 0 ||
		    (data[12] != ' ' && data[12] != '?'))
			abort();
		break;
	case HTTP_BAD_REQUEST:
	case HTTP_NOT_FOUND:
	case HTTP_BAD_METHOD:
	case HTTP_TOO_LARGE:
	case HTTP_BAD_VERSION:
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	 step, len;
	int	 status = HTTP_MORE;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	/* The relay's reads: never more than the buffer holds. */
	if (size > HTTP_REQUEST_MAX)
		size = HTTP_REQUEST_MAX;
	for (len = 0; len < size && status == HTTP_MORE; ) {
		len = len + step > size ? size : len + step;
		status = parse_copy(data, len);
		check(data, len, status);
		if (status != parse_copy(data, len))
			abort();	/* the same bytes, another answer */
	}
	return 0;
}
