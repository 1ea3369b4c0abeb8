/*
 * The relay's check of a worker's commit (IMSG_MSG_COMMIT, encoded as
 * smtpd/session.c session_msg_commit() does): a valid envelope passes,
 * and every way a lying worker can bend one is refused.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imsg.h"
#include "proto.h"
#include "envelope.h"

#define HDRSZ	sizeof(struct imsg_hdr)
#define MAXR	(ENV_RCPT_MAX + 2)

/* An envelope as a worker would send it, field by field. */
struct commit {
	const char	*peer_ip;
	uint32_t	 peer_port;
	const char	*helo;
	const char	*from;
	uint32_t	 nrcpt;		/* as claimed */
	uint32_t	 nsent;		/* strings actually sent */
	const char	*rcpts[MAXR];
	uint64_t	 size;
	uint32_t	 flags;
	const char	*mail_opts;	/* NULL for "" */
	const char	*rcpt_opts;
	const char	*tls_proto;	/* NULL for "" */
	int		 no_tail;	/* leave out size, flags, options */
	const void	*extra;		/* trailing bytes */
	size_t		 extralen;
};

static void
commit_init(struct commit *c)
{
	memset(c, 0, sizeof(*c));
	c->peer_ip = "192.0.2.1";
	c->peer_port = 54321;
	c->helo = "client.example";
	c->from = "sender@example.org";
	c->nrcpt = c->nsent = 2;
	c->rcpts[0] = "a@example.net";
	c->rcpts[1] = "\"b c\"@example.net";
	c->size = 1234;
	c->flags = ENV_F_ESMTP | ENV_F_8BIT;
}

/* Encode c and run envelope_decode() on it; env filled on success. */
static int
decode(const struct commit *c, struct envelope *env, int smtputf8)
{
	struct imsg_out	 out;
	struct imsg	 imsg;
	uint32_t	 i;
	int		 rc;

	imsg_out_init(&out, IMSG_MSG_COMMIT, 7, -1);
	imsg_add_str(&out, c->peer_ip);
	imsg_add_u32(&out, c->peer_port);
	imsg_add_str(&out, c->helo);
	imsg_add_str(&out, c->from);
	imsg_add_u32(&out, c->nrcpt);
	for (i = 0; i < c->nsent; i++)
		imsg_add_str(&out, c->rcpts[i]);
	if (!c->no_tail) {
		imsg_add_u64(&out, c->size);
		imsg_add_u32(&out, c->flags);
		imsg_add_str(&out, c->mail_opts ? c->mail_opts : "");
		imsg_add_str(&out, c->rcpt_opts ? c->rcpt_opts : "");
		imsg_add_str(&out, c->tls_proto ? c->tls_proto : "");
	}
	if (c->extralen > 0)
		imsg_add_data(&out, c->extra, c->extralen);
	assert_false(out.overflow);

	/* The message as imsgbuf_get() would hand it over. */
	memset(&imsg, 0, sizeof(imsg));
	imsg.hdr.type = IMSG_MSG_COMMIT;
	imsg.hdr.len = (uint32_t)out.len;
	imsg.hdr.peerid = 7;
	imsg.fd = -1;
	imsg.datalen = out.len - HDRSZ;
	imsg.data = malloc(imsg.datalen);
	assert_non_null(imsg.data);
	memcpy(imsg.data, out.buf + HDRSZ, imsg.datalen);
	imsg_out_free(&out);
	rc = envelope_decode(&imsg, env, smtputf8);
	imsg_free(&imsg);
	if (rc == -1)
		assert_null(env->rcpts);
	return rc;
}

static int
decode_ok(const struct commit *c, int smtputf8)
{
	struct envelope	 env;
	int		 rc;

	rc = decode(c, &env, smtputf8);
	envelope_free(&env);
	return rc;
}

