/*
 * The upstream ESMTP client over a socketpair: the test is the server,
 * writing scripted replies and checking byte for byte what the client
 * sends, while the event loop runs the client.  AUTH and the STARTTLS
 * dialogue are checked here; a whole TLS handshake is the end-to-end
 * tests' (regress/e2e/test_upstream_tls.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "relay/client.h"
#include "event.h"
#include "tls.h"

#define MAXRCPT		8
#define GUARD_MS	5000		/* no single step takes this long */
#define QUIET_MS	50		/* "the client says nothing more" */

#define EHLO_FULL	"250-mx.test\r\n250-PIPELINING\r\n" \
			"250-SIZE 10000000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
#define EHLO_PLAIN	"250-mx.test\r\n250 HELP\r\n"

/* user "user", password "secret" (RFC 4616: NUL user NUL password). */
#define AUTH_USER	"user"
#define AUTH_PASS	"secret"
#define AUTH_PLAIN_B64	"AHVzZXIAc2VjcmV0"
#define AUTH_USER_B64	"dXNlcg=="
#define AUTH_PASS_B64	"c2VjcmV0"

struct h {
	int			 sv;		/* the server's end */
	int			 cfd;		/* the client's end */
	struct client		*c;
	char			*got;		/* all the client sent */
	size_t			 len;
	size_t			 size;
	size_t			 seen;		/* checked by expect() */
	int			 eof;
	int			 reading;	/* sv is in the loop */
	int			 close_after;	/* close sv past this many */

	int			 ready_calls;
	int			 ready_ok;
	char			 ready_text[REPLY_TEXT_MAX];

	uint32_t		 nrcpt;		/* of the message sent */
	int			 done_calls;
	struct client_result	 res;
	struct client_rcpt_result rcpt[MAXRCPT];
	int			 free_in_done;
	const struct client_msg	*next_msg;	/* sent from done() */

	int			 (*until)(struct h *);
	size_t			 want;
	struct ev_timer		 guard;
	int			 guard_fired;
};

/* A message and its spool file. */
struct tmsg {
	struct client_msg	 m;
	const char		*rcpts[MAXRCPT];
	int			 fd;
};

static const char *rcpt_names[MAXRCPT] = {
	"r0@y.test", "r1@y.test", "r2@y.test", "r3@y.test",
	"r4@y.test", "r5@y.test", "r6@y.test", "r7@y.test",
};

/* Stop the loop when what the test waits for has happened. */
static void
check(struct h *h)
{
	if (h->until != NULL && h->until(h))
		ev_break();
}

/* No step may take GUARD_MS: stop the loop and let the test fail. */
static void
guard_cb(void *arg)
{
	struct h	*h = arg;

	h->guard_fired = 1;
	ev_break();
}

/* Stop reading what the client sends. */
static void
srv_stop(struct h *h)
{
	if (h->reading) {
		ev_del(h->sv);
		h->reading = 0;
	}
}

/* Close the server's end, as an upstream that goes away. */
static void
srv_close(struct h *h)
{
	srv_stop(h);
	if (h->sv != -1) {
		close(h->sv);
		h->sv = -1;
	}
}

/* Collect what the client wrote. */
static void
srv_read(int fd, int events, void *arg)
{
	struct h	*h = arg;
	ssize_t		 n;

	(void)events;
	if (h->size - h->len < 65536) {
		h->size = h->size * 2 + 65536;
		h->got = realloc(h->got, h->size);
		assert_non_null(h->got);
	}
	n = read(fd, h->got + h->len, h->size - h->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		h->eof = 1;
		srv_stop(h);
	} else
		h->len += n;
	if (h->close_after > 0 && h->len > (size_t)h->close_after)
		srv_close(h);
	check(h);
}

/* Watch the server's end. */
static void
srv_start(struct h *h)
{
	assert_int_equal(ev_add(h->sv, EV_READ, srv_read, h), 0);
	h->reading = 1;
}

/* ready(): note the outcome; a failed client is freed right here. */
static void
h_ready(struct client *c, int ok, const char *text, void *arg)
{
	struct h	*h = arg;

	assert_ptr_equal(c, h->c);
	h->ready_calls++;
	h->ready_ok = ok;
	snprintf(h->ready_text, sizeof(h->ready_text), "%s", text);
	if (!ok) {
		/* Freeing inside the callback must be safe. */
		client_free(c);
		h->c = NULL;
	}
	check(h);
}

/* done(): keep the result, then free or send on as the test asks. */
static void
h_done(struct client *c, struct client_result *res, void *arg)
{
	struct h	*h = arg;
	uint32_t	 i;

	assert_ptr_equal(c, h->c);
	h->done_calls++;
	h->res = *res;
	h->res.rcpt = NULL;
	for (i = 0; i < h->nrcpt && i < MAXRCPT; i++)
		h->rcpt[i] = res->rcpt[i];
	if (h->free_in_done) {
		client_free(c);
		h->c = NULL;
	} else if (h->next_msg != NULL) {
		h->nrcpt = h->next_msg->nrcpt;
		assert_int_equal(client_send(c, h->next_msg, h_done, h), 0);
		h->next_msg = NULL;
	}
	check(h);
}

/* The bytes expect() waits for have come, or never will. */
static int
pred_len(struct h *h)
{
	return h->len >= h->want || h->eof;
}

/* ready() was called. */
static int
pred_ready(struct h *h)
{
	return h->ready_calls > 0;
}

/* done() was called. */
static int
pred_done(struct h *h)
{
	return h->done_calls > 0;
}

/* The client closed its end. */
static int
pred_eof(struct h *h)
{
	return h->eof;
}

/* Run the loop for the whole time given. */
static int
pred_never(struct h *h)
{
	(void)h;
	return 0;
}

/* Run the loop until pred holds or ms pass; 1 if pred holds. */
static int
run(struct h *h, int (*pred)(struct h *), uint64_t ms)
{
	h->until = pred;
	h->guard_fired = 0;
	ev_timer_add(&h->guard, ms);
	if (!pred(h))
		ev_loop();
	ev_timer_del(&h->guard);
	h->until = NULL;
	return pred(h);
}

/* Send bytes as the server. */
static void
say(struct h *h, const char *s)
{
	size_t	 len = strlen(s);
	ssize_t	 n;

	while (len > 0) {
		n = send(h->sv, s, len, MSG_NOSIGNAL);
		assert_true(n > 0);
		s += n;
		len -= (size_t)n;
	}
}

/* The client's next bytes must be exactly want (len bytes). */
static void
expect_bytes(struct h *h, const char *want, size_t len)
{
	h->want = h->seen + len;
	assert_true(run(h, pred_len, GUARD_MS));
	if (h->len < h->want)
		print_error("closed early; done %d: %d %s\n", h->done_calls,
		    h->res.code, h->res.text);
	assert_true(h->len >= h->want);
	if (memcmp(h->got + h->seen, want, len) != 0) {
		print_error("expected [%.*s]\ngot      [%.*s]\n", (int)len,
		    want, (int)len, h->got + h->seen);
		fail();
	}
	h->seen += len;
}

