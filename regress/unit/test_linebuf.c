/*
 * The line reader: CRLF, bare LF, bare CR and too-long lines told apart,
 * whatever way the bytes are split across reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linebuf.h"

/* Append s (len bytes) as one read; the room must be there. */
static void
feed(struct linebuf *lb, const void *s, size_t len)
{
	uint8_t	*p;
	size_t	 avail;

	p = linebuf_space(lb, &avail);
	assert_true(avail >= len);
	memcpy(p, s, len);
	linebuf_fill(lb, len);
}

static void
feeds(struct linebuf *lb, const char *s)
{
	feed(lb, s, strlen(s));
}

/* The next line must be of kind k with exactly the text want. */
static void
expect(struct linebuf *lb, size_t maxlen, enum line_kind k, const char *want)
{
	const uint8_t	*line;
	size_t		 len;
	enum line_kind	 got;

	got = linebuf_next(lb, maxlen, &line, &len);
	assert_int_equal(got, k);
	if (k == LINE_NONE) {
		assert_null(line);
		assert_int_equal(len, 0);
		return;
	}
	assert_non_null(line);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
}

static void
test_crlf(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	expect(&lb, 32, LINE_NONE, NULL);
	feeds(&lb, "HELO x\r\nMAIL FROM:<a@b>\r\n\r\nRS");
	assert_int_equal(linebuf_pending(&lb), 29);
	expect(&lb, 32, LINE_CRLF, "HELO x");
	expect(&lb, 32, LINE_CRLF, "MAIL FROM:<a@b>");
	expect(&lb, 32, LINE_CRLF, "");
	assert_int_equal(linebuf_pending(&lb), 2);
	expect(&lb, 32, LINE_NONE, NULL);
	feeds(&lb, "ET\r\n");
	expect(&lb, 32, LINE_CRLF, "RSET");
	expect(&lb, 32, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 0);
}

static void
test_split_crlf(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	feeds(&lb, "abc\r");
	/* A CR at the end of a read is neither CRLF nor bare yet. */
	expect(&lb, 32, LINE_NONE, NULL);
	expect(&lb, 32, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 4);
	feeds(&lb, "\ndef\r");
	expect(&lb, 32, LINE_CRLF, "abc");
	expect(&lb, 32, LINE_NONE, NULL);
	feeds(&lb, "x");
	expect(&lb, 32, LINE_BARE_CR, "def");
	expect(&lb, 32, LINE_NONE, NULL);
	feeds(&lb, "\r\n");
	expect(&lb, 32, LINE_CRLF, "x");
	assert_int_equal(linebuf_pending(&lb), 0);
}

static void
test_bare_lf(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	feeds(&lb, "a\nb\r\n\n.\n\r\n");
	expect(&lb, 32, LINE_BARE_LF, "a");
	expect(&lb, 32, LINE_CRLF, "b");
	expect(&lb, 32, LINE_BARE_LF, "");
	expect(&lb, 32, LINE_BARE_LF, ".");
	expect(&lb, 32, LINE_CRLF, "");
	expect(&lb, 32, LINE_NONE, NULL);
}

static void
test_bare_cr(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	/* "\r\r\n": a bare CR ends an empty line, then CRLF another. */
	feeds(&lb, "a\rb\r\r\n.\r.\r\n\n\r");
	expect(&lb, 32, LINE_BARE_CR, "a");
	expect(&lb, 32, LINE_BARE_CR, "b");
	expect(&lb, 32, LINE_CRLF, "");
	expect(&lb, 32, LINE_BARE_CR, ".");
	expect(&lb, 32, LINE_CRLF, ".");
	/* LF CR: a bare LF, then a CR waiting for its follower. */
	expect(&lb, 32, LINE_BARE_LF, "");
	expect(&lb, 32, LINE_NONE, NULL);
	feeds(&lb, "\r");
	expect(&lb, 32, LINE_BARE_CR, "");
	expect(&lb, 32, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 1);
}

/* NUL bytes and 8-bit octets are line content like any other. */
static void
test_binary_content(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];
	const uint8_t	*line;
	size_t		 len;

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	feed(&lb, "a\0\xff" "b\r\n", 6);
	assert_int_equal(linebuf_next(&lb, 32, &line, &len), LINE_CRLF);
	assert_int_equal(len, 4);
	assert_memory_equal(line, "a\0\xff" "b", 4);
}

