/*
 * The SMTP path parser, table-driven: every case states the exact
 * error, local part, domain, flags and bytes consumed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

#define Q	ADDR_F_QUOTED
#define QA	(ADDR_F_QUOTED | ADDR_F_QUOTED_AT)
#define PCT	ADDR_F_PERCENT
#define BANG	ADDR_F_BANG
#define U8	ADDR_F_UTF8
#define LIT	ADDR_F_LITERAL

struct acase {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	int		 allow_null;
	int		 allow_utf8;
	enum addr_error	 err;
	const char	*local;		/* when ADDR_OK */
	const char	*domain;
	int		 flags;
	size_t		 consumed;	/* 0: strlen(in) */
};

static const struct acase cases[] = {
	/* The null path. */
	{ "<>", 0, 1, 0, ADDR_OK, "", "", 0, 2 },
	{ "<>", 0, 0, 0, ADDR_ERR_EMPTY, NULL, NULL, 0, 0 },
	{ "<> SIZE=10", 0, 1, 0, ADDR_OK, "", "", 0, 2 },
	/* Plain mailboxes. */
	{ "<a@b.c>", 0, 0, 0, ADDR_OK, "a", "b.c", 0, 0 },
	{ "<a@b.c>", 0, 1, 1, ADDR_OK, "a", "b.c", 0, 0 },
	{ "<a@b>", 0, 0, 0, ADDR_OK, "a", "b", 0, 0 },
	{ "<A.B@Example.COM>", 0, 0, 0, ADDR_OK, "A.B", "Example.COM", 0, 0 },
	{ "<a.b.c@d-e.f9>", 0, 0, 0, ADDR_OK, "a.b.c", "d-e.f9", 0, 0 },
	{ "<a@123.45>", 0, 0, 0, ADDR_OK, "a", "123.45", 0, 0 },
	{ "<x+tag=1/2{}~#$&'*?^_`|@b.c>", 0, 0, 0, ADDR_OK,
	    "x+tag=1/2{}~#$&'*?^_`|", "b.c", 0, 0 },
	{ "<a@b.c> SIZE=100 BODY=8BITMIME", 0, 0, 0, ADDR_OK, "a", "b.c", 0, 7 },
	{ "<a@b.c>>", 0, 0, 0, ADDR_OK, "a", "b.c", 0, 7 },
	/* Trailing dot dropped, once. */
	{ "<a@b.c.>", 0, 0, 0, ADDR_OK, "a", "b.c", 0, 0 },
	{ "<a@b.>", 0, 0, 0, ADDR_OK, "a", "b", 0, 0 },
	{ "<a@b.c..>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@.>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Quoted local parts. */
	{ "<\"a@b\"@c.d>", 0, 0, 0, ADDR_OK, "\"a@b\"", "c.d", QA, 0 },
	{ "<\"a b\"@c.d>", 0, 0, 0, ADDR_OK, "\"a b\"", "c.d", Q, 0 },
	{ "<\"\"@c.d>", 0, 0, 0, ADDR_OK, "\"\"", "c.d", Q, 0 },
	{ "<\"a\\\"b\"@c.d>", 0, 0, 0, ADDR_OK, "\"a\\\"b\"", "c.d", Q, 0 },
	{ "<\"a\\@b\"@c.d>", 0, 0, 0, ADDR_OK, "\"a\\@b\"", "c.d", QA, 0 },
	{ "<\"a>b\"@c.d>", 0, 0, 0, ADDR_OK, "\"a>b\"", "c.d", Q, 0 },
	{ "<\"a%b!c\"@d>", 0, 0, 0, ADDR_OK, "\"a%b!c\"", "d",
	    Q | PCT | BANG, 0 },
	{ "<\"abc@d>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\"b@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\x01\"@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\"a\\\x01\"@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Relay hacks are flagged, not refused. */
	{ "<a%b@c>", 0, 0, 0, ADDR_OK, "a%b", "c", PCT, 0 },
	{ "<a!b@c>", 0, 0, 0, ADDR_OK, "a!b", "c", BANG, 0 },
	{ "<b!a%c@d>", 0, 0, 0, ADDR_OK, "b!a%c", "d", PCT | BANG, 0 },
	/* Source routes. */
	{ "<@a.b:c@d.e>", 0, 0, 0, ADDR_ERR_ROUTE, NULL, NULL, 0, 0 },
	{ "<@a,@b:c@d>", 0, 1, 1, ADDR_ERR_ROUTE, NULL, NULL, 0, 0 },
	/* Not a path. */
	{ "<a@b@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "a@b.c", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.c", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "a@b.c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ " <a@b.c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "", 0, 1, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<", 0, 1, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "< a@b>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a @b>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b >", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<.a@b>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a.@b>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a..b@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a(b)@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a,b@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b_c.d>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b..c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@.b>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Hyphens. */
	{ "<a@b-c.d>", 0, 0, 0, ADDR_OK, "a", "b-c.d", 0, 0 },
	{ "<a@b--c.d>", 0, 0, 0, ADDR_OK, "a", "b--c.d", 0, 0 },
	{ "<a@-b.c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b-.c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.-c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.c->", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.c-.>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* Address literals. */
	{ "<a@[127.0.0.1]>", 0, 0, 0, ADDR_OK, "a", "[127.0.0.1]", LIT, 0 },
	{ "<a@[IPv6:::1]>", 0, 0, 0, ADDR_OK, "a", "[IPv6:::1]", LIT, 0 },
	{ "<a@[ipv6:2001:db8::1]>", 0, 0, 0, ADDR_OK, "a",
	    "[ipv6:2001:db8::1]", LIT, 0 },
	{ "<a@[IPv6:::ffff:1.2.3.4]>", 0, 0, 0, ADDR_OK, "a",
	    "[IPv6:::ffff:1.2.3.4]", LIT, 0 },
	{ "<a@[999.1.1.1]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[1.2.3.4.5]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[::1]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:1.2.3.4]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:::1%eth0]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[127.0.0.1>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[127.0.0.1]x>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[127.0.0.1].>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@x[127.0.0.1]>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* A NUL inside a literal must not cut it short. */
	{ "<a@[1.2.3.4\0x]>", 15, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@[IPv6:::1\0x]>", 16, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* NUL and control octets anywhere else. */
	{ "<a\0b@c>", 7, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b\0c>", 7, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a\x7f@c>", 0, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* The length bounds the parser: no reading past it. */
	{ "<a@b.c>", 6, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.c>", 1, 0, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<>", 1, 1, 0, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* UTF-8, only with SMTPUTF8. */
	{ "<j\xc3\xb6rg@b.c>", 0, 0, 0, ADDR_ERR_8BIT, NULL, NULL, 0, 0 },
	{ "<j\xc3\xb6rg@b.c>", 0, 0, 1, ADDR_OK, "j\xc3\xb6rg", "b.c", U8, 0 },
	{ "<a@\xc3\xa9t\xc3\xa9.fr>", 0, 0, 0, ADDR_ERR_8BIT, NULL, NULL,
	    0, 0 },
	{ "<a@\xc3\xa9t\xc3\xa9.fr>", 0, 0, 1, ADDR_OK, "a",
	    "\xc3\xa9t\xc3\xa9.fr", U8, 0 },
	{ "<\"\xc3\xb6 x\"@b.c>", 0, 0, 0, ADDR_ERR_8BIT, NULL, NULL, 0, 0 },
	{ "<\"\xc3\xb6 x\"@b.c>", 0, 0, 1, ADDR_OK, "\"\xc3\xb6 x\"", "b.c",
	    Q | U8, 0 },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac"
	    "\xe5\x8f\xb8>", 0, 0, 1, ADDR_OK, "\xe7\x94\xa8\xe6\x88\xb7",
	    "\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", U8, 0 },
	{ "<\xf0\x9f\x98\x80@b.c>", 0, 0, 1, ADDR_OK, "\xf0\x9f\x98\x80",
	    "b.c", U8, 0 },
	/* Malformed UTF-8 is refused even with SMTPUTF8. */
	{ "<a\xff@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a\xff@b.c>", 0, 0, 0, ADDR_ERR_8BIT, NULL, NULL, 0, 0 },
	{ "<\xc0\xaf@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\xe0\x80\xaf@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a\xc3@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b\xc3.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<a@b.\xe2\x82>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\xed\xa0\x80@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	{ "<\xf4\x90\x80\x80@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL,
	    0, 0 },
	{ "<\"\x80\"@b.c>", 0, 0, 1, ADDR_ERR_SYNTAX, NULL, NULL, 0, 0 },
	/* The flags say what is there, nothing more. */
	{ "<a@b.c> \xc3\xa9", 0, 0, 1, ADDR_OK, "a", "b.c", 0, 7 },
};

static void
run_case(const struct acase *c, size_t idx)
{
	struct mailaddr	 a;
	size_t		 len, consumed = 12345, want;
	enum addr_error	 err;

	len = c->len ? c->len : strlen(c->in);
	err = addr_parse_path(c->in, len, c->allow_null, c->allow_utf8, &a,
	    &consumed);
	if (err != c->err)
		fail_msg("case %zu \"%s\": error %d (%s), want %d", idx, c->in,
		    err, addr_strerror(err), c->err);
	if (c->err != ADDR_OK) {
		assert_int_equal(consumed, 0);
		return;
	}
	want = c->consumed ? c->consumed : strlen(c->in);
	if (consumed != want)
		fail_msg("case %zu \"%s\": consumed %zu, want %zu", idx, c->in,
		    consumed, want);
	assert_string_equal(a.local, c->local);
	assert_string_equal(a.domain, c->domain);
	if (a.flags != c->flags)
		fail_msg("case %zu \"%s\": flags %#x, want %#x", idx, c->in,
		    a.flags, c->flags);
	assert_int_equal(a.null, strcmp(c->in, "<>") == 0 ||
	    strncmp(c->in, "<> ", 3) == 0);
}

static void
test_table(void **state)
{
	size_t	 i;

	(void)state;
	assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], i);
}

/* Build "<" local "@" domain ">" and parse it. */
static enum addr_error
parse_built(const char *local, const char *domain, struct mailaddr *a)
{
	char	 path[1024];
	size_t	 consumed;
	int	 n;

	n = snprintf(path, sizeof(path), "<%s@%s>", local, domain);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	return addr_parse_path(path, n, 0, 0, a, &consumed);
}

static char *
repeat(char *dst, int c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
	return dst;
}

/* A domain of exactly n octets made of labels of at most 63. */
static char *
make_domain(char *dst, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		dst[i] = (i % 64 == 63) ? '.' : 'a' + (i % 26);
	if (dst[n - 1] == '.')
		dst[n - 1] = 'z';
	dst[n] = '\0';
	return dst;
}

static void
test_lengths(void **state)
{
	struct mailaddr	 a;
	char		 local[128], dom[512], q[128];

	(void)state;
	/* Local part: 64 octets, not 65. */
	assert_int_equal(parse_built(repeat(local, 'x', 64), "b.c", &a),
	    ADDR_OK);
	assert_int_equal(strlen(a.local), 64);
	assert_string_equal(a.local, local);
	assert_int_equal(parse_built(repeat(local, 'x', 65), "b.c", &a),
	    ADDR_ERR_LENGTH);
	/* The quotes count. */
	q[0] = '"';
	repeat(q + 1, 'y', 62);
	strcat(q, "\"");
	assert_int_equal(parse_built(q, "b.c", &a), ADDR_OK);
	assert_string_equal(a.local, q);
	q[0] = '"';
	repeat(q + 1, 'y', 63);
	strcat(q, "\"");
	assert_int_equal(parse_built(q, "b.c", &a), ADDR_ERR_LENGTH);

	/* Labels: 63 octets, not 64. */
	repeat(dom, 'd', 63);
	strcat(dom, ".com");
	assert_int_equal(parse_built("a", dom, &a), ADDR_OK);
	assert_string_equal(a.domain, dom);
	repeat(dom, 'd', 64);
	strcat(dom, ".com");
	assert_int_equal(parse_built("a", dom, &a), ADDR_ERR_LENGTH);
	strcpy(dom, "com.");
	repeat(dom + 4, 'e', 64);
	assert_int_equal(parse_built("a", dom, &a), ADDR_ERR_LENGTH);
	repeat(dom + 4, 'e', 63);
	assert_int_equal(parse_built("a", dom, &a), ADDR_OK);

	/*
	 * The whole path is at most 256 octets with its brackets, so the
	 * longest domain after "<a@" is 252 octets.
	 */
	assert_int_equal(parse_built("a", make_domain(dom, 252), &a), ADDR_OK);
	assert_string_equal(a.domain, dom);
	assert_int_equal(strlen(a.domain), 252);
	assert_int_equal(parse_built("a", make_domain(dom, 253), &a),
	    ADDR_ERR_LENGTH);
	assert_int_equal(parse_built("a", make_domain(dom, 255), &a),
	    ADDR_ERR_LENGTH);
	assert_int_equal(parse_built("a", make_domain(dom, 256), &a),
	    ADDR_ERR_LENGTH);
	assert_int_equal(parse_built("a", make_domain(dom, 400), &a),
	    ADDR_ERR_LENGTH);
	/*
	 * A '>' in a quoted local part hides the real length from the first
	 * check: the path is still refused, and nothing is consumed.
	 */
	{
		char	 path[512];
		size_t	 consumed = 99;
		int	 n;

		n = snprintf(path, sizeof(path), "<\"%s>\"@%s>",
		    repeat(local, 'q', 59), make_domain(dom, 200));
		assert_int_equal(addr_parse_path(path, n, 0, 0, &a, &consumed),
		    ADDR_ERR_LENGTH);
		assert_int_equal(consumed, 0);
		n = snprintf(path, sizeof(path), "<\"%s>\"@%s>",
		    repeat(local, 'q', 59), make_domain(dom, 191));
		assert_int_equal(addr_parse_path(path, n, 0, 0, &a, &consumed),
		    ADDR_OK);
		assert_int_equal(consumed, 256);
	}
	/* 64 + 1 + 189 + 2 = 256. */
	assert_int_equal(parse_built(repeat(local, 'l', 64),
	    make_domain(dom, 189), &a), ADDR_OK);
	assert_int_equal(parse_built(repeat(local, 'l', 64),
	    make_domain(dom, 190), &a), ADDR_ERR_LENGTH);
}

static void
test_consumed_and_reuse(void **state)
{
	struct mailaddr	 a;
	size_t		 consumed;
	const char	*s = "<x@y.z> SIZE=1";

	(void)state;
	/* A failed parse leaves nothing of an earlier success behind. */
	assert_int_equal(addr_parse_path(s, strlen(s), 0, 0, &a, &consumed),
	    ADDR_OK);
	assert_int_equal(consumed, 7);
	assert_int_equal(addr_parse_path("<a@b@c>", 7, 0, 0, &a, &consumed),
	    ADDR_ERR_SYNTAX);
	assert_int_equal(consumed, 0);
	assert_int_equal(a.flags, 0);
	assert_int_equal(a.null, 0);
	assert_string_equal(a.domain, "");
}

static void
test_format(void **state)
{
	struct mailaddr	 a;
	size_t		 consumed;
	char		 out[300];

	(void)state;
	assert_int_equal(addr_parse_path("<a@b.c.>", 8, 0, 0, &a, &consumed),
	    ADDR_OK);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "a@b.c");
	/* Exactly enough room, then one byte short. */
	assert_int_equal(addr_format(&a, out, 6), 0);
	assert_string_equal(out, "a@b.c");
	assert_int_equal(addr_format(&a, out, 5), -1);

	assert_int_equal(addr_parse_path("<>", 2, 1, 0, &a, &consumed),
	    ADDR_OK);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "");

	assert_int_equal(addr_parse_path("<\"a b\"@[IPv6:::1]>", 18, 0, 0, &a,
	    &consumed), ADDR_OK);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "\"a b\"@[IPv6:::1]");
}

static void
test_domain_eq(void **state)
{
	(void)state;
	assert_true(addr_domain_eq("example.com", "example.com"));
	assert_true(addr_domain_eq("Example.COM", "eXample.com"));
	assert_true(addr_domain_eq("example.com.", "example.com"));
	assert_true(addr_domain_eq("example.com", "EXAMPLE.COM."));
	assert_true(addr_domain_eq("example.com.", "example.com."));
	assert_false(addr_domain_eq("example.com", "example.co"));
	assert_false(addr_domain_eq("example.co", "example.com"));
	assert_false(addr_domain_eq("example.com", "xample.com"));
	assert_false(addr_domain_eq("example.com..", "example.com"));
	assert_false(addr_domain_eq("a.example.com", "example.com"));
	assert_false(addr_domain_eq("", "a"));
	assert_true(addr_domain_eq("", ""));
	assert_false(addr_domain_eq("[127.0.0.1]", "127.0.0.1"));
}

static void
test_strerror(void **state)
{
	const char	*s[6];
	int		 i, j;

	(void)state;
	for (i = 0; i < 6; i++) {
		s[i] = addr_strerror((enum addr_error)i);
		assert_non_null(s[i]);
		for (j = 0; j < i; j++)
			assert_string_not_equal(s[i], s[j]);
	}
	assert_string_equal(addr_strerror(ADDR_OK), "ok");
	assert_non_null(addr_strerror((enum addr_error)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_consumed_and_reuse),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_domain_eq),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
