/*
 * The debug printer against what Python 3.11's DebuggingServer printed
 * for the same data.  The expected blocks were made by running
 * smtpd.DebuggingServer.process_message on the data as
 * SMTPChannel.found_terminator handed it over (text mode: decoded with
 * surrogateescape where the data is not UTF-8, which Python refused).
 * regress/e2e/test_debug_python.py compares with the live server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/debug.h"
#include "proto.h"

#define HEAD	"---------- MESSAGE FOLLOWS ----------\n"
#define TAIL	"------------ END MESSAGE ------------\n"

struct dcase {
	const char	*name;
	const char	*spool;		/* as the worker wrote it */
	size_t		 len;
	int		 bytes;		/* debug-format bytes */
	const char	*mail_opts;
	const char	*rcpt_opts;
	const char	*want;
	size_t		 wantlen;
};

static const struct dcase cases[] = {
	{ "classic", "Subject: x\r\nTo: y\r\n\r\nbody\r\n", 27, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nSubject: x\nTo: y\nX-Peer: 127.0.0.1\n\nbody\n------------ END MESSAGE ------------\n", 117 },
	{ "no_empty_line", "Subject: x\r\nbody\r\n", 18, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nSubject: x\nbody\n------------ END MESSAGE ------------\n", 92 },
	{ "empty_message", "", 0, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\n------------ END MESSAGE ------------\n", 76 },
	{ "one_empty_line", "\r\n", 2, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\n------------ END MESSAGE ------------\n", 76 },
	{ "empty_lines_at_end", "A: b\r\n\r\nbody\r\n\r\n\r\n", 18, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nA: b\nX-Peer: 127.0.0.1\n\nbody\n\n------------ END MESSAGE ------------\n", 106 },
	{ "empty_lines_at_start", "\r\n\r\nA\r\n\r\nB\r\n", 12, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nX-Peer: 127.0.0.1\n\n\nA\n\nB\n------------ END MESSAGE ------------\n", 101 },
	{ "only_empty_lines", "\r\n\r\n\r\n", 6, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nX-Peer: 127.0.0.1\n\n\n------------ END MESSAGE ------------\n", 96 },
	{ "text_breaks", "A\x0b" "B\x0c" "C\x1c" "D\x1d" "E\x1e" "F\xc2\x85G\xe2\x80\xa8H\xe2\x80\xa9I\r\n\x0c\r\nbody\x1f\r\n", 34, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nA\nB\nC\nD\nE\nF\nG\nH\nI\nX-Peer: 127.0.0.1\n\n\nbody\x1f\n------------ END MESSAGE ------------\n", 120 },
	{ "break_as_header_end", "A: b\x0c\x0c" "body\r\n", 12, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nA: b\nX-Peer: 127.0.0.1\n\nbody\n------------ END MESSAGE ------------\n", 105 },
	{ "break_at_end", "A: b\r\nc\xe2\x80\xa9\r\n", 12, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nA: b\nc\n------------ END MESSAGE ------------\n", 83 },
	{ "not_breaks", "\xc2\xa0\xe2\x80\xa7\xe2\x81\xa8\xc3\xa9\x1f\x85\r\n", 14, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\n\xc2\xa0\xe2\x80\xa7\xe2\x81\xa8\xc3\xa9\x1f\x85\n------------ END MESSAGE ------------\n", 89 },
	{ "non_utf8", "H: \xff\x00z\r\n\r\n\xc3\xa9\r\n", 14, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nH: \xff\x00z\nX-Peer: 127.0.0.1\n\n\xc3\xa9\n------------ END MESSAGE ------------\n", 105 },
	{ "partial_sequences", "a\xc2\r\nb\xe2\x80\r\nc\xe2\xe2\x80\xa8" "d\xc2\xc2\x85" "e\xe2\x80\xe2\x80\xa9" "f\r\n\r\ng\xe2", 31, 0, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\na\xc2\nb\xe2\x80\nc\xe2\nd\xc2\ne\xe2\x80\nf\nX-Peer: 127.0.0.1\n\ng\xe2\n------------ END MESSAGE ------------\n", 117 },
	{ "bytes_classic", "Subject: x\r\nTo: y\r\n\r\nbody\r\n", 27, 1, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nb'Subject: x'\nb'To: y'\nb'X-Peer: 127.0.0.1'\nb''\nb'body'\n------------ END MESSAGE ------------\n", 132 },
	{ "bytes_no_empty_line", "Subject: x\r\nbody\r\n", 18, 1, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nb'Subject: x'\nb'body'\n------------ END MESSAGE ------------\n", 98 },
	{ "bytes_empty_lines_at_end", "A: b\r\n\r\nbody\r\n\r\n\r\n", 18, 1, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nb'A: b'\nb'X-Peer: 127.0.0.1'\nb''\nb'body'\nb''\n------------ END MESSAGE ------------\n", 121 },
	{ "bytes_quotes", "it's\r\nsay \"hi\"\r\n'both\"\r\nback\\slash\ttab\x7f\x80\xff\x00\x1f\r\n\r\n\xc3\xa9\x0c\x0b\xe2\x80\xa8\r\n", 56, 1, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\nb\"it's\"\nb'say \"hi\"'\nb'\\'both\"'\nb'back\\\\slash\\ttab\\x7f\\x80\\xff\\x00\\x1f'\nb'X-Peer: 127.0.0.1'\nb''\nb'\\xc3\\xa9\\x0c\\x0b\\xe2\\x80\\xa8'\n------------ END MESSAGE ------------\n", 204 },
	{ "bytes_empty_line_first", "\r\nA\r\n", 5, 1, NULL, NULL,
	    HEAD "b'X-Peer: 127.0.0.1'\nb''\nb'A'\n" TAIL, 106 },
	{ "bytes_empty_message", "", 0, 1, NULL, NULL,
	    "---------- MESSAGE FOLLOWS ----------\n------------ END MESSAGE ------------\n", 76 },
	{ "bytes_options", "A: b\r\n\r\nc\r\n", 11, 1, "SIZE=100 BODY=8BITMIME", "NOTIFY=NEVER",
	    "---------- MESSAGE FOLLOWS ----------\nmail options: ['SIZE=100', 'BODY=8BITMIME']\nrcpt options: ['NOTIFY=NEVER']\n\nb'A: b'\nb'X-Peer: 127.0.0.1'\nb''\nb'c'\n------------ END MESSAGE ------------\n", 190 },
	{ "bytes_mail_options", "A: b\r\n\r\nc\r\n", 11, 1, "SMTPUTF8", "",
	    "---------- MESSAGE FOLLOWS ----------\nmail options: ['SMTPUTF8']\nb'A: b'\nb'X-Peer: 127.0.0.1'\nb''\nb'c'\n------------ END MESSAGE ------------\n", 141 },
	{ "bytes_rcpt_quotes", "A\r\n", 3, 1, "", "X='1' Y=\"2\" Z='\"\\ \x01\xc3\xa9\xc2\x9f\xc2\xad",
	    "---------- MESSAGE FOLLOWS ----------\nrcpt options: [\"X='1'\", 'Y=\"2\"', 'Z=\\'\"\\\\', '\\x01\xc3\xa9\\x9f\\xad']\n\nb'A'\n------------ END MESSAGE ------------\n", 144 },
};

/* Print len bytes of a spool holding filelen bytes; the output. */
static char *
print_spool(const char *spool, size_t filelen, size_t len,
    const struct debug_msg *m, size_t *outlen)
{
	char	*out = NULL;
	FILE	*f = open_memstream(&out, outlen);
	int	 fd = memfd_create("t", 0);

	assert_non_null(f);
	assert_int_equal(write(fd, spool, filelen), (ssize_t)filelen);
	assert_int_equal(debug_print(fd, len, m, f), 0);
	fclose(f);
	close(fd);
	return out;
}

static void
test_cases(void **state)
{
	struct debug_msg	 m;
	const struct dcase	*c;
	char			*out;
	size_t			 i, outlen;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		m.peer_ip = "127.0.0.1";
		m.mail_opts = c->mail_opts;
		m.rcpt_opts = c->rcpt_opts;
		m.format = c->bytes ? DEBUG_FORMAT_BYTES : DEBUG_FORMAT_TEXT;
		out = print_spool(c->spool, c->len, c->len, &m, &outlen);
		if (outlen != c->wantlen || memcmp(out, c->want, outlen) != 0)
			fail_msg("%s: got \"%.*s\"", c->name, (int)outlen, out);
		free(out);
	}
}

/* Options are printed in the bytes flavour only, as Python did. */
static void
test_text_has_no_options(void **state)
{
	struct debug_msg	 m = { "::1", "SIZE=1", "X", DEBUG_FORMAT_TEXT };
	const char		*spool = "A\r\n\r\nb\r\n";
	char			*out;
	size_t			 outlen;

	(void)state;
	out = print_spool(spool, strlen(spool), strlen(spool), &m, &outlen);
	assert_string_equal(out, HEAD "A\nX-Peer: ::1\n\nb\n" TAIL);
	free(out);
}

/*
 * Multi-byte breaks and CRLFs across the printer's 64 KiB reads, and
 * lines longer than a read in the bytes flavour.
 */
static void
test_chunk_edges(void **state)
{
	static const char	*brk[] = { "\xc2\x85", "\xe2\x80\xa8" };
	struct debug_msg	 m = { "127.0.0.1", NULL, NULL, 0 };
	char			*spool, *out, *want;
	size_t			 i, j, n, outlen, off;

	(void)state;
	spool = malloc(70000);
	want = malloc(80000);
	assert_non_null(spool);
	assert_non_null(want);
	for (i = 0; i < sizeof(brk) / sizeof(brk[0]); i++) {
		for (j = 0; j < strlen(brk[i]); j++) {
			/* The break's byte j is the last of the first read. */
			n = 65536 - j - 1;
			memset(spool, 'x', n);
			memcpy(spool + n, brk[i], strlen(brk[i]));
			memcpy(spool + n + strlen(brk[i]), "\r\nB\r\n", 5);
			off = strlen(HEAD);
			memcpy(want, HEAD, off);
			memset(want + off, 'x', n);
			off += n;
			memcpy(want + off, "\nX-Peer: 127.0.0.1\n\nB\n" TAIL,
			    strlen("\nX-Peer: 127.0.0.1\n\nB\n" TAIL) + 1);
			out = print_spool(spool, n + strlen(brk[i]) + 5,
			    n + strlen(brk[i]) + 5, &m, &outlen);
			assert_int_equal(outlen, strlen(want));
			assert_memory_equal(out, want, outlen);
			free(out);
		}
	}
	/* A CRLF split by the read; a bytes line longer than a read. */
	n = 65535;
	memset(spool, 'y', n);
	memcpy(spool + n, "\r\n\r\nB\r\n", 7);
	m.format = DEBUG_FORMAT_BYTES;
	out = print_spool(spool, n + 7, n + 7, &m, &outlen);
	assert_int_equal(outlen, strlen(HEAD) + 2 + n + 2 +
	    strlen("b'X-Peer: 127.0.0.1'\nb''\nb'B'\n" TAIL));
	assert_memory_equal(out + strlen(HEAD), "b'yyy", 5);
	assert_memory_equal(out + strlen(HEAD) + 2 + n, "'\nb'X-Peer: ", 12);
	free(out);
	/* The final CRLF, which is not data, split by the read. */
	m.format = DEBUG_FORMAT_TEXT;
	memset(spool, 'z', n);
	memcpy(spool + n, "\r\n", 2);
	out = print_spool(spool, n + 2, n + 2, &m, &outlen);
	assert_int_equal(outlen, strlen(HEAD) + n + 1 + strlen(TAIL));
	assert_memory_equal(out + strlen(HEAD) + n, "\n" TAIL, outlen -
	    strlen(HEAD) - n);
	free(out);
	free(spool);
	free(want);
}

/* Bytes past the committed size (a worker still writing) are not ours. */
static void
test_only_committed_size(void **state)
{
	const char		*spool = "A: b\r\n\r\nbody\r\nLATE\r\n";
	struct debug_msg	 m = { "127.0.0.1", NULL, NULL, 0 };
	char			*out;
	size_t			 outlen;

	(void)state;
	out = print_spool(spool, strlen(spool),
	    strlen("A: b\r\n\r\nbody\r\n"), &m, &outlen);
	assert_string_equal(out, HEAD "A: b\nX-Peer: 127.0.0.1\n\nbody\n" TAIL);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_text_has_no_options),
		cmocka_unit_test(test_chunk_edges),
		cmocka_unit_test(test_only_committed_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