static void
test_maxlen(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[64];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	/* Exactly maxlen octets before the terminator: fine. */
	feeds(&lb, "12345678\r\n");
	expect(&lb, 8, LINE_CRLF, "12345678");
	feeds(&lb, "abcdefgh\n");
	expect(&lb, 8, LINE_BARE_LF, "abcdefgh");
	feeds(&lb, "ABCDEFGH\rx");
	expect(&lb, 8, LINE_BARE_CR, "ABCDEFGH");
	feeds(&lb, "\r\n");
	expect(&lb, 8, LINE_CRLF, "x");

	/* maxlen + 1: too long, its tail skipped through the CRLF. */
	feeds(&lb, "123456789\r\nnext\r\n");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	expect(&lb, 8, LINE_CRLF, "next");
	expect(&lb, 8, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 0);

	/* maxlen octets then a CR last: wait, it may be CRLF. */
	feeds(&lb, "12345678\r");
	expect(&lb, 8, LINE_NONE, NULL);
	feeds(&lb, "\n");
	expect(&lb, 8, LINE_CRLF, "12345678");

	/* maxlen + 1 then a bare LF or CR: still too long. */
	feeds(&lb, "123456789\nA\r\nB\r\n");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	expect(&lb, 8, LINE_CRLF, "B");
	feeds(&lb, "123456789\rA\r\nC\r\n");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	expect(&lb, 8, LINE_CRLF, "C");

	/* maxlen 0: only empty lines. */
	feeds(&lb, "\r\nx\r\n\r\n");
	expect(&lb, 0, LINE_CRLF, "");
	expect(&lb, 0, LINE_TOO_LONG, "");
	expect(&lb, 0, LINE_CRLF, "");
	expect(&lb, 0, LINE_NONE, NULL);
}

/*
 * The smuggling case: a long line whose tail holds a bare LF and a
 * command.  Nothing of the tail may come out as a line.
 */
static void
test_too_long_tail(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[32];

	(void)state;
	linebuf_init(&lb, buf, sizeof(buf));
	feeds(&lb, "123456789");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	/* Reported once only. */
	expect(&lb, 8, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 0);
	feeds(&lb, "abc\nQUIT\rRSET\n\r");
	expect(&lb, 8, LINE_NONE, NULL);
	/* The trailing CR is kept: its LF may be next. */
	assert_int_equal(linebuf_pending(&lb), 1);
	feeds(&lb, "x\r");
	expect(&lb, 8, LINE_NONE, NULL);
	assert_int_equal(linebuf_pending(&lb), 1);
	feeds(&lb, "\nNOOP\r\n");
	expect(&lb, 8, LINE_CRLF, "NOOP");
	expect(&lb, 8, LINE_NONE, NULL);

	/* A CR LF split right after the too-long report. */
	feeds(&lb, "abcdefghi\r");
	expect(&lb, 8, LINE_TOO_LONG, "abcdefgh");
	assert_int_equal(linebuf_pending(&lb), 1);
	feeds(&lb, "\nok\r\n");
	expect(&lb, 8, LINE_CRLF, "ok");

	/* linebuf_discard forgets the skipping too. */
	feeds(&lb, "abcdefghijk");
	expect(&lb, 8, LINE_TOO_LONG, "abcdefgh");
	linebuf_discard(&lb);
	assert_int_equal(linebuf_pending(&lb), 0);
	feeds(&lb, "tail\r\n");
	expect(&lb, 8, LINE_CRLF, "tail");
}

static void
test_buffer_full(void **state)
{
	struct linebuf	 lb;
	uint8_t		 buf[10], *p;
	size_t		 avail;

	(void)state;
	/* size = maxlen + 2: a full buffer always yields something. */
	linebuf_init(&lb, buf, sizeof(buf));
	p = linebuf_space(&lb, &avail);
	assert_ptr_equal(p, buf);
	assert_int_equal(avail, 10);
	feeds(&lb, "12345678\r\n");
	p = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 0);
	expect(&lb, 8, LINE_CRLF, "12345678");
	p = linebuf_space(&lb, &avail);
	assert_ptr_equal(p, buf);
	assert_int_equal(avail, 10);

	feeds(&lb, "1234567890");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	expect(&lb, 8, LINE_NONE, NULL);
	p = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 10);
	feeds(&lb, "abcdefgh\r\n");
	expect(&lb, 8, LINE_NONE, NULL);
	feeds(&lb, "12345678\r\n");
	expect(&lb, 8, LINE_CRLF, "12345678");

	/* maxlen + 1 octets then CR fill it: too long, CR kept. */
	feeds(&lb, "123456789\r");
	expect(&lb, 8, LINE_TOO_LONG, "12345678");
	p = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 9);
	assert_int_equal(p[-1], '\r');
	feeds(&lb, "\nA\r\n");
	expect(&lb, 8, LINE_CRLF, "A");

	/* A line, then the start of the next: space moves it down. */
	feeds(&lb, "1234567\r\nX");
	p = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 0);
	expect(&lb, 8, LINE_CRLF, "1234567");
	p = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 9);
	assert_ptr_equal(p, buf + 1);
	assert_int_equal(buf[0], 'X');
	feeds(&lb, "YZ\r\n");
	expect(&lb, 8, LINE_CRLF, "XYZ");
}

