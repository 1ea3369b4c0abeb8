/*
 * The upstream reply parser: a table of whole replies, good and bad,
 * each fed line by line as the client would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/client.h"

#define MAXL	8

struct reply_case {
	const char	*lines[MAXL];	/* NULL-terminated */
	int		 ok;		/* 1: REPLY_DONE on the last line */
	int		 code;
	const char	*text;
	int		 capa;
	uint64_t	 size;
	int		 nlines;
};

static const struct reply_case cases[] = {
	{ { "220 mx.example ESMTP" }, 1, 220, "mx.example ESMTP", 0, 0, 1 },
	{ { "250" }, 1, 250, "", 0, 0, 1 },
	{ { "250 " }, 1, 250, "", 0, 0, 1 },
	{ { "354 go ahead" }, 1, 354, "go ahead", 0, 0, 1 },
	{ { "421 4.3.2 bye" }, 1, 421, "4.3.2 bye", 0, 0, 1 },
	{ { "559 max" }, 1, 559, "max", 0, 0, 1 },
	{ { "200 min" }, 1, 200, "min", 0, 0, 1 },
	{ { "250-mx.example", "250-PIPELINING", "250-SIZE 10240000",
	    "250-8BITMIME", "250-SMTPUTF8", "250 STARTTLS" }, 1, 250,
	    "mx.example", CAPA_PIPELINING | CAPA_SIZE | CAPA_8BITMIME |
	    CAPA_SMTPUTF8 | CAPA_STARTTLS, 10240000, 6 },
	/* Keywords are case-insensitive; unknown ones are skipped. */
	{ { "250-mx", "250-pipelining", "250-Size", "250-AUTH PLAIN",
	    "250-ENHANCEDSTATUSCODES", "250 8bitmime" }, 1, 250, "mx",
	    CAPA_PIPELINING | CAPA_SIZE | CAPA_8BITMIME, 0, 6 },
	/* A keyword is a whole word. */
	{ { "250-mx", "250-PIPELININGX", "250-SIZEX 5", "250-XSTARTTLS",
	    "250 SMTPUTF8 " }, 1, 250, "mx", CAPA_SMTPUTF8, 0, 5 },
	/* A bad or huge SIZE parameter means no limit. */
	{ { "250-mx", "250 SIZE 12x" }, 1, 250, "mx", CAPA_SIZE, 0, 2 },
	{ { "250-mx", "250 SIZE 99999999999999999999999" }, 1, 250, "mx",
	    CAPA_SIZE, 0, 2 },
	{ { "250-mx", "250 SIZE 18446744073709551615" }, 1, 250, "mx",
	    CAPA_SIZE, 0, 2 },
	{ { "250-mx", "250 SIZE 18446744073709551605" }, 1, 250, "mx",
	    CAPA_SIZE, 18446744073709551605ULL, 2 },
	/* Keywords on the first line are the greeting's text, no more. */
	{ { "250 PIPELINING" }, 1, 250, "PIPELINING", 0, 0, 1 },
	/* Non-printable octets in the text become '?'. */
	{ { "550 a\tb\x01\x7f\xc3\xa9z" }, 1, 550, "a?b????z", 0, 0, 1 },
	{ { "250-", "250-" , "250 " }, 1, 250, "", 0, 0, 3 },

	/* Bad codes. */
	{ { "" }, 0, 0, NULL, 0, 0, 0 },
	{ { "25" }, 0, 0, NULL, 0, 0, 0 },
	{ { "150 old" }, 0, 0, NULL, 0, 0, 0 },
	{ { "650 new" }, 0, 0, NULL, 0, 0, 0 },
	{ { "260 x" }, 0, 0, NULL, 0, 0, 0 },
	{ { "599 x" }, 0, 0, NULL, 0, 0, 0 },
	{ { "25x ok" }, 0, 0, NULL, 0, 0, 0 },
	{ { "2500 ok" }, 0, 0, NULL, 0, 0, 0 },
	{ { "250_ok" }, 0, 0, NULL, 0, 0, 0 },
	{ { " 250 ok" }, 0, 0, NULL, 0, 0, 0 },
	{ { "abc" }, 0, 0, NULL, 0, 0, 0 },
	/* Codes that change within a reply. */
	{ { "250-a", "251 b" }, 0, 0, NULL, 0, 0, 0 },
	{ { "250-a", "250-b", "550 c" }, 0, 0, NULL, 0, 0, 0 },
	{ { "250-a", "250-b", "25" }, 0, 0, NULL, 0, 0, 0 },
};

