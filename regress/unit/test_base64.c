/*
 * Strict base64: the RFC 4648 test vectors, round trips of every byte
 * value and length, exact output bounds, and every malformed form the
 * decoder must refuse (so a SASL response has exactly one encoding).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

#define CANARY	0xa5

struct vector {
	const char	*plain;
	const char	*b64;
};

/* RFC 4648 section 10. */
static const struct vector vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_rfc4648_vectors(void **state)
{
	unsigned char	 out[32];
	char		 enc[32];
	size_t		 i, plen, blen;
	ssize_t		 n;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		plen = strlen(vectors[i].plain);
		blen = strlen(vectors[i].b64);

		n = b64_encode((const unsigned char *)vectors[i].plain, plen,
		    enc, sizeof(enc));
		assert_int_equal(n, (ssize_t)blen);
		assert_string_equal(enc, vectors[i].b64);

		memset(out, CANARY, sizeof(out));
		n = b64_decode(vectors[i].b64, blen, out, sizeof(out));
		assert_int_equal(n, (ssize_t)plen);
		assert_memory_equal(out, vectors[i].plain, plen);
		/* Nothing written past the decoded bytes. */
		assert_int_equal(out[plen], CANARY);
	}
}

/* The SASL PLAIN response of RFC 4616's example. */
static void
test_sasl_plain(void **state)
{
	static const char	 plain[] = "\0tim\0tanstaaftanstaaf";
	unsigned char		 out[64];
	char			 enc[64];
	ssize_t			 n;

	(void)state;
	n = b64_encode((const unsigned char *)plain, sizeof(plain) - 1, enc,
	    sizeof(enc));
	assert_int_equal(n, 28);
	assert_string_equal(enc, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	n = b64_decode(enc, strlen(enc), out, sizeof(out));
	assert_int_equal(n, (ssize_t)sizeof(plain) - 1);
	assert_memory_equal(out, plain, sizeof(plain) - 1);
}

/* Every byte value at every offset of every length up to 300. */
static void
test_roundtrip(void **state)
{
	unsigned char	 in[300] = { 0 }, out[300 + 8];
	char		 enc[(300 + 2) / 3 * 4 + 1];
	size_t		 len, i;
	ssize_t		 n;

	(void)state;
	for (len = 0; len <= sizeof(in); len++) {
		for (i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 7 + len * 13);
		n = b64_encode(in, len, enc, sizeof(enc));
		assert_int_equal(n, (ssize_t)((len + 2) / 3 * 4));
		assert_int_equal(strlen(enc), (size_t)n);
		memset(out, CANARY, sizeof(out));
		assert_int_equal(b64_decode(enc, (size_t)n, out, len),
		    (ssize_t)len);
		if (len > 0)
			assert_memory_equal(out, in, len);
		assert_int_equal(out[len], CANARY);
	}
	for (i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	n = b64_encode(in, 256, enc, sizeof(enc));
	assert_int_equal(n, 344);
	assert_int_equal(b64_decode(enc, (size_t)n, out, 256), 256);
	assert_memory_equal(out, in, 256);
}

/* The whole alphabet decodes, and encodes back the same. */
static void
test_alphabet(void **state)
{
	static const char	 all[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char		 out[48];
	char			 enc[80];

	(void)state;
	assert_int_equal(b64_decode(all, 64, out, sizeof(out)), 48);
	assert_int_equal(b64_encode(out, 48, enc, sizeof(enc)), 64);
	assert_string_equal(enc, all);
	assert_int_equal(b64_decode("////", 4, out, sizeof(out)), 3);
	assert_int_equal(out[0], 0xff);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0xff);
	assert_int_equal(b64_decode("AAAA", 4, out, sizeof(out)), 3);
	assert_int_equal(out[0] | out[1] | out[2], 0);
}

/* The output bound is exact and never exceeded. */
static void
test_decode_outsize(void **state)
{
	unsigned char	 out[16];
	size_t		 i;

	(void)state;
	/* "foobar": 6 bytes; 5 is too few, and nothing beyond 5 is written. */
	memset(out, CANARY, sizeof(out));
	assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 5), -1);
	for (i = 5; i < sizeof(out); i++)
		assert_int_equal(out[i], CANARY);
	assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 6), 6);

	/* Padded quanta need only their real bytes. */
	memset(out, CANARY, sizeof(out));
	assert_int_equal(b64_decode("Zm9vYg==", 8, out, 4), 4);
	assert_int_equal(out[4], CANARY);
	assert_int_equal(b64_decode("Zm9vYg==", 8, out, 3), -1);
	memset(out, CANARY, sizeof(out));
	assert_int_equal(b64_decode("Zm9vYmE=", 8, out, 5), 5);
	assert_int_equal(out[5], CANARY);
	assert_int_equal(b64_decode("Zm9vYmE=", 8, out, 4), -1);
	memset(out, CANARY, sizeof(out));
	assert_int_equal(b64_decode("Zg==", 4, out, 1), 1);
	assert_int_equal(out[1], CANARY);
	assert_int_equal(b64_decode("Zg==", 4, out, 0), -1);
	assert_int_equal(out[0], 'f');

	/* Empty input needs no room at all. */
	assert_int_equal(b64_decode("", 0, NULL, 0), 0);
}

