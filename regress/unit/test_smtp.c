/*
 * The SMTP engine driven without a socket: bytes in, replies out, and
 * the relay's answers given by hand through the ops.
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

#include <bsd/string.h>

#include "conf.h"
#include "smtpd/smtp.h"

struct harness {
	struct smtpd_conf	conf;
	struct smtp_session	s;
	int			opens;
	int			prefetches;
	int			commits;
	int			aborts;
	int			auths;
	int			refused[REFUSED_NREASONS];
	char			user[256];
	char			password[256];
};

static void
h_open(struct smtp_session *s)
{
	((struct harness *)s->owner)->opens++;
}

static void
h_commit(struct smtp_session *s)
{
	((struct harness *)s->owner)->commits++;
}

static void
h_abort(struct smtp_session *s)
{
	((struct harness *)s->owner)->aborts++;
}

static void
h_auth(struct smtp_session *s, const char *user, const char *password)
{
	struct harness	*h = s->owner;

	h->auths++;
	strlcpy(h->user, user, sizeof(h->user));
	strlcpy(h->password, password, sizeof(h->password));
}

static void
h_refused(struct smtp_session *s, uint32_t reason)
{
	assert_true(reason < REFUSED_NREASONS);
	((struct harness *)s->owner)->refused[reason]++;
}

static void
h_prefetch(struct smtp_session *s)
{
	((struct harness *)s->owner)->prefetches++;
}

static const struct smtp_ops h_ops = { h_open, h_commit, h_abort, h_auth,
	h_refused, h_prefetch };

static int
setup(void **state)
{
	struct harness	*h = calloc(1, sizeof(*h));

	conf_defaults(&h->conf);
	strcpy(h->conf.hostname, "mx.test");
	smtp_init(&h->s, &h->conf, &h_ops, h, "192.0.2.1", 4242);
	*state = h;
	return 0;
}

static int
teardown(void **state)
{
	struct harness	*h = *state;

	smtp_free(&h->s);
	free(h);
	return 0;
}

/* Feed bytes and run the engine. */
static void
feed(struct harness *h, const char *data, size_t len)
{
	uint8_t	*p;
	size_t	 avail, n;

	while (len > 0) {
		p = smtp_input_space(&h->s, &avail);
		assert_non_null(p);
		assert_true(avail > 0);
		n = len < avail ? len : avail;
		memcpy(p, data, n);
		smtp_input_fill(&h->s, n);
		smtp_process(&h->s);
		data += n;
		len -= n;
	}
}

static void
feeds(struct harness *h, const char *str)
{
	feed(h, str, strlen(str));
}

/* Take all replies written so far as a string. */
static char *
replies(struct harness *h)
{
	size_t	 n = buf_left(&h->s.out);
	char	*r = malloc(n + 1);

	if (n > 0)
		memcpy(r, h->s.out.data + h->s.out.off, n);
	r[n] = '\0';
	buf_drain(&h->s.out, n);
	return r;
}

static void
expect(struct harness *h, const char *want)
{
	char	*got = replies(h);

	assert_string_equal(got, want);
	free(got);
}

static void
test_greeting_and_helo(void **state)
{
	struct harness	*h = *state;

	smtp_greet(&h->s);
	expect(h, "220 mx.test ESMTP smtpd\r\n");
	feeds(h, "HELO client.test\r\n");
	expect(h, "250 mx.test\r\n");
	feeds(h, "MAIL FROM:<a@b.test>\r\n");
	expect(h, "250 Ok\r\n");
}

static void
test_ehlo_keywords(void **state)
{
	struct harness	*h = *state;

	feeds(h, "ehlo client.test\r\n");
	expect(h, "250-mx.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
	    "250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n");
	h->conf.smtputf8 = 1;
	feeds(h, "EHLO client.test\r\n");
	expect(h, "250-mx.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
	    "250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
	    "250 HELP\r\n");
}