/* Feed one case; every line but the last must be REPLY_MORE. */
static void
run_case(const struct reply_case *tc)
{
	struct reply_parser	 p;
	struct smtp_reply	 r;
	enum reply_status	 st;
	int			 i, n;

	for (n = 0; n < MAXL && tc->lines[n] != NULL; n++)
		;
	reply_parser_init(&p);
	memset(&r, 0, sizeof(r));
	for (i = 0; i < n; i++) {
		st = reply_parse_line(&p, tc->lines[i], strlen(tc->lines[i]),
		    &r);
		if (i < n - 1) {
			assert_int_equal(st, REPLY_MORE);
			continue;
		}
		if (!tc->ok) {
			assert_int_equal(st, REPLY_BAD);
			assert_int_equal(p.in_progress, 0);
			return;
		}
		assert_int_equal(st, REPLY_DONE);
	}
	assert_int_equal(r.code, tc->code);
	assert_string_equal(r.text, tc->text);
	assert_int_equal(r.capa, tc->capa);
	assert_true(r.size_limit == tc->size);
	assert_int_equal(r.nlines, tc->nlines);
	assert_int_equal(p.in_progress, 0);
}

/* Every case of the table. */
static void
test_table(void **state)
{
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* CLIENT_REPLY_LINES_MAX lines are a reply; one more is not. */
static void
test_line_count(void **state)
{
	struct reply_parser	 p;
	struct smtp_reply	 r;
	int			 i;

	(void)state;
	reply_parser_init(&p);
	for (i = 0; i < CLIENT_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(reply_parse_line(&p, "250-x", 5, &r),
		    REPLY_MORE);
	assert_int_equal(reply_parse_line(&p, "250 x", 5, &r), REPLY_DONE);
	assert_int_equal(r.nlines, CLIENT_REPLY_LINES_MAX);

	for (i = 0; i < CLIENT_REPLY_LINES_MAX; i++)
		assert_int_equal(reply_parse_line(&p, "250-x", 5, &r),
		    REPLY_MORE);
	assert_int_equal(reply_parse_line(&p, "250 x", 5, &r), REPLY_BAD);
	/* The next line starts a new reply. */
	assert_int_equal(reply_parse_line(&p, "221 bye", 7, &r), REPLY_DONE);
	assert_int_equal(r.code, 221);
}

/* The text is cut at REPLY_TEXT_MAX - 1; the line at the line limit. */
static void
test_lengths(void **state)
{
	struct reply_parser	 p;
	struct smtp_reply	 r;
	char			 line[CLIENT_REPLY_LINE_MAX + 2];

	(void)state;
	reply_parser_init(&p);
	memset(line, 'a', sizeof(line));
	memcpy(line, "554 ", 4);
	assert_int_equal(reply_parse_line(&p, line, CLIENT_REPLY_LINE_MAX,
	    &r), REPLY_DONE);
	assert_int_equal(strlen(r.text), REPLY_TEXT_MAX - 1);
	assert_int_equal(r.text[0], 'a');
	assert_int_equal(reply_parse_line(&p, line, CLIENT_REPLY_LINE_MAX + 1,
	    &r), REPLY_BAD);

	/* An embedded NUL is just a non-printable octet. */
	assert_int_equal(reply_parse_line(&p, "250 a\0b", 7, &r), REPLY_DONE);
	assert_string_equal(r.text, "a?b");
}

/* Replies follow each other on one parser. */
static void
test_sequence(void **state)
{
	struct reply_parser	 p;
	struct smtp_reply	 r;

	(void)state;
	reply_parser_init(&p);
	assert_int_equal(reply_parse_line(&p, "250-a", 5, &r), REPLY_MORE);
	assert_int_equal(reply_parse_line(&p, "250-SIZE 7", 10, &r),
	    REPLY_MORE);
	assert_int_equal(reply_parse_line(&p, "250 b", 5, &r), REPLY_DONE);
	assert_int_equal(r.capa, CAPA_SIZE);
	assert_true(r.size_limit == 7);
	assert_int_equal(reply_parse_line(&p, "550 no", 6, &r), REPLY_DONE);
	assert_int_equal(r.code, 550);
	assert_int_equal(r.capa, 0);
	assert_true(r.size_limit == 0);
	assert_int_equal(r.nlines, 1);
	assert_string_equal(r.text, "no");
}

/* Run the reply parser tests. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_line_count),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