/* The client's next bytes must be the string want. */
static void
expect(struct h *h, const char *want)
{
	expect_bytes(h, want, strlen(want));
}

/* The client sends nothing more for a while. */
static void
expect_quiet(struct h *h)
{
	run(h, pred_never, QUIET_MS);
	if (h->len != h->seen)
		print_error("unexpected [%.*s]\n", (int)(h->len - h->seen),
		    h->got + h->seen);
	assert_int_equal(h->len, h->seen);
}

/* Run until done(), which must come exactly once. */
static void
wait_done(struct h *h)
{
	assert_true(run(h, pred_done, GUARD_MS));
	assert_int_equal(h->done_calls, 1);
}

/* Run until ready(), which must come exactly once. */
static void
wait_ready(struct h *h)
{
	assert_true(run(h, pred_ready, GUARD_MS));
	assert_int_equal(h->ready_calls, 1);
}

/* A socketpair: the server's end in the loop, the other for the client. */
static int
setup(void **state)
{
	struct h	*h = calloc(1, sizeof(*h));
	int		 sp[2];

	assert_non_null(h);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	h->sv = sp[0];
	h->cfd = sp[1];
	ev_timer_set(&h->guard, guard_cb, h);
	srv_start(h);
	*state = h;
	return 0;
}

/* Free what the test left. */
static int
teardown(void **state)
{
	struct h	*h = *state;

	/* Every test hands cfd to a client, which closes it. */
	if (h->c != NULL)
		client_free(h->c);
	srv_close(h);
	ev_timer_del(&h->guard);
	free(h->got);
	free(h);
	return 0;
}