static void
test_encode_outsize(void **state)
{
	char	 enc[16];

	(void)state;
	/* Four characters per quantum and the NUL. */
	assert_int_equal(b64_encode((const unsigned char *)"foo", 3, enc, 5),
	    4);
	assert_string_equal(enc, "Zm9v");
	memset(enc, CANARY, sizeof(enc));
	assert_int_equal(b64_encode((const unsigned char *)"foo", 3, enc, 4),
	    -1);
	assert_int_equal((unsigned char)enc[0], CANARY);
	assert_int_equal(b64_encode((const unsigned char *)"f", 1, enc, 4),
	    -1);
	assert_int_equal(b64_encode((const unsigned char *)"f", 1, enc, 5), 4);
	assert_string_equal(enc, "Zg==");
	assert_int_equal(b64_encode((const unsigned char *)"", 0, enc, 1), 0);
	assert_string_equal(enc, "");
	assert_int_equal(b64_encode((const unsigned char *)"", 0, enc, 0), -1);
}

struct bad {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*why;
};

static const struct bad bad[] = {
	/* Length not a multiple of 4: no implied padding. */
	{ "Z", 0, "1 char" },
	{ "Zg", 0, "unpadded" },
	{ "Zg=", 0, "half padded" },
	{ "Zm9vY", 0, "5 chars" },
	{ "Zm9vYg=", 0, "7 chars" },
	{ "Zm9vYmFy=", 0, "extra pad" },
	/* Padding anywhere but at the very end. */
	{ "Zg==Zm9v", 0, "pad then data" },
	{ "Zm8=Zm9v", 0, "single pad then data" },
	{ "Zg==Zg==", 0, "two padded quanta" },
	{ "=Zm9", 0, "pad first" },
	{ "Z=m9", 0, "pad second" },
	{ "Zm=9", 0, "pad third, data after" },
	{ "Z===", 0, "three pads" },
	{ "====", 0, "only pads" },
	{ "Zg=a", 0, "x= followed by data" },
	{ "Z=g=", 0, "interleaved pads" },
	{ "Zm9v====", 0, "a quantum of pads" },
	/* Non-zero bits under the padding: a second encoding of a value. */
	{ "Zh==", 0, "pad bits set, 2 pads" },
	{ "Zv==", 0, "pad bits set, 2 pads (all)" },
	{ "Zm9=", 0, "pad bits set, 1 pad" },
	{ "Zm/=", 0, "pad bits set, 1 pad (all)" },
	{ "QR==", 0, "\"A\" noncanonical" },
	/* Characters outside the alphabet. */
	{ "Zm9-", 0, "base64url -" },
	{ "Zm9_", 0, "base64url _" },
	{ "Zm9v\r\n", 0, "CRLF" },
	{ "Zm9v\nZm9v", 0, "LF (len 9)" },
	{ "Zm9v\nZm9", 0, "LF (len 8)" },
	{ "Zm 9", 0, "space" },
	{ " Zm9", 0, "leading space" },
	{ "Zm9\t", 0, "tab" },
	{ "Zm9.", 0, "dot" },
	{ "Zm9*", 0, "star" },
	{ "Zm9\x80", 0, "8-bit" },
	{ "Zm9\xff", 0, "0xff" },
	{ "Zm\0v", 4, "NUL inside" },
	{ "Zg=\0", 4, "NUL for pad" },
	{ "\0\0\0\0", 4, "all NUL" },
};

static void
test_malformed(void **state)
{
	unsigned char	 out[64];
	size_t		 i, len;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len != 0 ? bad[i].len : strlen(bad[i].in);
		memset(out, CANARY, sizeof(out));
		if (b64_decode(bad[i].in, len, out, sizeof(out)) != -1)
			fail_msg("accepted: %s", bad[i].why);
	}
}

/* Every single-character change of a valid string decodes canonically. */
static void
test_mutations(void **state)
{
	static const char	*good[] = { "Zg==", "Zm8=", "Zm9v", "Zm9vYg==" };
	unsigned char		 out[16];
	char			 in[16], enc[32];
	size_t			 g, pos, len;
	int			 c;
	ssize_t			 n;

	(void)state;
	for (g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
		len = strlen(good[g]);
		for (pos = 0; pos < len; pos++) {
			for (c = 0; c < 256; c++) {
				memcpy(in, good[g], len);
				in[pos] = (char)c;
				n = b64_decode(in, len, out, sizeof(out));
				if (n == -1)
					continue;
				assert_true(n <= 3 * (ssize_t)len / 4);
				assert_int_equal(b64_encode(out, (size_t)n,
				    enc, sizeof(enc)), (ssize_t)len);
				assert_memory_equal(enc, in, len);
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_sasl_plain),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_alphabet),
		cmocka_unit_test(test_decode_outsize),
		cmocka_unit_test(test_encode_outsize),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
