/*
 * Base64 without whitespace, with exact padding: anything else is an
 * error, so a SASL response has one meaning only.
 */
#include <string.h>

#include "base64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(unsigned char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(b64_alphabet, c)) == NULL)
		return -1;
	return (int)(p - b64_alphabet);
}

/* Decode in (len bytes) into out; the decoded length, or -1. */
ssize_t
b64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
	size_t		 i, o = 0, pad = 0;
	unsigned int	 acc;
	int		 v, j;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		acc = 0;
		for (j = 0; j < 4; j++) {
			unsigned char c = in[i + j];

			if (c == '=' && i + 4 == len && j >= 2) {
				/* Only "x=" or "==" at the very end. */
				if (j == 2 && in[i + 3] != '=')
					return -1;
				pad++;
				acc <<= 6;
				continue;
			}
			if (pad > 0 || (v = b64_value(c)) == -1)
				return -1;
			acc = (acc << 6) | (unsigned int)v;
		}
		/* The bits under the padding are zero: one encoding only. */
		if ((pad == 1 && (acc & 0xff) != 0) ||
		    (pad == 2 && (acc & 0xffff) != 0))
			return -1;
		if (o + 3 - pad > outsize)
			return -1;
		out[o++] = (acc >> 16) & 0xff;
		if (pad < 2)
			out[o++] = (acc >> 8) & 0xff;
		if (pad < 1)
			out[o++] = acc & 0xff;
	}
	return (ssize_t)o;
}

/* Encode in into out, NUL-terminated; the encoded length, or -1. */
ssize_t
b64_encode(const unsigned char *in, size_t len, char *out, size_t outsize)
{
	size_t		 i, o = 0;
	unsigned int	 acc;

	if ((len + 2) / 3 * 4 + 1 > outsize)
		return -1;
	for (i = 0; i < len; i += 3) {
		acc = (unsigned int)in[i] << 16;
		if (i + 1 < len)
			acc |= (unsigned int)in[i + 1] << 8;
		if (i + 2 < len)
			acc |= in[i + 2];
		out[o++] = b64_alphabet[(acc >> 18) & 0x3f];
		out[o++] = b64_alphabet[(acc >> 12) & 0x3f];
		out[o++] = i + 1 < len ? b64_alphabet[(acc >> 6) & 0x3f] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[acc & 0x3f] : '=';
	}
	out[o] = '\0';
	return (ssize_t)o;
}