/* Start the client and take it through greeting and EHLO. */
static void
session(struct h *h, const char *ehlo_reply)
{
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	assert_true(client_busy(h->c));
	say(h, "220 mx.test ESMTP\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, ehlo_reply);
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_false(client_busy(h->c));
	h->ready_calls = 0;
}

/* QUIT, and the client closes after the reply. */
static void
quit(struct h *h)
{
	client_quit(h->c);
	h->c = NULL;
	expect(h, "QUIT\r\n");
	say(h, "221 bye\r\n");
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
}

/* A message with spool content data, to nrcpt recipients. */
static void
tmsg_init(struct tmsg *t, const char *data, size_t len, uint32_t nrcpt)
{
	size_t	 off = 0;
	ssize_t	 n;
	uint32_t i;

	memset(t, 0, sizeof(*t));
	t->fd = memfd_create("spool", MFD_CLOEXEC);
	assert_true(t->fd >= 0);
	while (off < len) {
		n = write(t->fd, data + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	for (i = 0; i < nrcpt; i++)
		t->rcpts[i] = rcpt_names[i];
	t->m.mail_from = "s@x.test";
	t->m.rcpts = t->rcpts;
	t->m.nrcpt = nrcpt;
	t->m.size = len;
	t->m.spool_fd = t->fd;
}

/* A message whose spool is the string data. */
static void
tmsg_str(struct tmsg *t, const char *data, uint32_t nrcpt)
{
	tmsg_init(t, data, strlen(data), nrcpt);
}

/* Close the spool file. */
static void
tmsg_free(struct tmsg *t)
{
	close(t->fd);
}

/* Send t and clear what a previous message left. */
static void
send_msg(struct h *h, const struct tmsg *t)
{
	h->done_calls = 0;
	memset(&h->res, 0, sizeof(h->res));
	memset(h->rcpt, 0, sizeof(h->rcpt));
	h->nrcpt = t->m.nrcpt;
	assert_int_equal(client_send(h->c, &t->m, h_done, h), 0);
	assert_true(client_busy(h->c));
}

/* The expected wire form of a message: X-Peer placed, dots stuffed. */
static char *
ref_encode(const char *prepend, const char *spool, size_t len,
    const char *ip, size_t *outlen)
{
	size_t	 plen = prepend ? strlen(prepend) : 0, n = plen + len, i, o;
	size_t	 ins = (size_t)-1;
	char	*in, *out;
	char	 peer[128] = "";

	in = malloc(n + 3);
	out = malloc(2 * n + 256);
	assert_non_null(in);
	assert_non_null(out);
	if (plen)
		memcpy(in, prepend, plen);
	memcpy(in + plen, spool, len);
	if (n > 0 && (n < 2 || in[n - 2] != '\r' || in[n - 1] != '\n')) {
		memcpy(in + n, "\r\n", 2);
		n += 2;
	}
	if (ip != NULL) {
		snprintf(peer, sizeof(peer), "X-Peer: %s\r\n", ip);
		if (n >= 2 && in[0] == '\r' && in[1] == '\n')
			ins = 0;
		for (i = 0; ins == (size_t)-1 && i + 4 <= n; i++)
			if (memcmp(in + i, "\r\n\r\n", 4) == 0)
				ins = i + 2;
		if (ins == (size_t)-1)
			ins = n;
	}
	for (i = 0, o = 0; i <= n; i++) {
		if (i == ins) {
			memcpy(out + o, peer, strlen(peer));
			o += strlen(peer);
		}
		if (i == n)
			break;
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			out[o++] = '.';
		out[o++] = in[i];
	}
	memcpy(out + o, ".\r\n", 3);
	*outlen = o + 3;
	free(in);
	return out;
}

/* The announced size: spool, prepend and X-Peer line. */
static char *
mail_cmd(const struct tmsg *t, const char *params)
{
	static char	 line[1024];
	uint64_t	 size = t->m.size;

	if (t->m.prepend != NULL)
		size += strlen(t->m.prepend);
	if (t->m.x_peer_ip != NULL)
		size += 10 + strlen(t->m.x_peer_ip);
	snprintf(line, sizeof(line), "MAIL FROM:<%s> SIZE=%llu%s\r\n",
	    t->m.mail_from, (unsigned long long)size, params);
	return line;
}

/* Greeting, EHLO and its keywords, the text handed to ready(). */
static void
test_capabilities(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	say(h, "220-mx.test ESMTP\r\n220 welcome\r\n");
	expect(h, "EHLO relay.test\r\n");
	expect_quiet(h);
	say(h, "250-mx.test greets relay.test\r\n250-pipelining\r\n"
	    "250-SIZE 5000\r\n250-8BITMIME\r\n250-SmtpUtf8\r\n");
	expect_quiet(h);
	assert_int_equal(h->ready_calls, 0);
	say(h, "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_string_equal(h->ready_text, "mx.test greets relay.test");
	assert_int_equal(client_capa(h->c), CAPA_PIPELINING | CAPA_SIZE |
	    CAPA_8BITMIME | CAPA_SMTPUTF8 | CAPA_STARTTLS | CAPA_ESMTP);
	assert_false(client_busy(h->c));
	quit(h);
}

/* EHLO refused with 5xx: HELO, and no extension is used. */
static void
test_helo_fallback(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "502 5.5.1 what is EHLO\r\n");
	expect(h, "HELO relay.test\r\n");
	say(h, "250 mx.test\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_int_equal(client_capa(h->c), 0);

	/* 8-bit goes as is, without BODY; no SIZE either. */
	tmsg_str(&t, "Subject: \xc3\xa9\r\n\r\nbody\r\n", 1);
	t.m.body_8bit = 1;
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\n");
	expect_quiet(h);
	say(h, "250 ok\r\n");
	expect(h, "RCPT TO:<r0@y.test>\r\n");
	say(h, "250 ok\r\n");
	expect(h, "DATA\r\n");
	say(h, "354 go\r\n");
	expect(h, "Subject: \xc3\xa9\r\n\r\nbody\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	quit(h);
	tmsg_free(&t);
}

/* A greeting that is not 220, or an EHLO answered 4xx: no session. */
static void
test_greeting_refused(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	say(h, "554 5.3.2 go away\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_null(h->c);
	assert_non_null(strstr(h->ready_text, "554 5.3.2 go away"));
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, 0);
}

static void
test_ehlo_421(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "421 4.3.2 shutting down\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "421"));
	assert_true(run(h, pred_eof, GUARD_MS));
}

/*
 * Pipelined: MAIL, both RCPTs and DATA before any reply; the message
 * with prepend, X-Peer before the empty line and dots stuffed.  Then a
 * second message on the same connection.
 */
static void
test_pipelined_exact(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t, t2;
	const char	*spool = "Subject: hi\r\nFrom: <s@x.test>\r\n\r\n"
			    ".leading dot\r\nline\r\n..two\r\n.\r\n\r\nend\r\n";

	session(h, EHLO_FULL);
	assert_int_equal(client_capa(h->c), CAPA_PIPELINING | CAPA_SIZE |
	    CAPA_8BITMIME | CAPA_SMTPUTF8 | CAPA_ESMTP);
	tmsg_str(&t, spool, 2);
	t.m.body_8bit = 1;
	t.m.prepend = "Received: from a.test ([192.0.2.7])\r\n\tby b.test\r\n";
	t.m.x_peer_ip = "192.0.2.7";
	send_msg(h, &t);
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	expect(h, mail_cmd(&t, " BODY=8BITMIME"));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	expect_quiet(h);
	say(h, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
	expect(h, "Received: from a.test ([192.0.2.7])\r\n\tby b.test\r\n"
	    "Subject: hi\r\nFrom: <s@x.test>\r\nX-Peer: 192.0.2.7\r\n\r\n"
	    "..leading dot\r\nline\r\n...two\r\n..\r\n\r\nend\r\n.\r\n");
	expect_quiet(h);
	assert_int_equal(h->done_calls, 0);
	say(h, "250 2.0.0 queued as 42\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	assert_int_equal(h->res.code, 250);
	assert_string_equal(h->res.text, "2.0.0 queued as 42");
	assert_int_equal(h->res.broken, 0);
	assert_int_equal(h->rcpt[0].code, 250);
	assert_int_equal(h->rcpt[1].code, 250);
	assert_string_equal(h->rcpt[1].text, "2.0.0 queued as 42");
	assert_false(client_busy(h->c));

	/*
	 * SMTPUTF8, no X-Peer, no empty line, no final CRLF: the last line
	 * gets its CRLF before the dot.  No RSET between messages.
	 */
	tmsg_str(&t2, "Subject: x\r\n.hidden", 1);
	t2.m.smtputf8 = 1;
	send_msg(h, &t2);
	expect(h, mail_cmd(&t2, " SMTPUTF8"));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "Subject: x\r\n..hidden\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	quit(h);
	tmsg_free(&t);
	tmsg_free(&t2);
}

/* Without PIPELINING: one command, one reply. */
static void
test_nonpipelined(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_PLAIN);
	assert_int_equal(client_capa(h->c), CAPA_ESMTP);
	tmsg_str(&t, "A: b\r\n\r\n.x\r\n", 2);
	t.m.x_peer_ip = "2001:db8::1";
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\n");
	expect_quiet(h);
	say(h, "250 ok\r\n");
	expect(h, "RCPT TO:<r0@y.test>\r\n");
	expect_quiet(h);
	say(h, "550 5.1.1 no such user\r\n");
	expect(h, "RCPT TO:<r1@y.test>\r\n");
	expect_quiet(h);
	say(h, "250 ok\r\n");
	expect(h, "DATA\r\n");
	expect_quiet(h);
	say(h, "354 go\r\n");
	expect(h, "A: b\r\nX-Peer: 2001:db8::1\r\n\r\n..x\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	assert_int_equal(h->rcpt[0].code, 550);
	assert_string_equal(h->rcpt[0].text, "5.1.1 no such user");
	assert_int_equal(h->rcpt[1].code, 250);
	quit(h);
	tmsg_free(&t);
}

/* One recipient refused among three: the other two are delivered. */
static void
test_rcpt_one_refused(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "A: b\r\n\r\nx\r\n", 3);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\n"
	    "RCPT TO:<r2@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n"
	    "354 go\r\n");
	expect(h, "A: b\r\n\r\nx\r\n.\r\n");
	say(h, "250 2.0.0 queued\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	assert_int_equal(h->res.code, 250);
	assert_string_equal(h->res.text, "2.0.0 queued");
	assert_int_equal(h->rcpt[0].code, 250);
	assert_int_equal(h->rcpt[1].code, 550);
	assert_string_equal(h->rcpt[1].text, "5.1.1 no such user");
	assert_int_equal(h->rcpt[2].code, 250);
	expect_quiet(h);
	quit(h);
	tmsg_free(&t);
}

/*
 * Every recipient refused, pipelined: DATA refused, then RSET; with a
 * server that answers DATA with 354 anyway, an empty message ends it.
 */
static void
test_rcpt_all_refused(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "A: b\r\n\r\nx\r\n", 2);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n550 5.1.1 unknown\r\n450 4.2.0 later\r\n"
	    "554 5.5.1 no valid recipients\r\n");
	expect(h, "RSET\r\n");
	expect_quiet(h);
	assert_int_equal(h->done_calls, 0);
	say(h, "250 ok\r\n");
	wait_done(h);
	/* One may work later: temporary, decided by that recipient. */
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 450);
	assert_int_equal(h->rcpt[0].code, 550);
	assert_int_equal(h->rcpt[1].code, 450);

	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n550 5.1.1 unknown\r\n551 5.1.6 moved\r\n354 go\r\n");
	expect(h, ".\r\n");
	say(h, "554 5.5.1 nothing to deliver\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 550);
	assert_string_equal(h->res.text, "5.1.1 unknown");
	assert_int_equal(h->rcpt[1].code, 551);
	expect_quiet(h);
	quit(h);
	tmsg_free(&t);
}

/* Every recipient refused, one at a time: RSET and no DATA. */
static void
test_rcpt_all_refused_nonpipelined(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_PLAIN);
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\n");
	say(h, "250 ok\r\n");
	expect(h, "RCPT TO:<r0@y.test>\r\n");
	say(h, "550 5.7.1 relaying denied\r\n");
	expect(h, "RSET\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 550);
	assert_string_equal(h->res.text, "5.7.1 relaying denied");
	quit(h);
	tmsg_free(&t);
}

/* MAIL refused: its class is every recipient's. */
static void
test_mail_refused(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 2);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "451 4.3.0 try later\r\n503 5.5.1 MAIL first\r\n"
	    "503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n");
	expect(h, "RSET\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 451);
	assert_string_equal(h->res.text, "4.3.0 try later");
	assert_int_equal(h->rcpt[0].code, 451);
	assert_int_equal(h->rcpt[1].code, 451);
	assert_int_equal(h->res.broken, 0);
	quit(h);
	tmsg_free(&t);
}

/* MAIL refused without pipelining: RSET at once, nothing else. */
static void
test_mail_refused_nonpipelined(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_PLAIN);
	tmsg_str(&t, "x\r\n", 2);
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\n");
	say(h, "553 5.1.8 bad sender\r\n");
	expect(h, "RSET\r\n");
	expect_quiet(h);
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->rcpt[0].code, 553);
	assert_int_equal(h->rcpt[1].code, 553);
	quit(h);
	tmsg_free(&t);
}

/* The reply to the dot decides for the accepted recipients. */
static void
test_data_final_554(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "A: b\r\n\r\nx\r\n", 2);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "A: b\r\n\r\nx\r\n.\r\n");
	say(h, "554 5.7.1 looks like spam\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 554);
	assert_string_equal(h->res.text, "5.7.1 looks like spam");
	assert_int_equal(h->rcpt[0].code, 554);
	assert_int_equal(h->rcpt[1].code, 554);
	/* The transaction is over: no RSET. */
	expect_quiet(h);

	/* DATA itself refused: the open transaction is reset. */
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n550 no\r\n451 4.3.0 not now\r\n");
	expect(h, "RSET\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 451);
	assert_int_equal(h->rcpt[0].code, 451);
	assert_int_equal(h->rcpt[1].code, 550);
	quit(h);
	tmsg_free(&t);
}

/* The upstream goes away in the middle: status 4, code 0, unusable. */
static void
test_server_closes(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 2);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nRCPT TO:<r1@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n");
	srv_close(h);
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 0);
	assert_int_equal(h->res.broken, 1);
	assert_non_null(strstr(h->res.text, "closed"));
	assert_int_equal(h->rcpt[0].code, 0);
	assert_int_equal(h->rcpt[1].code, 0);
	assert_false(client_busy(h->c));
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	tmsg_free(&t);
}