static void
test_valid(void **state)
{
	struct commit	 c;
	struct envelope	 env;

	(void)state;
	commit_init(&c);
	assert_int_equal(decode(&c, &env, 0), 0);
	assert_string_equal(env.peer_ip, "192.0.2.1");
	assert_int_equal(env.peer_port, 54321);
	assert_string_equal(env.helo, "client.example");
	assert_string_equal(env.mail_from, "sender@example.org");
	assert_int_equal(env.nrcpt, 2);
	assert_string_equal(env.rcpts[0].path, "a@example.net");
	assert_string_equal(env.rcpts[1].path, "\"b c\"@example.net");
	/* Parsed once, for the relay's policy. */
	assert_string_equal(env.rcpts[0].addr.local, "a");
	assert_string_equal(env.rcpts[0].addr.domain, "example.net");
	assert_true(env.rcpts[1].addr.flags & ADDR_F_QUOTED);
	assert_string_equal(env.from.domain, "example.org");
	assert_false(env.from.null);
	assert_int_equal(env.size, 1234);
	assert_int_equal(env.flags, ENV_F_ESMTP | ENV_F_8BIT);
	envelope_free(&env);
	assert_null(env.rcpts);
	envelope_free(&env);

	/* IPv6, the null sender, a literal HELO, port 0 and 65535. */
	c.peer_ip = "2001:db8::25";
	c.from = "";
	c.helo = "[192.0.2.1]";
	c.peer_port = 65535;
	c.flags = ENV_F_MASK;
	c.size = UINT64_MAX;
	assert_int_equal(decode_ok(&c, 1), 0);
	c.peer_ip = "::ffff:192.0.2.1";
	c.peer_port = 0;
	c.flags = 0;
	c.size = 0;
	assert_int_equal(decode_ok(&c, 0), 0);
	/* A HELO of ENV_HELO_MAX bytes. */
	{
		char	 helo[ENV_HELO_MAX + 1];

		memset(helo, 'h', ENV_HELO_MAX);
		helo[ENV_HELO_MAX] = '\0';
		c.helo = helo;
		assert_int_equal(decode_ok(&c, 0), 0);
	}
}

static void
test_peer(void **state)
{
	static const char	*bad[] = {
		"", "localhost", "192.0.2.1:25", "[192.0.2.1]", "192.0.2.256",
		"192.0.2", "192.0.2.1 ", " 192.0.2.1", "fe80::1%lo",
		"2001:db8::25/64", "IPv6:2001:db8::25", "0x7f000001",
		"192.0.2.1\n", "unix:/tmp/socket",
	};
	struct commit		 c;
	char			 longip[64];
	size_t			 i;

	(void)state;
	commit_init(&c);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.peer_ip = bad[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("peer accepted: \"%s\"", bad[i]);
	}
	memset(longip, '1', sizeof(longip) - 1);
	longip[sizeof(longip) - 1] = '\0';
	c.peer_ip = longip;
	assert_int_equal(decode_ok(&c, 1), -1);

	commit_init(&c);
	c.peer_port = 65536;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.peer_port = UINT32_MAX;
	assert_int_equal(decode_ok(&c, 1), -1);
}

static void
test_helo(void **state)
{
	static const char	*bad[] = {
		"", " ", "a b", "a\tb", "x\r\nBcc: victim@example.org",
		"x\n", "\r", "a\x7f", "\x01", "client.example ",
	};
	struct commit		 c;
	char			 helo[ENV_HELO_MAX + 2];
	size_t			 i;

	(void)state;
	commit_init(&c);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.helo = bad[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("helo accepted: \"%s\"", bad[i]);
	}
	/* 8-bit only with SMTPUTF8, as the worker checks it. */
	c.helo = "b\xc3\xbc" "cher.example";
	assert_int_equal(decode_ok(&c, 0), -1);
	assert_int_equal(decode_ok(&c, 1), 0);
	/* Longer than a worker accepts. */
	memset(helo, 'h', ENV_HELO_MAX + 1);
	helo[ENV_HELO_MAX + 1] = '\0';
	c.helo = helo;
	assert_int_equal(decode_ok(&c, 1), -1);
}

