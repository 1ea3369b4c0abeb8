/*
 * libFuzzer harness for strict base64.  The first byte picks the
 * output size given to the decoder; the rest is the encoded text.  The
 * decoder must never write past that size (the output buffer is exactly
 * that large, on the heap, for ASan), and what it accepts must be the
 * one encoding of what it decoded.  The input is also encoded and
 * decoded back as binary.
 *
 * FUZZ_SRCS: lib/base64.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "base64.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*in;
	unsigned char	*out, *bin;
	char		*enc;
	size_t		 len, outsize, enclen, i;
	ssize_t		 n, m;

	if (size < 1)
		return 0;
	len = size - 1;
	/* 0: as large as the input can need; else a tight bound. */
	outsize = data[0] == 0 ? len / 4 * 3 : (size_t)(data[0] - 1) % 64;
	in = (const char *)data + 1;

	/* A copy exactly len long so a read past it is caught. */
	if ((enc = malloc(len + 1)) == NULL)
		return 0;
	memcpy(enc, in, len);
	out = malloc(outsize > 0 ? outsize : 1);
	if (out == NULL) {
		free(enc);
		return 0;
	}
	n = b64_decode(enc, len, out, outsize);
	if (n != -1) {
		char	*re;

		if (n < 0 || (size_t)n > outsize || len % 4 != 0 ||
		    (size_t)n > len / 4 * 3 || (size_t)n + 2 < len / 4 * 3)
			abort();
		for (i = 0; i < len; i++)
			if (!b64_char((unsigned char)enc[i]) &&
			    !(enc[i] == '=' && i + 2 >= len))
				abort();
		/* The only encoding of out: encoding it gives the input. */
		if ((re = malloc(len + 1)) == NULL)
			abort();
		m = b64_encode(out, (size_t)n, re, len + 1);
		if (m != (ssize_t)len || memcmp(re, enc, len) != 0 ||
		    re[len] != '\0')
			abort();
		/* One byte short of room is refused. */
		if (n > 0 && b64_encode(out, (size_t)n, re, len) != -1)
			abort();
		free(re);
	}
	free(out);
	free(enc);

	/* Any bytes encode, and decode back to themselves. */
	enclen = (len + 2) / 3 * 4;
	if ((enc = malloc(enclen + 1)) == NULL)
		return 0;
	if (b64_encode(data + 1, len, enc, enclen + 1) != (ssize_t)enclen ||
	    strlen(enc) != enclen)
		abort();
	for (i = 0; i < enclen; i++)
		if (!b64_char((unsigned char)enc[i]) &&
		    !(enc[i] == '=' && i + 2 >= enclen))
			abort();
	bin = malloc(len > 0 ? len : 1);
	if (bin == NULL)
		abort();
	if (b64_decode(enc, enclen, bin, len) != (ssize_t)len ||
	    (len > 0 && memcmp(bin, data + 1, len) != 0))
		abort();
	if (len > 0 && b64_decode(enc, enclen, bin, len - 1) != -1)
		abort();
	free(bin);
	free(enc);
	return 0;
}