/* A failure during RSET keeps the outcome already known. */
static void
test_server_closes_in_rset(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_PLAIN);
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\n");
	say(h, "550 5.7.1 go away\r\n");
	expect(h, "RSET\r\n");
	srv_close(h);
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 550);
	assert_int_equal(h->res.broken, 1);
	assert_int_equal(h->rcpt[0].code, 550);
	tmsg_free(&t);
}

/* A reply line ended by a bare LF or CR ends the session. */
static void
test_bare_lf(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, "220 mx.test\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "bare LF"));
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, 0);
}

/* A bare LF in the middle of a transaction: status 4, code 0. */
static void
test_bare_lf_in_transaction(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\n354 go\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 0);
	assert_int_equal(h->res.broken, 1);
	assert_non_null(strstr(h->res.text, "bare LF"));
	assert_int_equal(h->rcpt[0].code, 0);
	assert_true(run(h, pred_eof, GUARD_MS));
	tmsg_free(&t);
}

/* A bare CR ends the session too. */
static void
test_bare_cr(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, "220 mx.test\r220 again\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "bare CR"));
}

/* 512 octets before CRLF is a line; 513 is not. */
static void
test_long_line(void **state)
{
	struct h	*h = *state;
	char		 line[CLIENT_REPLY_LINE_MAX + 8];

	memset(line, 'x', sizeof(line));
	memcpy(line, "220 ", 4);
	memcpy(line + CLIENT_REPLY_LINE_MAX, "\r\n", 3);
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, line);
	expect(h, "EHLO relay.test\r\n");

	memcpy(line, "250-", 4);
	memset(line + 4, 'x', sizeof(line) - 4);
	memcpy(line + CLIENT_REPLY_LINE_MAX + 1, "\r\n", 3);
	say(h, line);
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "too long"));
	assert_true(run(h, pred_eof, GUARD_MS));
}

/* A line with no end at all is too long as soon as it passes 512. */
static void
test_endless_line(void **state)
{
	struct h	*h = *state;
	char		 junk[4000];

	memset(junk, 'x', sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	memcpy(junk, "220-", 4);
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, junk);
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "too long"));
}

/* More than CLIENT_REPLY_LINES_MAX lines, or codes that change. */
static void
test_bad_replies(void **state)
{
	struct h	*h = *state;
	int		 i;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	for (i = 0; i < CLIENT_REPLY_LINES_MAX; i++)
		say(h, "250-x\r\n");
	say(h, "250 x\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "malformed"));
}

/* A reply whose lines carry different codes. */
static void
test_mixed_codes(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	say(h, "220-mx.test\r\n554 no\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "malformed"));
}

/* A wait that lasts too long fails. */
static void
test_timeout(void **state)
{
	struct h	*h = *state;

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	client_set_timeout(h->c, 50);
	assert_true(run(h, pred_ready, GUARD_MS));
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text, "timeout in greeting");
	assert_true(run(h, pred_eof, GUARD_MS));
}

/* No reply to the dot: status 4, and the connection is dropped. */
static void
test_timeout_end_of_data(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	client_set_timeout(h->c, 100);
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "x\r\n.\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 0);
	assert_string_equal(h->res.text, "timeout in end of data");
	assert_int_equal(h->res.broken, 1);
	assert_true(run(h, pred_eof, GUARD_MS));
	tmsg_free(&t);
}

/* QUIT unanswered: the client frees itself after the time-out. */
static void
test_quit_timeout(void **state)
{
	struct h	*h = *state;

	session(h, EHLO_PLAIN);
	client_set_timeout(h->c, 50);
	client_quit(h->c);
	h->c = NULL;
	expect(h, "QUIT\r\n");
	assert_true(run(h, pred_eof, GUARD_MS));
}

/* SMTPUTF8 needed and not offered: refused here, nothing sent. */
static void
test_smtputf8_refused(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_PLAIN);
	tmsg_str(&t, "x\r\n", 2);
	t.m.smtputf8 = 1;
	send_msg(h, &t);
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 553);
	assert_string_equal(h->res.text, "5.6.7 upstream does not support SMTPUTF8");
	assert_int_equal(h->res.broken, 0);
	assert_int_equal(h->rcpt[0].code, 553);
	assert_int_equal(h->rcpt[1].code, 553);
	expect_quiet(h);
	quit(h);
	tmsg_free(&t);
}