static void
test_rcpt_count(void **state)
{
	struct commit	 c;
	struct envelope	 env;
	uint32_t	 i;

	(void)state;
	commit_init(&c);
	c.nrcpt = c.nsent = 0;
	assert_int_equal(decode_ok(&c, 0), -1);

	/* ENV_RCPT_MAX short addresses fit a message, and pass. */
	for (i = 0; i < ENV_RCPT_MAX + 1; i++)
		c.rcpts[i] = "a@b.c";
	c.nrcpt = c.nsent = ENV_RCPT_MAX;
	assert_int_equal(decode(&c, &env, 0), 0);
	assert_int_equal(env.nrcpt, ENV_RCPT_MAX);
	assert_string_equal(env.rcpts[ENV_RCPT_MAX - 1].path, "a@b.c");
	envelope_free(&env);
	c.nrcpt = c.nsent = ENV_RCPT_MAX + 1;
	assert_int_equal(decode_ok(&c, 0), -1);
	/* A count that does not match the strings. */
	c.nrcpt = UINT32_MAX;
	c.nsent = 2;
	assert_int_equal(decode_ok(&c, 0), -1);
	c.nrcpt = 3;
	assert_int_equal(decode_ok(&c, 0), -1);
	c.nrcpt = 1;
	assert_int_equal(decode_ok(&c, 0), -1);
}