/*
 * A reference reader working on the whole stream at once, against which
 * the incremental one is checked for random splits.
 */
struct ref_line {
	enum line_kind	 kind;
	size_t		 off;
	size_t		 len;
};

static size_t
ref_lines(const uint8_t *s, size_t n, size_t maxlen, struct ref_line *out,
    size_t max)
{
	size_t	 pos = 0, i, nout = 0;
	int	 discarding = 0;

	while (pos < n && nout < max) {
		if (discarding) {
			for (i = pos; i + 1 < n; i++)
				if (s[i] == '\r' && s[i + 1] == '\n')
					break;
			if (i + 1 >= n)
				break;
			pos = i + 2;
			discarding = 0;
			continue;
		}
		for (i = pos; i < n && s[i] != '\r' && s[i] != '\n'; i++)
			;
		if (i - pos > maxlen) {
			out[nout].kind = LINE_TOO_LONG;
			out[nout].off = pos;
			out[nout++].len = maxlen;
			pos += maxlen;
			discarding = 1;
			continue;
		}
		if (i == n)
			break;
		out[nout].off = pos;
		out[nout].len = i - pos;
		if (s[i] == '\n') {
			out[nout++].kind = LINE_BARE_LF;
			pos = i + 1;
		} else if (i + 1 == n) {
			break;
		} else if (s[i + 1] == '\n') {
			out[nout++].kind = LINE_CRLF;
			pos = i + 2;
		} else {
			out[nout++].kind = LINE_BARE_CR;
			pos = i + 1;
		}
	}
	return nout;
}

static void
test_random_splits(void **state)
{
	static const uint8_t	 alpha[] = "ab\r\n\r\n";
	uint8_t			 stream[2000], buf[64];
	struct ref_line		 ref[2000];
	struct linebuf		 lb;
	const uint8_t		*line;
	size_t			 nref, got, off, chunk, avail, len, maxlen;
	size_t			 size, i;
	enum line_kind		 k;
	uint8_t			*p;
	int			 round;

	(void)state;
	srandom(5321);
	for (round = 0; round < 2000; round++) {
		maxlen = random() % 12;
		size = maxlen + 2 + random() % 8;
		for (i = 0; i < sizeof(stream); i++)
			stream[i] = alpha[random() % (sizeof(alpha) - 1)];
		nref = ref_lines(stream, sizeof(stream), maxlen, ref,
		    sizeof(ref) / sizeof(ref[0]));
		linebuf_init(&lb, buf, size);
		got = 0;
		off = 0;
		while (off < sizeof(stream)) {
			p = linebuf_space(&lb, &avail);
			/* size >= maxlen + 2: there is always room. */
			assert_true(avail > 0);
			chunk = 1 + random() % avail;
			if (chunk > sizeof(stream) - off)
				chunk = sizeof(stream) - off;
			memcpy(p, stream + off, chunk);
			linebuf_fill(&lb, chunk);
			off += chunk;
			while ((k = linebuf_next(&lb, maxlen, &line, &len)) !=
			    LINE_NONE) {
				assert_true(got < nref);
				assert_int_equal(k, ref[got].kind);
				assert_int_equal(len, ref[got].len);
				assert_memory_equal(line,
				    stream + ref[got].off, len);
				got++;
			}
		}
		assert_int_equal(got, nref);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_split_crlf),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_bare_cr),
		cmocka_unit_test(test_binary_content),
		cmocka_unit_test(test_maxlen),
		cmocka_unit_test(test_too_long_tail),
		cmocka_unit_test(test_buffer_full),
		cmocka_unit_test(test_random_splits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