/* Bigger than the upstream's SIZE: refused here (RFC 1870). */
static void
test_size_refused(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, "250-mx.test\r\n250 SIZE 100\r\n");
	tmsg_str(&t, "0123456789012345678901234567890123456789012345678901"
	    "23456789012345678901234567890123456789012345678901234567\r\n", 1);
	send_msg(h, &t);
	wait_done(h);
	assert_int_equal(h->res.status, 5);
	assert_int_equal(h->res.code, 552);
	/* RFC 3463: X.3.4, message too big for system. */
	assert_string_equal(h->res.text,
	    "5.3.4 message exceeds upstream size limit");
	expect_quiet(h);
	quit(h);
	tmsg_free(&t);
}

/* Run one message with the given spool through a pipelined session. */
static void
roundtrip(struct h *h, const char *prepend, const char *spool, size_t len,
    const char *ip, int pause)
{
	struct tmsg	 t;
	char		*want;
	size_t		 wantlen;

	tmsg_init(&t, spool, len, 1);
	t.m.prepend = prepend;
	t.m.x_peer_ip = ip;
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	if (pause) {
		/* The socket fills up; the client must wait, not fail. */
		srv_stop(h);
		run(h, pred_never, 100);
		assert_int_equal(h->done_calls, 0);
		srv_start(h);
	}
	want = ref_encode(prepend, spool, len, ip, &wantlen);
	expect_bytes(h, want, wantlen);
	free(want);
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	tmsg_free(&t);
}

/* Odd shapes: no header end, empty, the empty line first, no CRLF. */
static void
test_message_shapes(void **state)
{
	struct h	*h = *state;
	static const char *shapes[] = {
		"",
		"a",
		".",
		"\r\n",
		"\r\nbody\r\n",
		"A: b\r\n",
		"A: b\r\nC: d",
		"A: b\r\n\r\n",
		"A: b\r\n\r\n\r\n.\r\n..\r\n",
		".A: b\r\n\r\n.\r\n",
	};
	size_t		 i;

	session(h, EHLO_FULL);
	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		roundtrip(h, NULL, shapes[i], strlen(shapes[i]), "192.0.2.1",
		    0);
		roundtrip(h, NULL, shapes[i], strlen(shapes[i]), NULL, 0);
		roundtrip(h, "Received: x\r\n", shapes[i], strlen(shapes[i]),
		    "192.0.2.1", 0);
	}
	quit(h);
}

/*
 * A spool with bare CR and LF (never written by our workers, but not
 * trusted): a dot after either is stuffed too, so nothing in it can end
 * the data early at a lenient upstream; the rest goes byte for byte.
 */
static void
test_bare_line_ends_in_spool(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "A: b\r\r\n\r\nx\n.\r\n.y\r.\r\n\r", 1);
	t.m.x_peer_ip = "192.0.2.1";
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "A: b\r\r\nX-Peer: 192.0.2.1\r\n\r\nx\n..\r\n..y\r..\r\n"
	    "\r\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	quit(h);
	tmsg_free(&t);
}

/*
 * A message of several MB, streamed as the socket drains, with the
 * empty line and dotted lines across the 64 KiB read boundaries.
 */
static void
test_big_message(void **state)
{
	struct h	*h = *state;
	size_t		 size = 3 * 1024 * 1024 + 17, off = 0, n;
	char		*spool;

	spool = malloc(size);
	assert_non_null(spool);
	/* Headers up to 65535 octets: the empty line's CR is the last. */
	while (off < 65535) {
		n = 65535 - off;
		if (n > 80)
			n = 60;
		else if (n < 4) {
			/* Cannot happen with 60-octet lines and a tail. */
			fail();
		}
		memcpy(spool + off, "X-Filler: ", n > 10 ? 10 : n);
		if (n > 12)
			memset(spool + off + 10, 'h', n - 12);
		memcpy(spool + off + n - 2, "\r\n", 2);
		off += n;
	}
	assert_int_equal(off, 65535);
	memcpy(spool + off, "\r\n", 2);
	off += 2;
	while (off < size) {
		n = size - off;
		if (n > 77)
			n = 1 + (off * 7) % 77;
		if (n >= 2) {
			memset(spool + off, (off % 3) ? 'b' : '.', n - 2);
			memcpy(spool + off + n - 2, "\r\n", 2);
		} else
			spool[off] = '.';
		off += n;
	}
	/* A dot first in the third chunk. */
	memcpy(spool + 131070, "\r\n.", 3);

	session(h, EHLO_FULL);
	roundtrip(h, "Received: by relay.test\r\n", spool, size, "192.0.2.9",
	    1);
	roundtrip(h, NULL, spool, size, NULL, 0);
	quit(h);
	free(spool);
}

/* The upstream closes in the middle of the message. */
static void
test_server_closes_in_body(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;
	size_t		 size = 1024 * 1024;
	char		*spool;

	spool = malloc(size);
	assert_non_null(spool);
	memset(spool, 'z', size);
	memcpy(spool + size - 2, "\r\n", 2);
	session(h, EHLO_FULL);
	tmsg_init(&t, spool, size, 1);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	h->close_after = 200000;
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 4);
	assert_int_equal(h->res.code, 0);
	assert_int_equal(h->res.broken, 1);
	assert_int_equal(h->rcpt[0].code, 0);
	tmsg_free(&t);
	free(spool);
}