static void
test_order_errors(void **state)
{
	struct harness	*h = *state;

	feeds(h, "MAIL FROM:<a@b.test>\r\n");
	expect(h, "503 Error: send HELO/EHLO first\r\n");
	feeds(h, "EHLO c\r\nRCPT TO:<a@b.test>\r\nDATA\r\n");
	expect(h, "250-mx.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
	    "250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n"
	    "503 5.5.1 Error: need MAIL command\r\n"
	    "503 5.5.1 Error: need RCPT command\r\n");
	feeds(h, "MAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n");
	expect(h, "250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL command\r\n");
	assert_int_equal(h->s.errors, 4);
}

static void
test_pipelined_transaction(void **state)
{
	struct harness	*h = *state;
	int		 fd = memfd_create("t", 0);
	char		 spool[256];
	ssize_t		 n;

	feeds(h, "EHLO c\r\n");
	free(replies(h));
	feeds(h, "MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n"
	    "RCPT TO:<x@y.test>\r\nRCPT TO:<z@y.test>\r\nDATA\r\n"
	    "Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
	/* The first accepted RCPT asks ahead, once; DATA still waits. */
	assert_int_equal(h->prefetches, 1);
	assert_int_equal(h->opens, 1);
	assert_int_equal(h->s.wait, SMTP_WAIT_OPEN);
	expect(h, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
	assert_true(h->s.body_8bit);
	assert_int_equal(h->s.nrcpt, 2);
	smtp_open_done(&h->s, fd);
	smtp_process(&h->s);
	expect(h, "354 End data with <CR><LF>.<CR><LF>\r\n");
	assert_int_equal(h->commits, 1);
	assert_int_equal(h->s.datalen, strlen("Subject: hi\r\n\r\n.dot\r\n"));
	n = pread(fd, spool, sizeof(spool), 0);
	assert_int_equal(n, (ssize_t)h->s.datalen);
	assert_memory_equal(spool, "Subject: hi\r\n\r\n.dot\r\n", n);
	assert_string_equal(h->s.mail_from, "");
	smtp_commit_done(&h->s, 1, "0123456789ABCDEF");
	smtp_process(&h->s);
	expect(h, "250 2.0.0 Ok: queued as 0123456789ABCDEF\r\n"
	    "221 2.0.0 Bye\r\n");
	assert_int_equal(h->s.state, SMTP_CLOSING);
	assert_int_equal(h->s.nrcpt, 0);
}

/* Start a transaction that has reached the 354. */
static int
start_data(struct harness *h)
{
	int	 fd = memfd_create("t", 0);

	feeds(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
	    "DATA\r\n");
	smtp_open_done(&h->s, fd);
	free(replies(h));
	return fd;
}

static void
test_smuggling_bare_lf(void **state)
{
	struct harness	*h = *state;

	start_data(h);
	/* ".\r\n" after a bare LF is not the end of the data. */
	feeds(h, "a\n.\r\nMAIL FROM:<evil@x.test>\r\n");
	assert_int_equal(h->commits, 0);
	assert_int_equal(h->s.state, SMTP_DATA);
	expect(h, "");
	feeds(h, "\r\n.\r\n");
	expect(h, "550 5.5.2 Error: bare LF or CR in message data\r\n");
	assert_int_equal(h->commits, 0);
	assert_int_equal(h->aborts, 1);
	assert_int_equal(h->s.state, SMTP_HELO);
}

static void
test_smuggling_bare_cr(void **state)
{
	struct harness	*h = *state;

	start_data(h);
	feeds(h, "a\r.\r\n");
	assert_int_equal(h->s.state, SMTP_DATA);
	feeds(h, ".\r\n");
	expect(h, "550 5.5.2 Error: bare LF or CR in message data\r\n");
}

static void
test_data_limits(void **state)
{
	struct harness	*h = *state;
	char		 line[1100];

	h->conf.max_size = 20;
	start_data(h);
	feeds(h, "0123456789\r\n0123456789\r\n.\r\n");
	expect(h, "552 5.3.4 Error: message too big\r\n");
	h->conf.max_size = DEFAULT_MAX_SIZE;
	feeds(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	smtp_open_done(&h->s, memfd_create("t", 0));
	free(replies(h));
	memset(line, 'x', 999);
	memcpy(line + 999, "\r\n.\r\n", 6);
	feeds(h, line);
	expect(h, "550 5.5.2 Error: line longer than 1000 octets in message "
	    "data\r\n");
	/* Exactly 998 octets is allowed. */
	feeds(h, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	smtp_open_done(&h->s, memfd_create("t", 0));
	free(replies(h));
	memcpy(line + 998, "\r\n.\r\n", 6);
	feeds(h, line);
	assert_int_equal(h->commits, 1);
	assert_int_equal(h->s.datalen, 1000);
}

static void
test_command_errors(void **state)
{
	struct harness	*h = *state;
	char		 line[600];

	feeds(h, "NOOP\nNOOP\r\n");
	expect(h, "500 Error: bare LF or CR in command\r\n");
	memset(line, 'A', 511);
	memcpy(line + 511, "\r\nNOOP\r\n", 9);
	feeds(h, line);
	expect(h, "500 Error: line too long\r\n250 Ok\r\n");
	feeds(h, "FOO\r\nVRFY\r\nVRFY x\r\nHELP\r\nSTARTTLS\r\nRSET x\r\n");
	expect(h, "500 Error: command not recognized\r\n"
	    "501 Syntax: VRFY address\r\n"
	    "252 Cannot VRFY user, but will accept message and attempt "
	    "delivery\r\n"
	    "214 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n"
	    "502 Error: command not implemented\r\n"
	    "501 Syntax: RSET\r\n");
}

/* Issue 9 item 10d: STARTTLS forgets an authentication made before it. */
static void
test_starttls_resets_auth(void **state)
{
	struct harness	*h = *state;

	h->s.authenticated = 1;
	strcpy(h->s.auth_user, "someone");
	h->s.state = SMTP_HELO;
	h->s.wait = SMTP_WAIT_TLS;
	smtp_tls_started(&h->s);
	assert_int_equal(h->s.authenticated, 0);
	assert_string_equal(h->s.auth_user, "");
	assert_int_equal(h->s.state, SMTP_CONNECTED);
	feeds(h, "MAIL FROM:<a@example.com>\r\n");
	expect(h, "503 Error: send HELO/EHLO first\r\n");
}

static void
test_too_many_errors(void **state)
{
	struct harness	*h = *state;
	int		 i;

	for (i = 0; i < DEFAULT_MAX_BAD - 1; i++)
		feeds(h, "BAD\r\n");
	assert_int_not_equal(h->s.state, SMTP_CLOSING);
	feeds(h, "BAD\r\nNOOP\r\n");
	assert_int_equal(h->s.state, SMTP_CLOSING);
	{
		char *r = replies(h);

		assert_non_null(strstr(r, "421 mx.test Error: too many "
		    "errors\r\n"));
		/* Nothing after the 421. */
		assert_null(strstr(r, "250"));
		free(r);
	}
}

static void
test_addresses(void **state)
{
	struct harness	*h = *state;

	feeds(h, "EHLO c\r\n");
	free(replies(h));
	feeds(h, "MAIL FROM:<@a.test:b@c.test>\r\nMAIL FROM:a@b.test\r\n"
	    "MAIL FROM:<a@b.test> SIZE=99999999999\r\n"
	    "MAIL FROM:<a@b.test> FOO=1\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\n"
	    "MAIL FROM: <a@b.test>\r\nRCPT TO:<>\r\n"
	    "RCPT TO:<a@b.test> NOTIFY=NEVER\r\nRCPT TO:<a@b@c.test>\r\n");
	expect(h, "553 5.1.7 Source routes are not accepted\r\n"
	    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
	    "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
	    "555 5.5.4 Unsupported parameter\r\n"
	    "555 5.5.4 Unsupported parameter\r\n"
	    "250 2.1.0 Ok\r\n"
	    "553 5.1.3 Null address not allowed here\r\n"
	    "555 5.5.4 Unsupported parameter\r\n"
	    "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	/* No recipient accepted: nothing asked of the relay ahead. */
	assert_int_equal(h->prefetches, 0);
}

static void
test_too_many_recipients(void **state)
{
	struct harness	*h = *state;
	int		 i;

	h->conf.max_rcpt = 3;
	feeds(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
	free(replies(h));
	for (i = 0; i < 4; i++)
		feeds(h, "RCPT TO:<a@b.test>\r\n");
	expect(h, "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	    "452 4.5.3 Error: too many recipients\r\n");
}

static void
test_relay_failure(void **state)
{
	struct harness	*h = *state;

	feeds(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
	    "DATA\r\n");
	free(replies(h));
	smtp_open_done(&h->s, -1);
	expect(h, "451 4.3.0 Error: queue unavailable, try again later\r\n");
	feeds(h, "DATA\r\n");
	smtp_open_done(&h->s, memfd_create("t", 0));
	feeds(h, "x\r\n.\r\n");
	smtp_commit_done(&h->s, 0, "queue unavailable");
	expect(h, "354 End data with <CR><LF>.<CR><LF>\r\n"
	    "451 4.3.0 Error: queue unavailable\r\n");
}

static void
test_drain(void **state)
{
	struct harness	*h = *state;

	feeds(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
	free(replies(h));
	smtp_drain(&h->s);
	/* A transaction is open: it may finish. */
	assert_int_not_equal(h->s.state, SMTP_CLOSING);
	feeds(h, "RSET\r\n");
	expect(h, "250 2.0.0 Ok\r\n421 4.3.2 mx.test Service shutting "
	    "down\r\n");
	assert_int_equal(h->s.state, SMTP_CLOSING);
}

/* An AUTH-capable listener on loopback, after EHLO. */
static void
auth_setup(struct harness *h)
{
	h->s.listen_flags = LISTEN_AUTH;
	h->s.auth_configured = 1;
	h->s.loopback = 1;
	feeds(h, "EHLO c\r\n");
	free(replies(h));
}

static void
test_auth_plain(void **state)
{
	struct harness	*h = *state;

	auth_setup(h);
	/* "\0alice\0secret" */
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n");
	assert_int_equal(h->auths, 1);
	assert_string_equal(h->user, "alice");
	assert_string_equal(h->password, "secret");
	assert_int_equal(h->s.wait, SMTP_WAIT_AUTH);
	expect(h, "");
	smtp_auth_done(&h->s, 1);
	smtp_process(&h->s);
	expect(h, "235 2.7.0 Authentication successful\r\n250 2.0.0 Ok\r\n");
	assert_true(h->s.authenticated);
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	expect(h, "503 5.5.1 Error: already authenticated\r\n");
}

static void
test_auth_login_and_failures(void **state)
{
	struct harness	*h = *state;

	auth_setup(h);
	feeds(h, "AUTH LOGIN\r\n");
	expect(h, "334 VXNlcm5hbWU6\r\n");
	feeds(h, "Ym9i\r\n");
	expect(h, "334 UGFzc3dvcmQ6\r\n");
	feeds(h, "cHc=\r\n");
	assert_string_equal(h->user, "bob");
	assert_string_equal(h->password, "pw");
	smtp_auth_done(&h->s, 0);
	expect(h, "535 5.7.8 Authentication credentials invalid\r\n");
	feeds(h, "AUTH PLAIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\n");
	expect(h, "334 \r\n501 5.7.0 Authentication cancelled\r\n"
	    "501 5.5.2 Error: invalid base64 data\r\n"
	    "504 5.5.4 Error: unrecognized authentication mechanism\r\n");
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	smtp_auth_done(&h->s, 0);
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	smtp_auth_done(&h->s, 0);
	assert_int_equal(h->s.state, SMTP_CLOSING);
	{
		char *r = replies(h);

		assert_non_null(strstr(r, "421 4.7.0 mx.test Error: too many "
		    "authentication failures\r\n"));
		free(r);
	}
}

/* A lock-out (the parent's temporary failure) is 454 and a strike. */
static void
test_auth_tempfail(void **state)
{
	struct harness	*h = *state;

	auth_setup(h);
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	smtp_auth_done(&h->s, AUTH_RESULT_TEMPFAIL);
	expect(h, "454 4.7.0 Temporary authentication failure, try again "
	    "later\r\n");
	assert_false(h->s.authenticated);
	assert_int_equal(h->s.auth_failures, 1);
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	smtp_auth_done(&h->s, AUTH_RESULT_OK);
	expect(h, "235 2.7.0 Authentication successful\r\n");
}

static void
test_auth_needs_tls(void **state)
{
	struct harness	*h = *state;

	h->s.listen_flags = LISTEN_AUTH;
	h->s.auth_configured = 1;
	h->s.loopback = 0;
	h->s.tls_available = 1;
	feeds(h, "EHLO c\r\n");
	{
		char *r = replies(h);

		assert_non_null(strstr(r, "250-STARTTLS\r\n"));
		assert_null(strstr(r, "AUTH"));
		free(r);
	}
	feeds(h, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	expect(h, "538 5.7.11 Encryption required for requested "
	    "authentication mechanism\r\n");
	assert_int_equal(h->auths, 0);
}

static void
test_starttls(void **state)
{
	struct harness	*h = *state;

	h->s.tls_available = 1;
	h->s.listen_flags = LISTEN_STARTTLS_REQ;
	feeds(h, "EHLO c\r\nMAIL FROM:<a@b.test>\r\n");
	free(replies(h));
	/* Whatever follows STARTTLS in the same packet is never run. */
	feeds(h, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
	expect(h, "220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(h->s.wait, SMTP_WAIT_TLS);
	assert_int_equal(h->s.state, SMTP_HELO);
	linebuf_discard(&h->s.in);
	smtp_tls_started(&h->s);
	assert_int_equal(h->s.state, SMTP_CONNECTED);
	feeds(h, "MAIL FROM:<a@b.test>\r\nEHLO c\r\n");
	{
		char *r = replies(h);

		assert_non_null(strstr(r, "503 Error: send HELO/EHLO first"));
		assert_null(strstr(r, "STARTTLS"));
		free(r);
	}
	feeds(h, "STARTTLS\r\nMAIL FROM:<a@b.test>\r\n");
	expect(h, "503 5.5.1 Error: TLS already active\r\n250 2.1.0 Ok\r\n");
}

static void
test_starttls_required(void **state)
{
	struct harness	*h = *state;

	h->s.tls_available = 1;
	h->s.listen_flags = LISTEN_STARTTLS_REQ;
	feeds(h, "EHLO c\r\n");
	free(replies(h));
	feeds(h, "MAIL FROM:<a@b.test>\r\n");
	expect(h, "530 5.7.0 Must issue a STARTTLS command first\r\n");
	/* Counted for the metrics, by its reason, once. */
	assert_int_equal(h->refused[REFUSED_STARTTLS], 1);
	assert_int_equal(h->refused[REFUSED_RELAY_DENIED], 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_and_helo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ehlo_keywords, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_order_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_transaction,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_smuggling_bare_lf, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_smuggling_bare_cr, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_data_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_command_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls_resets_auth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_too_many_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_addresses, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_too_many_recipients, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_plain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_login_and_failures,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_tempfail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_needs_tls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls_required, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