static void
test_addresses(void **state)
{
	static const char	*bad_from[] = {
		"sender", "<sender@example.org>", "sender@example.org>",
		"a@b@c", "@a.example:u@b.example", "u@example.org> SIZE=1",
		"u@example.org>\r\nRCPT TO:<v@x", "u @example.org",
		"u@exa mple.org", "u@", "@example.org", "u@[999.1.1.1]",
		"u..v@example.org", "u@example.org\n",
	};
	static const char	*bad_rcpt[] = {
		"", "postmaster", "<a@example.net>", "a@example.net> <b@x",
		"@a:u@b.example", "a@b@example.net",
	};
	struct commit		 c;
	char			 big[400];
	size_t			 i;

	(void)state;
	commit_init(&c);
	for (i = 0; i < sizeof(bad_from) / sizeof(bad_from[0]); i++) {
		c.from = bad_from[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("from accepted: \"%s\"", bad_from[i]);
	}
	commit_init(&c);
	for (i = 0; i < sizeof(bad_from) / sizeof(bad_from[0]); i++) {
		c.rcpts[1] = bad_from[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("rcpt accepted: \"%s\"", bad_from[i]);
	}
	for (i = 0; i < sizeof(bad_rcpt) / sizeof(bad_rcpt[0]); i++) {
		c.rcpts[0] = bad_rcpt[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("rcpt accepted: \"%s\"", bad_rcpt[i]);
	}

	/* UTF-8 only with SMTPUTF8. */
	commit_init(&c);
	c.rcpts[0] = "j\xc3\xb6rg@example.net";
	assert_int_equal(decode_ok(&c, 0), -1);
	assert_int_equal(decode_ok(&c, 1), 0);
	commit_init(&c);
	c.from = "j\xc3\xb6rg@example.org";
	assert_int_equal(decode_ok(&c, 0), -1);
	assert_int_equal(decode_ok(&c, 1), 0);
	/* Malformed UTF-8 never. */
	c.from = "j\xc3@example.org";
	assert_int_equal(decode_ok(&c, 1), -1);

	/* %, ! and quoted @ parse (the policy refuses them later). */
	commit_init(&c);
	c.rcpts[0] = "u%v@example.net";
	assert_int_equal(decode_ok(&c, 0), 0);

	/* Longer than a path may be. */
	commit_init(&c);
	memset(big, 'a', sizeof(big));
	memcpy(big + 60, "@", 1);
	memset(big + 61, 'b', 200);
	big[261] = '\0';
	c.rcpts[0] = big;
	assert_int_equal(decode_ok(&c, 0), -1);
	big[65] = '\0';
	assert_int_equal(decode_ok(&c, 0), 0);
	memset(big, 'a', 65);
	memcpy(big + 65, "@b.example", 11);
	assert_int_equal(decode_ok(&c, 0), -1);
	/* A NUL inside a string. */
	commit_init(&c);
	{
		struct commit	 d = c;

		d.nsent = 1;
		d.nrcpt = 2;
		d.no_tail = 1;
		d.extra = "\x0f\0\0\0" "a\0b@example.net" "\0\0\0\0\0\0\0\0"
		    "\0\0\0\0" "\0\0\0\0\0\0\0\0\0\0\0\0";
		d.extralen = 4 + 15 + 12 + 12;
		assert_int_equal(decode_ok(&d, 0), -1);
		d.extra = "\x0f\0\0\0" "a.b@example.net" "\0\0\0\0\0\0\0\0"
		    "\0\0\0\0" "\0\0\0\0\0\0\0\0\0\0\0\0";
		assert_int_equal(decode_ok(&d, 0), 0);
	}
}

static void
test_flags_and_tail(void **state)
{
	struct commit	 c;
	uint32_t	 bit;

	(void)state;
	commit_init(&c);
	for (bit = ENV_F_MASK + 1; bit != 0; bit <<= 1) {
		c.flags = bit;
		if (decode_ok(&c, 1) != -1)
			fail_msg("flag 0x%x accepted", bit);
		c.flags = bit | ENV_F_ESMTP;
		assert_int_equal(decode_ok(&c, 1), -1);
	}
	c.flags = ENV_F_MASK;
	assert_int_equal(decode_ok(&c, 1), 0);

	/* Trailing bytes, however few. */
	c.extra = "x";
	c.extralen = 1;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extra = "\0\0\0\0";
	c.extralen = 4;
	assert_int_equal(decode_ok(&c, 1), -1);
	/* Missing size, flags, options and TLS, or some of them. */
	c.extralen = 0;
	c.no_tail = 1;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extra = "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	c.extralen = 8;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extralen = 12;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extralen = 16;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extralen = 20;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extralen = 23;
	assert_int_equal(decode_ok(&c, 1), -1);
	c.extralen = 24;
	assert_int_equal(decode_ok(&c, 1), 0);
}

/* The MAIL and RCPT options the debug printer shows (bytes flavour). */
static void
test_options(void **state)
{
	static const char *mail_ok[] = { "SIZE=100", "BODY=8BITMIME",
	    "SIZE=0 BODY=7BIT BODY=8BITMIME SMTPUTF8", "BODY=7BIT" };
	static const char *mail_bad[] = { "size=100", "SIZE=", "SIZE=1x",
	    "SIZE=100 ", " SIZE=100", "SIZE=1  BODY=7BIT", "BODY=BINARYMIME",
	    "FOO=1", "AUTH=<>", "SMTPUTF8=1", "SIZE=-1" };
	static const char *rcpt_ok[] = { "NOTIFY=NEVER", "A B=C",
	    "ORCPT=RFC822;X@Y \xc3\xa9\x01" };
	static const char *rcpt_bad[] = { " A", "A ", "A  B", "a", "A\tB",
	    "A\rB", "A\nB", "A\x1f" "B", "A\x0b" "B" };
	struct commit	 c;
	struct envelope	 env;
	size_t		 i;

	(void)state;
	commit_init(&c);
	c.flags = ENV_F_ESMTP | ENV_F_8BIT | ENV_F_SMTPUTF8;
	for (i = 0; i < sizeof(mail_ok) / sizeof(mail_ok[0]); i++) {
		c.mail_opts = mail_ok[i];
		if (decode(&c, &env, 1) != 0)
			fail_msg("%s refused", mail_ok[i]);
		assert_string_equal(env.mail_opts, mail_ok[i]);
		envelope_free(&env);
	}
	for (i = 0; i < sizeof(mail_bad) / sizeof(mail_bad[0]); i++) {
		c.mail_opts = mail_bad[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("%s accepted", mail_bad[i]);
	}
	/* Options that contradict the flags. */
	c.flags = ENV_F_ESMTP;
	c.mail_opts = "BODY=8BITMIME";
	assert_int_equal(decode_ok(&c, 1), -1);
	c.mail_opts = "SMTPUTF8";
	assert_int_equal(decode_ok(&c, 1), -1);
	c.mail_opts = NULL;
	for (i = 0; i < sizeof(rcpt_ok) / sizeof(rcpt_ok[0]); i++) {
		c.rcpt_opts = rcpt_ok[i];
		if (decode(&c, &env, 1) != 0)
			fail_msg("%s refused", rcpt_ok[i]);
		assert_string_equal(env.rcpt_opts, rcpt_ok[i]);
		envelope_free(&env);
	}
	for (i = 0; i < sizeof(rcpt_bad) / sizeof(rcpt_bad[0]); i++) {
		c.rcpt_opts = rcpt_bad[i];
		if (decode_ok(&c, 1) != -1)
			fail_msg("%s accepted", rcpt_bad[i]);
	}
	/* Longer than a command line can hold. */
	{
		char	 big[ENV_OPTS_MAX + 2];

		memset(big, 'A', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		c.rcpt_opts = big;
		assert_int_equal(decode_ok(&c, 1), -1);
		big[sizeof(big) - 2] = '\0';
		assert_int_equal(decode_ok(&c, 1), 0);
	}
}

/*
 * The session's TLS protocol, only logged: a bare name of letters,
 * digits and dots, short, or none; anything else could forge a field.
 */
static void
test_tls_proto(void **state)
{
	static const char	*ok[] = { "", "TLSv1.3", "TLSv1.2", "DTLSv1" };
	static const char	*bad[] = { "TLS v1", "TLSv1.3 user=root",
	    "TLS=1", "TLS\"", "TLSv1.3\n", "TLSv1.3.4.5.6.7.8.9.0" };
	struct commit		 c;
	struct envelope		 env;
	size_t			 i;

	(void)state;
	commit_init(&c);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		c.tls_proto = ok[i];
		if (decode(&c, &env, 0) != 0)
			fail_msg("%s refused", ok[i]);
		assert_string_equal(env.tls_proto, ok[i]);
		envelope_free(&env);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.tls_proto = bad[i];
		if (decode_ok(&c, 0) != -1)
			fail_msg("%s accepted", bad[i]);
	}
}

/* Every proper prefix of a valid payload is refused. */
static void
test_truncated(void **state)
{
	struct imsg_out	 out;
	struct imsg	 imsg;
	struct envelope	 env;
	size_t		 len, i;

	(void)state;
	imsg_out_init(&out, IMSG_MSG_COMMIT, 7, -1);
	imsg_add_str(&out, "192.0.2.1");
	imsg_add_u32(&out, 25);
	imsg_add_str(&out, "client.example");
	imsg_add_str(&out, "s@example.org");
	imsg_add_u32(&out, 2);
	imsg_add_str(&out, "a@example.net");
	imsg_add_str(&out, "b@example.net");
	imsg_add_u64(&out, 99);
	imsg_add_u32(&out, 0);
	imsg_add_str(&out, "SIZE=99");
	imsg_add_str(&out, "X");
	imsg_add_str(&out, "TLSv1.3");
	len = out.len - HDRSZ;
	for (i = 0; i <= len; i++) {
		memset(&imsg, 0, sizeof(imsg));
		imsg.fd = -1;
		imsg.datalen = i;
		imsg.data = malloc(i > 0 ? i : 1);
		assert_non_null(imsg.data);
		memcpy(imsg.data, out.buf + HDRSZ, i);
		assert_int_equal(envelope_decode(&imsg, &env, 0),
		    i == len ? 0 : -1);
		envelope_free(&env);
		imsg_free(&imsg);
	}
	imsg_out_free(&out);
}

static const char *
list_rcpt(const void *arg, uint32_t i)
{
	return ((const char *const *)arg)[i];
}

/* imsg as imsgbuf_get() would hand out what out holds. */
static void
as_received(struct imsg_out *out, struct imsg *imsg)
{
	assert_false(out->overflow);
	memset(imsg, 0, sizeof(*imsg));
	imsg->hdr.type = IMSG_MSG_COMMIT;
	imsg->hdr.len = (uint32_t)out->len;
	imsg->fd = -1;
	imsg->datalen = out->len - HDRSZ;
	assert_non_null(imsg->data = malloc(imsg->datalen));
	memcpy(imsg->data, out->buf + HDRSZ, imsg->datalen);
}

/* The worker's encoder and the relay's decoder agree, both ways. */
static void
test_encode_roundtrip(void **state)
{
	static const char	*rcpts[] = { "a@example.net", "postmaster" };
	struct envelope_ref	 e, back;
	struct envelope		 env;
	struct imsg_out		*out, *again;
	struct imsg		 imsg;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.peer_ip = "192.0.2.7";
	e.peer_port = 25;
	e.helo = "client.example";
	e.mail_from = "";
	e.nrcpt = 2;
	e.rcpt = list_rcpt;
	e.arg = rcpts;
	e.size = 99;
	e.flags = ENV_F_8BIT;
	e.mail_opts = "BODY=8BITMIME";
	e.tls_proto = "TLSv1.2";
	assert_non_null(out = malloc(sizeof(*out)));
	assert_non_null(again = malloc(sizeof(*again)));
	imsg_out_init(out, IMSG_MSG_COMMIT, 1, -1);
	envelope_encode(out, &e);
	as_received(out, &imsg);
	assert_int_equal(envelope_decode(&imsg, &env, 0), 0);
	imsg_free(&imsg);
	assert_true(env.from.null);
	assert_false(env.rcpts[0].postmaster);
	assert_true(env.rcpts[1].postmaster);
	assert_string_equal(env.rcpt_opts, "");
	assert_string_equal(env.tls_proto, "TLSv1.2");
	envelope_ref(&env, &back);
	imsg_out_init(again, IMSG_MSG_COMMIT, 1, -1);
	envelope_encode(again, &back);
	assert_int_equal(again->len, out->len);
	assert_memory_equal(again->buf + HDRSZ, out->buf + HDRSZ,
	    out->len - HDRSZ);
	envelope_free(&env);
	imsg_out_free(out);
	free(out);
	imsg_out_free(again);
	free(again);
}

/* One HELO check for the session and the relay. */
static void
test_helo_valid(void **state)
{
	char	 big[ENV_HELO_MAX + 2];

	(void)state;
	assert_int_equal(helo_valid("mx.example", 0), HELO_OK);
	assert_int_equal(helo_valid("[192.0.2.1]", 0), HELO_OK);
	assert_int_equal(helo_valid("", 0), HELO_SYNTAX);
	assert_int_equal(helo_valid("a b", 0), HELO_SYNTAX);
	assert_int_equal(helo_valid("a\x7f", 1), HELO_SYNTAX);
	assert_int_equal(helo_valid("b\xc3\xbc" "cher", 0), HELO_SYNTAX);
	assert_int_equal(helo_valid("b\xc3\xbc" "cher", 1), HELO_OK);
	assert_int_equal(helo_valid("b\xc3", 1), HELO_UTF8);
	assert_int_equal(helo_valid("a\xe2\x80\xae" "b", 1), HELO_UTF8);
	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(helo_valid(big, 0), HELO_SYNTAX);
	big[ENV_HELO_MAX] = '\0';
	assert_int_equal(helo_valid(big, 0), HELO_OK);
}

/* A deliver run's envelope, from the relay to the parent. */
static void
test_deliver_env(void **state)
{
	static const char	*rcpts[] = { "a@example.net", "b@example.net" };
	struct envelope_ref	 e;
	struct deliver_env	 d;
	struct imsg_out		*out;
	struct imsg		 imsg, cut;

	(void)state;
	memset(&e, 0, sizeof(e));
	e.peer_ip = "2001:db8::1";
	e.peer_port = 4567;
	e.helo = "client.example";
	e.mail_from = "s@example.org";
	e.nrcpt = 2;
	e.rcpt = list_rcpt;
	e.arg = rcpts;
	assert_non_null(out = malloc(sizeof(*out)));
	imsg_out_init(out, IMSG_DELIVER_RUN, 1, -1);
	deliver_env_encode(out, "0123456789ABCDEF", &e);
	as_received(out, &imsg);
	imsg_out_free(out);
	free(out);
	assert_int_equal(deliver_env_decode(&imsg, &d), 0);
	assert_string_equal(d.qid, "0123456789ABCDEF");
	assert_string_equal(d.peer, "2001:db8::1:4567");
	assert_string_equal(d.helo, "client.example");
	assert_string_equal(d.from, "s@example.org");
	assert_int_equal(d.nrcpt, 2);
	assert_string_equal(d.rcpts, "a@example.net,b@example.net");
	deliver_env_free(&d);
	assert_null(d.rcpts);
	/* Short by a byte, or a byte too long: refused, nothing kept. */
	cut = imsg;
	cut.rpos = 0;
	cut.datalen--;
	assert_int_equal(deliver_env_decode(&cut, &d), -1);
	assert_null(d.rcpts);
	cut.datalen += 2;
	cut.rpos = 0;
	assert_non_null(cut.data = calloc(1, cut.datalen));
	memcpy(cut.data, imsg.data, imsg.datalen);
	assert_int_equal(deliver_env_decode(&cut, &d), -1);
	assert_null(d.rcpts);
	free(cut.data);
	imsg_free(&imsg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_peer),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_rcpt_count),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_flags_and_tail),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_tls_proto),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_encode_roundtrip),
		cmocka_unit_test(test_helo_valid),
		cmocka_unit_test(test_deliver_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