/* done() may free the client, or send the next message at once. */
static void
test_callbacks(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t, t2;

	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 1);
	tmsg_str(&t2, "y\r\n", 1);
	h->next_msg = &t2.m;
	send_msg(h, &t);
	assert_int_equal(client_send(h->c, &t2.m, h_done, h), -1);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "x\r\n.\r\n");
	say(h, "250 ok\r\n");
	expect(h, mail_cmd(&t2, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	assert_int_equal(h->done_calls, 1);
	h->done_calls = 0;
	h->free_in_done = 1;
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "y\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_null(h->c);
	assert_true(run(h, pred_eof, GUARD_MS));
	tmsg_free(&t);
	tmsg_free(&t2);
}

/* A reply nobody asked for: the connection is not to be trusted. */
static void
test_unsolicited_reply(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	say(h, "250 surprise\r\n");
	assert_true(run(h, pred_eof, GUARD_MS));
	tmsg_str(&t, "x\r\n", 1);
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	tmsg_free(&t);
}

/* Extra replies after the last one make the connection unusable. */
static void
test_extra_reply(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, mail_cmd(&t, ""));
	expect(h, "RCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "x\r\n.\r\n");
	say(h, "250 ok\r\n250 and more\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	assert_int_equal(h->res.broken, 1);
	tmsg_free(&t);
}

/* What client_send() refuses to put on a command line. */
static void
test_bad_messages(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;
	const char	*bad_rcpts[] = { "a@b\r\nRSET" };
	char		 longpath[ADDR_PATH_MAX + 2];

	assert_null(client_new(h->cfd, "bad name", h_ready, h));
	assert_null(client_new(h->cfd, "", h_ready, h));
	assert_null(client_new(h->cfd, "a\r\nb", h_ready, h));
	session(h, EHLO_FULL);
	tmsg_str(&t, "x\r\n", 1);
	t.m.mail_from = "a@b>\rX";
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	t.m.mail_from = "";
	t.m.rcpts = bad_rcpts;
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	t.m.rcpts = t.rcpts;
	t.m.nrcpt = 0;
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	t.m.nrcpt = 1;
	t.m.x_peer_ip = "1.2.3.4\r\nBcc: x";
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	t.m.x_peer_ip = NULL;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	t.m.mail_from = longpath;
	assert_int_equal(client_send(h->c, &t.m, h_done, h), -1);
	t.m.mail_from = "";
	expect_quiet(h);

	/* The null sender is <>. */
	send_msg(h, &t);
	expect(h, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "x\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	quit(h);
	tmsg_free(&t);
}

/* Start a client with credentials and take it through EHLO. */
static void
session_auth(struct h *h, const char *ehlo_reply)
{
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	assert_int_equal(client_set_auth(h->c, AUTH_USER, AUTH_PASS), 0);
	say(h, "220 mx.test ESMTP\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, ehlo_reply);
}

/* Neither the password nor its base64 forms are in the text. */
static void
assert_no_secret(const char *text)
{
	assert_null(strstr(text, AUTH_PASS));
	assert_null(strstr(text, AUTH_PLAIN_B64));
	assert_null(strstr(text, AUTH_PASS_B64));
}

/* AUTH PLAIN is preferred, with the initial response; 235 is ready. */
static void
test_auth_plain(void **state)
{
	struct h	*h = *state;
	struct tmsg	 t;

	session_auth(h, "250-mx.test\r\n250-PIPELINING\r\n"
	    "250-AUTH LOGIN PLAIN CRAM-MD5\r\n250 8BITMIME\r\n");
	expect(h, "AUTH PLAIN " AUTH_PLAIN_B64 "\r\n");
	expect_quiet(h);
	assert_int_equal(h->ready_calls, 0);
	assert_true(client_busy(h->c));
	assert_int_equal(client_capa(h->c), CAPA_PIPELINING | CAPA_8BITMIME |
	    CAPA_AUTH_PLAIN | CAPA_AUTH_LOGIN | CAPA_ESMTP);
	say(h, "235 2.7.0 Authentication successful\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_true(client_authenticated(h->c));
	assert_false(client_tls(h->c));
	assert_false(client_busy(h->c));

	/* Then mail as usual. */
	tmsg_str(&t, "x\r\n", 1);
	send_msg(h, &t);
	expect(h, "MAIL FROM:<s@x.test>\r\nRCPT TO:<r0@y.test>\r\nDATA\r\n");
	say(h, "250 ok\r\n250 ok\r\n354 go\r\n");
	expect(h, "x\r\n.\r\n");
	say(h, "250 ok\r\n");
	wait_done(h);
	assert_int_equal(h->res.status, 2);
	quit(h);
	tmsg_free(&t);
}

/* AUTH LOGIN (here in the old "AUTH=" form): user, then password. */
static void
test_auth_login(void **state)
{
	struct h	*h = *state;

	session_auth(h, "250-mx.test\r\n250-AUTH=login\r\n250 HELP\r\n");
	expect(h, "AUTH LOGIN\r\n");
	expect_quiet(h);
	say(h, "334 VXNlcm5hbWU6\r\n");
	expect(h, AUTH_USER_B64 "\r\n");
	expect_quiet(h);
	say(h, "334 UGFzc3dvcmQ6\r\n");
	expect(h, AUTH_PASS_B64 "\r\n");
	expect_quiet(h);
	assert_int_equal(h->ready_calls, 0);
	say(h, "235 2.7.0 ok\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_true(client_authenticated(h->c));
	quit(h);
}

/*
 * Credentials whose PLAIN initial response would make the AUTH command
 * longer than 512 octets (RFC 4954 4): LOGIN when offered, else AUTH
 * PLAIN alone and the response after the 334 (found by
 * regress/fuzz/fuzz_client_auth.c).
 */
static void
long_auth(struct h *h, const char *ehlo_reply, char *b64)
{
	char	 user[251], pass[251], plain[502];

	memset(user, 'u', 250);
	user[250] = '\0';
	memset(pass, 'p', 250);
	pass[250] = '\0';
	plain[0] = '\0';
	memcpy(plain + 1, user, 251);
	memcpy(plain + 252, pass, 250);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)plain,
	    sizeof(plain));
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	assert_int_equal(client_set_auth(h->c, user, pass), 0);
	say(h, "220 mx.test ESMTP\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, ehlo_reply);
}

static void
test_auth_long_plain_takes_login(void **state)
{
	struct h	*h = *state;
	char		 b64[1024];

	long_auth(h, "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n", b64);
	expect(h, "AUTH LOGIN\r\n");
	say(h, "334 VXNlcm5hbWU6\r\n");
	expect(h, "dXV1dXV1dXV1");	/* "uuuuuuuuu" and so on */
	client_free(h->c);
	h->c = NULL;
}

static void
test_auth_long_plain_waits_for_334(void **state)
{
	struct h	*h = *state;
	char		 b64[1024], line[1100];

	long_auth(h, "250-mx.test\r\n250 AUTH PLAIN\r\n", b64);
	expect(h, "AUTH PLAIN\r\n");
	expect_quiet(h);
	say(h, "334 \r\n");
	snprintf(line, sizeof(line), "%s\r\n", b64);
	expect(h, line);
	say(h, "235 2.7.0 ok\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);
	assert_true(client_authenticated(h->c));
	quit(h);
}

/* 535: the connection fails, with the upstream's words only. */
static void
test_auth_refused(void **state)
{
	struct h	*h = *state;

	session_auth(h, "250-mx.test\r\n250 AUTH PLAIN\r\n");
	expect(h, "AUTH PLAIN " AUTH_PLAIN_B64 "\r\n");
	say(h, "535 5.7.8 Authentication credentials invalid\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_null(h->c);
	assert_string_equal(h->ready_text, "AUTH PLAIN failed: 535 5.7.8 "
	    "Authentication credentials invalid");
	assert_no_secret(h->ready_text);
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
}

/* LOGIN refused after the password, and a 4xx in the middle. */
static void
test_auth_login_refused(void **state)
{
	struct h	*h = *state;

	session_auth(h, "250-mx.test\r\n250 AUTH LOGIN\r\n");
	expect(h, "AUTH LOGIN\r\n");
	say(h, "334 VXNlcm5hbWU6\r\n");
	expect(h, AUTH_USER_B64 "\r\n");
	say(h, "454 4.7.0 Temporary authentication failure\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text, "AUTH LOGIN failed: 454 4.7.0 "
	    "Temporary authentication failure");
	assert_no_secret(h->ready_text);
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
}

/* A 334 PLAIN did not ask for, or a 235 too early, is a failure. */
static void
test_auth_unexpected(void **state)
{
	struct h	*h = *state;

	session_auth(h, "250-mx.test\r\n250 AUTH PLAIN\r\n");
	expect(h, "AUTH PLAIN " AUTH_PLAIN_B64 "\r\n");
	say(h, "334 \r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "AUTH PLAIN failed: 334"));
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
}

/* LOGIN that says yes before the password: not believed. */
static void
test_auth_login_early_235(void **state)
{
	struct h	*h = *state;

	session_auth(h, "250-mx.test\r\n250 AUTH LOGIN\r\n");
	expect(h, "AUTH LOGIN\r\n");
	say(h, "235 2.7.0 sure\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "AUTH LOGIN failed: 235"));
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
}

/* Credentials and no AUTH PLAIN or LOGIN: fail, nothing is sent. */
static void
test_auth_not_offered(void **state)
{
	struct h	*h = *state;
	const char	*ehlos[] = {
		EHLO_FULL,
		"250-mx.test\r\n250 AUTH CRAM-MD5 XOAUTH2 PLAINX\r\n",
		"250-mx.test\r\n250 AUTHPLAIN\r\n",
	};
	size_t		 i;

	for (i = 0; i < sizeof(ehlos) / sizeof(ehlos[0]); i++) {
		if (i > 0) {
			teardown(state);
			setup(state);
			h = *state;
		}
		session_auth(h, ehlos[i]);
		wait_ready(h);
		assert_int_equal(h->ready_ok, 0);
		assert_string_equal(h->ready_text,
		    "upstream offers no AUTH PLAIN/LOGIN");
		assert_true(run(h, pred_eof, GUARD_MS));
		assert_int_equal(h->len, h->seen);
	}
}

/* HELO only: no AUTH either. */
static void
test_auth_helo(void **state)
{
	struct h	*h = *state;

	session_auth(h, "502 5.5.1 no EHLO\r\n");
	expect(h, "HELO relay.test\r\n");
	say(h, "250 mx.test\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text,
	    "upstream offers no AUTH PLAIN/LOGIN");
	assert_true(run(h, pred_eof, GUARD_MS));
}

/* Longest credentials fit; longer ones, or misuse, are refused. */
static void
test_auth_args(void **state)
{
	struct h	*h = *state;
	char		 big[AUTH_FIELD_MAX + 2];
	unsigned char	 plain[700];
	SSL_CTX		*ctx;
	char		 err[256];

	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(client_set_auth(h->c, "u", big), -1);
	assert_int_equal(client_set_auth(h->c, big, "p"), -1);
	assert_int_equal(client_set_auth(h->c, "u", ""), -1);
	assert_int_equal(client_set_auth(h->c, NULL, "p"), -1);
	assert_int_equal(client_set_auth(h->c, "", ""), 0);	/* none */
	big[AUTH_FIELD_MAX] = '\0';
	assert_int_equal(client_set_auth(h->c, big, big), 0);

	ctx = tls_client_ctx(NULL, 0, err, sizeof(err));
	assert_non_null(ctx);
	assert_int_equal(client_set_tls(h->c, ctx, 7, "mx.test"), -1);
	assert_int_equal(client_set_tls(h->c, NULL, CLIENT_TLS_STARTTLS,
	    "mx.test"), -1);
	assert_int_equal(client_set_tls(h->c, ctx, CLIENT_TLS_STARTTLS,
	    "mx\r\n.test"), -1);
	assert_int_equal(client_set_tls(h->c, ctx, CLIENT_TLS_NONE, NULL), 0);

	/*
	 * PLAIN with both at their longest: no initial response (the
	 * command would pass 512 octets, RFC 4954 4), then one line after
	 * the 334, no truncation.
	 */
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "250-mx.test\r\n250 AUTH PLAIN\r\n");
	expect(h, "AUTH PLAIN\r\n");
	say(h, "334 \r\n");
	while (memchr(h->got + h->seen, '\n', h->len - h->seen) == NULL) {
		h->want = h->len + 1;
		assert_true(run(h, pred_len, GUARD_MS));
		assert_false(h->eof);
	}
	/* 2 + 2 * 255 octets: 684 in base64, then CRLF. */
	assert_int_equal(h->len - h->seen, 684 + 2);
	assert_memory_equal(h->got + h->len - 2, "\r\n", 2);
	assert_int_equal(EVP_DecodeBlock(plain, (unsigned char *)h->got +
	    h->seen, 684), 512 + 1);	/* 684 / 4 * 3, padding included */
	assert_int_equal(plain[0], '\0');
	assert_memory_equal(plain + 1, big, AUTH_FIELD_MAX);
	assert_int_equal(plain[1 + AUTH_FIELD_MAX], '\0');
	assert_memory_equal(plain + 2 + AUTH_FIELD_MAX, big, AUTH_FIELD_MAX);
	h->seen = h->len;
	say(h, "235 ok\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 1);

	/* Too late for either now. */
	assert_int_equal(client_set_auth(h->c, "u", "p"), -1);
	assert_int_equal(client_set_tls(h->c, ctx, CLIENT_TLS_STARTTLS,
	    "mx.test"), -1);
	quit(h);
	SSL_CTX_free(ctx);
}

/* A client that must use STARTTLS, without verification (no CA). */
static SSL_CTX *
starttls_client(struct h *h, int mode)
{
	SSL_CTX	*ctx;
	char	 err[256];

	ctx = tls_client_ctx(NULL, 0, err, sizeof(err));
	assert_non_null(ctx);
	h->c = client_new(h->cfd, "relay.test", h_ready, h);
	assert_non_null(h->c);
	assert_int_equal(client_set_tls(h->c, ctx, mode, "mx.test"), 0);
	return ctx;
}

/* STARTTLS required and not offered: fail, never go on in clear. */
static void
test_starttls_not_offered(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_STARTTLS);

	assert_int_equal(client_set_auth(h->c, AUTH_USER, AUTH_PASS), 0);
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "250-mx.test\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text, "upstream does not offer STARTTLS");
	assert_true(run(h, pred_eof, GUARD_MS));
	/* Not a word more: no AUTH, no MAIL. */
	assert_int_equal(h->len, h->seen);
	SSL_CTX_free(ctx);
}

/* HELO cannot STARTTLS either. */
static void
test_starttls_helo(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_STARTTLS);

	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "500 5.5.1 what\r\n");
	expect(h, "HELO relay.test\r\n");
	say(h, "250 mx.test\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text, "upstream does not offer STARTTLS");
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
	SSL_CTX_free(ctx);
}

/* STARTTLS offered, then refused: a failure too. */
static void
test_starttls_refused(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_STARTTLS);

	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "250-mx.test\r\n250 starttls\r\n");
	expect(h, "STARTTLS\r\n");
	say(h, "454 4.7.0 TLS not available\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text,
	    "STARTTLS: 454 4.7.0 TLS not available");
	assert_true(run(h, pred_eof, GUARD_MS));
	assert_int_equal(h->len, h->seen);
	SSL_CTX_free(ctx);
}

/*
 * After 220 the client says hello in TLS: what the server sent with the
 * 220 is dropped, not read as a reply; a server that then answers in
 * clear text fails the handshake, and nothing is sent in clear text.
 */
static void
test_starttls_handshake(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_STARTTLS);

	assert_int_equal(client_set_auth(h->c, AUTH_USER, AUTH_PASS), 0);
	say(h, "220 mx.test\r\n");
	expect(h, "EHLO relay.test\r\n");
	say(h, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
	expect(h, "STARTTLS\r\n");
	say(h, "220 2.0.0 go ahead\r\n250-mx.test\r\n250 AUTH PLAIN\r\n");
	/* A TLS record of type handshake (22), version 3.x. */
	h->want = h->seen + 5;
	assert_true(run(h, pred_len, GUARD_MS));
	assert_int_equal((unsigned char)h->got[h->seen], 22);
	assert_int_equal((unsigned char)h->got[h->seen + 1], 3);
	assert_int_equal(h->ready_calls, 0);
	say(h, "500 5.5.1 this is not TLS\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "TLS handshake failed: "));
	assert_true(run(h, pred_eof, GUARD_MS));
	/* Nothing in clear text after the hello: no EHLO, no AUTH. */
	assert_null(memmem(h->got + h->seen, h->len - h->seen, "EHLO", 4));
	assert_null(memmem(h->got + h->seen, h->len - h->seen, "AUTH", 4));
	SSL_CTX_free(ctx);
}

/* Implicit TLS: the client speaks first, before any greeting. */
static void
test_implicit_tls(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_IMPLICIT);

	h->want = 5;
	assert_true(run(h, pred_len, GUARD_MS));
	assert_int_equal((unsigned char)h->got[0], 22);
	assert_int_equal((unsigned char)h->got[1], 3);
	assert_true(client_busy(h->c));
	say(h, "220 mx.test ESMTP in clear text\r\n");
	wait_ready(h);
	assert_int_equal(h->ready_ok, 0);
	assert_non_null(strstr(h->ready_text, "TLS handshake failed: "));
	assert_true(run(h, pred_eof, GUARD_MS));
	SSL_CTX_free(ctx);
}

/* A silent server: the handshake is one wait with a time-out. */
static void
test_tls_timeout(void **state)
{
	struct h	*h = *state;
	SSL_CTX		*ctx = starttls_client(h, CLIENT_TLS_IMPLICIT);

	client_set_timeout(h->c, 50);
	assert_true(run(h, pred_ready, GUARD_MS));
	assert_int_equal(h->ready_ok, 0);
	assert_string_equal(h->ready_text, "timeout in TLS handshake");
	assert_true(run(h, pred_eof, GUARD_MS));
	SSL_CTX_free(ctx);
}

/* The AUTH keyword and its old form, as the reply parser reads them. */
static void
test_auth_keyword(void **state)
{
	static const struct {
		const char	*line;
		int		 capa;
	} cases[] = {
		{ "250-AUTH PLAIN", CAPA_AUTH_PLAIN },
		{ "250-auth login", CAPA_AUTH_LOGIN },
		{ "250-AUTH  GSSAPI  LOGIN  plain ", CAPA_AUTH_PLAIN |
		    CAPA_AUTH_LOGIN },
		{ "250-AUTH=PLAIN LOGIN", CAPA_AUTH_PLAIN | CAPA_AUTH_LOGIN },
		{ "250-AUTH=LOGIN", CAPA_AUTH_LOGIN },
		{ "250-AUTH", 0 },
		{ "250-AUTH=", 0 },
		{ "250-AUTH PLAINLOGIN LOGI PLAI", 0 },
		{ "250-AUTHENTICATE PLAIN", 0 },
		{ "250-X-AUTH PLAIN", 0 },
	};
	struct reply_parser	 p;
	struct smtp_reply	 r;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reply_parser_init(&p);
		assert_int_equal(reply_parse_line(&p, "250-mx.test", 11, &r),
		    REPLY_MORE);
		assert_int_equal(reply_parse_line(&p, cases[i].line,
		    strlen(cases[i].line), &r), REPLY_MORE);
		assert_int_equal(reply_parse_line(&p, "250 HELP", 8, &r),
		    REPLY_DONE);
		if (r.auth != cases[i].capa)
			print_error("%s: auth %#x\n", cases[i].line, r.auth);
		assert_int_equal(r.auth, cases[i].capa);
		assert_int_equal(r.capa, 0);
	}
}

/* Run the client tests on one event loop. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capabilities, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_helo_fallback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_greeting_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ehlo_421, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_exact, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nonpipelined, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_one_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_all_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_rcpt_all_refused_nonpipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mail_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mail_refused_nonpipelined,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_final_554, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_closes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_closes_in_rset,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_lf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_lf_in_transaction,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bare_cr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_endless_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_replies, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mixed_codes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_end_of_data,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_quit_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_smtputf8_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_message_shapes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bare_line_ends_in_spool,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_message, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_closes_in_body,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_callbacks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unsolicited_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_extra_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_messages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_plain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_login, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_long_plain_takes_login,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auth_long_plain_waits_for_334, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_login_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_unexpected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_login_early_235,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_not_offered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_helo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_args, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls_not_offered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls_helo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls_handshake, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_implicit_tls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_timeout, setup,
		    teardown),
		cmocka_unit_test(test_auth_keyword),
	};

	/* A TLS alert to a closed socket must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	tls_init();
	ev_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
