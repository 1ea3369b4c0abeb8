/*
 * libFuzzer harness for a whole SMTP session through smtpd/smtp.c.
 *
 * The first four bytes choose the setting (SMTPUTF8, STARTTLS, AUTH,
 * loopback, starttls-required, relay or deliver mode, the limits) and
 * seed the choices of the "relay" and "parent" answering the engine's
 * smtp_ops (spool file or not, commit or not, now or later, from
 * inside the callback or not).  The rest is what the client sends.  It
 * is cut into lines by lib/linebuf.c as the engine cuts it (510 octets
 * in commands, 998 in data) and fed a line at a time; while the engine
 * waits for a commit or a password check more lines may be pipelined
 * behind (never behind DATA or STARTTLS, as RFC 2920 says).
 *
 * The replies are matched to the lines as a pipelining client does:
 * every command line gets exactly one reply (a multi-line one counts
 * once), data lines none but the final dot, and nothing comes after a
 * 221 or a 421.  Besides: every reply line is well formed (three
 * digits, space or dash, CRLF, at most 512 octets, no control
 * character); the engine never stands in RCPT or DATA without an
 * accepted recipient; a command tainted by a bare CR or LF gets 500; a
 * message with a bare CR or LF or an over-long line is never accepted;
 * an accepted message is what the client sent, unstuffed; a relay
 * client that is neither trusted nor authenticated only gets the
 * policy's recipients; what is given to the password check is bounded.
 *
 * FUZZ_SRCS: smtpd/smtp.c smtpd/smtp_auth.c lib/linebuf.c lib/buf.c
 * FUZZ_SRCS: lib/addr.c lib/policy.c lib/imsg.c lib/base64.c lib/log.c
 * FUZZ_SRCS: lib/conf.c
 * FUZZ_SRCS: lib/envelope.c smtpd/smtp_log.c smtpd/smtp_params.c
 * FUZZ_SRCS: lib/rules.c
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "smtpd/smtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define REPLY_MAX	512
#define ANSWER_LATER	0	/* the relay's answer comes after the call */

struct fline {
	const uint8_t	*p;
	size_t		 len;
	enum line_kind	 kind;
	size_t		 end;		/* octets fed up to its end */
};

struct fuzz {
	struct smtpd_conf	 conf;
	struct smtp_session	 s;
	uint32_t		 rnd;

	struct fline		*lines;
	size_t			 nlines, cursor;
	size_t			 fed;		/* octets given to the engine */

	/* The client's view, from the replies. */
	int			 greeted, closed, data_mode, taint, data_bad;
	char			*body;
	size_t			 bodylen;
	char			 rbuf[REPLY_MAX + 1];
	size_t			 rlen;
	int			 rcode;		/* of a multi-line reply */

	/* The relay's and the parent's side. */
	int			 commit_ok, committed, auth_ok, auth_granted;
	char			*spool;
	size_t			 spoollen;
	int			 in_callback;
};

static struct policy	 pol;
static int		 memfd = -1;

static uint32_t
rnd(struct fuzz *f)
{
	f->rnd ^= f->rnd << 13;
	f->rnd ^= f->rnd >> 17;
	f->rnd ^= f->rnd << 5;
	return f->rnd;
}

static int
coin(struct fuzz *f)
{
	return rnd(f) & 1;
}

/* What a relay client may reach unless trusted or authenticated. */
static void
check_relay_rcpt(const char *rcpt)
{
	const char	*at = strrchr(rcpt, '@');

	if (at == NULL)
		abort();
	if (strcasecmp(at + 1, "example.org") == 0 ||
	    strcasecmp(at + 1, "example.org.") == 0)
		return;
	/* The lookup ignores case in the local part too (lib/policy.c). */
	if (strncasecmp(rcpt, "bob@", 4) == 0 && (strcasecmp(at + 1,
	    "example.net") == 0 || strcasecmp(at + 1, "example.net.") == 0))
		return;
	abort();
}

static void
check_state(struct fuzz *f)
{
	struct smtp_session	*s = &f->s;
	uint32_t		 i;

	if ((s->state == SMTP_RCPT || s->state == SMTP_DATA) && s->nrcpt == 0)
		abort();
	if (s->state == SMTP_MAIL && s->nrcpt != 0)
		abort();
	if (s->nrcpt > f->conf.max_rcpt)
		abort();
	if (s->authenticated && !f->auth_granted)
		abort();
	if (s->state == SMTP_DATA && s->wait == SMTP_WAIT_NONE &&
	    s->spool_fd == -1)
		abort();
	if (f->conf.mode == MODE_RELAY && !s->authenticated &&
	    !s->loopback && strcmp(s->peer_ip, "10.1.2.3") != 0)
		for (i = 0; i < s->nrcpt; i++)
			check_relay_rcpt(s->rcpts[i]);
}

/* The line a reply answers; the lines before it that need none. */
static const struct fline *
answered_line(struct fuzz *f)
{
	const struct fline	*l;

	while (f->cursor < f->nlines) {
		l = &f->lines[f->cursor++];
		if (!f->data_mode) {
			if (l->kind == LINE_BARE_LF || l->kind == LINE_BARE_CR) {
				f->taint = 1;
				continue;
			}
			return l;
		}
		switch (l->kind) {
		case LINE_CRLF:
			if (!f->taint && l->len == 1 && l->p[0] == '.')
				return l;
			if (!f->taint && l->len > 0 && l->p[0] == '.') {
				memcpy(f->body + f->bodylen, l->p + 1, l->len - 1);
				f->bodylen += l->len - 1;
			} else {
				memcpy(f->body + f->bodylen, l->p, l->len);
				f->bodylen += l->len;
			}
			memcpy(f->body + f->bodylen, "\r\n", 2);
			f->bodylen += 2;
			f->taint = 0;
			break;
		case LINE_BARE_LF:
		case LINE_BARE_CR:
			f->taint = f->data_bad = 1;
			break;
		case LINE_TOO_LONG:
			f->taint = 0;
			f->data_bad = 1;
			break;
		case LINE_NONE:
			abort();
		}
	}
	return NULL;
}

/* One whole reply, code its code: match it to the line it answers. */
static void
reply(struct fuzz *f, int code)
{
	const struct fline	*l;

	if (f->closed)
		abort();		/* nothing after 221 or 421 */
	if (!f->greeted) {
		if (code != 220)
			abort();
		f->greeted = 1;
		return;
	}
	if (code == 421) {
		/* The answer to a line, or on its own before the close. */
		f->closed = 1;
		return;
	}
	if ((l = answered_line(f)) == NULL)
		abort();		/* a reply to nothing */
	if (!f->data_mode) {
		if (f->taint && code != 500)
			abort();
		f->taint = 0;
		if (code == 221)
			f->closed = 1;
		if (code == 354) {
			f->data_mode = 1;
			f->data_bad = 0;
			f->bodylen = 0;
		}
		return;
	}
	f->data_mode = 0;
	if (code != 250)
		return;
	
	/* Accepted: clean, committed, and what was sent. */
	if (f->data_bad || !f->committed || f->bodylen > f->conf.max_size ||
	    f->spoollen != f->bodylen ||
	    memcmp(f->spool, f->body, f->bodylen) != 0)
		abort();
	f->committed = 0;
}

/* One reply line, CRLF included. */
static void
reply_line(struct fuzz *f, const char *p, size_t n)
{
	size_t	 i;
	int	 code;

	if (n < 6 || n > REPLY_MAX || p[n - 2] != '\r')
		abort();
	if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
	    p[2] < '0' || p[2] > '9' || (p[3] != ' ' && p[3] != '-'))
		abort();
	for (i = 4; i < n - 2; i++)
		if ((unsigned char)p[i] < ' ' || p[i] == 127)
			abort();
	
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (f->rcode != 0 && f->rcode != code)
		abort();
	if (p[3] == '-') {
		f->rcode = code;
		return;
	}
	f->rcode = 0;
	reply(f, code);
}

/* Read what the engine wrote, as a client that keeps reading. */
static void
collect(struct fuzz *f)
{
	struct buf	*out = &f->s.out;
	const char	*p;
	size_t		 n = buf_left(out), i;

	check_state(f);
	if (n == 0)
		return;
	p = out->data + out->off;
	for (i = 0; i < n; i++) {
		if (f->rlen == REPLY_MAX)
			abort();	/* a line too long */
		f->rbuf[f->rlen++] = p[i];
		if (p[i] == '\n') {
			reply_line(f, f->rbuf, f->rlen);
			f->rlen = 0;
		}
	}
	buf_drain(out, n);
}

static void
give_spool(struct fuzz *f)
{
	int	 fd;

	if (coin(f) && coin(f)) {
		smtp_open_done(&f->s, -1);
		return;
	}
	if (ftruncate(memfd, 0) == -1 || lseek(memfd, 0, SEEK_SET) != 0 ||
	    (fd = dup(memfd)) == -1)
		abort();
	smtp_open_done(&f->s, fd);
}

static void
take_commit(struct fuzz *f)
{
	off_t	 n = lseek(memfd, 0, SEEK_END);

	if (n < 0 || (size_t)n > f->conf.max_size + 2)
		abort();
	free(f->spool);
	if ((f->spool = malloc(n + 1)) == NULL ||
	    pread(memfd, f->spool, n, 0) != n)
		abort();
	f->spoollen = n;
	f->commit_ok = !(coin(f) && coin(f));
	f->committed = f->commit_ok;
	smtp_commit_done(&f->s, f->commit_ok, f->commit_ok ? "4XyZ0001" :
	    "queue unavailable, try again later");
}

static void
h_open(struct smtp_session *s)
{
	struct fuzz	*f = s->owner;

	if (s->state != SMTP_RCPT || s->nrcpt == 0 || s->wait != SMTP_WAIT_OPEN)
		abort();
	if (coin(f) == ANSWER_LATER)
		return;
	give_spool(f);
}

static void
h_commit(struct smtp_session *s)
{
	struct fuzz	*f = s->owner;

	if (s->state != SMTP_DATA || s->nrcpt == 0 || s->spool_fd == -1 ||
	    s->wait != SMTP_WAIT_COMMIT)
		abort();
	if (coin(f) == ANSWER_LATER)
		return;
	take_commit(f);
}

static void
h_abort(struct smtp_session *s)
{
	(void)s;
}

static void
h_auth(struct smtp_session *s, const char *user, const char *password)
{
	struct fuzz	*f = s->owner;
	size_t		 i;

	if (s->state != SMTP_HELO || s->authenticated || *user == '\0' ||
	    *password == '\0' || strlen(user) > AUTH_FIELD_MAX ||
	    strlen(password) > AUTH_FIELD_MAX || s->wait != SMTP_WAIT_AUTH)
		abort();
	for (i = 0; user[i] != '\0'; i++)
		if ((unsigned char)user[i] <= ' ' || user[i] == 127)
			abort();
	f->auth_ok = strcmp(user, "alice") == 0 &&
	    strcmp(password, "secret") == 0;
	if (coin(f) == ANSWER_LATER)
		return;
	f->auth_granted |= f->auth_ok;
	smtp_auth_done(s, f->auth_ok);
}

static const struct smtp_ops ops = { h_open, h_commit, h_abort, h_auth };

/* What the engine waits for arrives; then it goes on. */
static void
answer(struct fuzz *f)
{
	struct smtp_session	*s = &f->s;
	size_t			 done;

	switch (s->wait) {
	case SMTP_WAIT_OPEN:
		give_spool(f);
		break;
	case SMTP_WAIT_COMMIT:
		take_commit(f);
		break;
	case SMTP_WAIT_AUTH:
		f->auth_granted |= f->auth_ok;
		smtp_auth_done(s, f->auth_ok);
		break;
	case SMTP_WAIT_TLS:
		/* What came after STARTTLS is thrown away, unanswered. */
		done = f->fed - (s->in.buf != NULL ? linebuf_pending(&s->in) :
		    0);
		while (f->nlines > f->cursor && f->lines[f->nlines - 1].end >
		    done)
			f->nlines--;
		if (s->in.buf != NULL)
			linebuf_discard(&s->in);
		smtp_tls_started(s);
		break;
	case SMTP_WAIT_NONE:
		return;
	}
	smtp_process(s);
	collect(f);
}

/* Let the engine go on with what it holds; 1 if it read something. */
static int
settle(struct fuzz *f)
{
	struct smtp_session	*s = &f->s;
	size_t			 before, after;

	before = s->in.buf != NULL ? linebuf_pending(&s->in) : 0;
	smtp_process(s);
	collect(f);
	after = s->in.buf != NULL ? linebuf_pending(&s->in) : 0;
	return after != before;
}

/* Give the engine n octets as a socket would, in pieces if need be. */
static void
feed(struct fuzz *f, const uint8_t *p, size_t n)
{
	uint8_t	*space;
	size_t	 avail, k;

	while (n > 0) {
		space = smtp_input_space(&f->s, &avail);
		if (space == NULL)
			abort();
		if (avail == 0) {
			/* Full: only while it waits, or its replies do. */
			if (f->s.wait != SMTP_WAIT_NONE)
				answer(f);
			else if (!settle(f))
				abort();
			continue;
		}
		k = n < avail ? n : avail;
		memcpy(space, p, k);
		smtp_input_fill(&f->s, k);
		f->fed += k;
		p += k;
		n -= k;
		smtp_process(&f->s);
		collect(f);
		if (f->s.state == SMTP_CLOSING)
			return;
	}
	if (coin(f))
		smtp_input_release(&f->s);
}

/* Whether a client waits for this command's reply (RFC 2920 3.1). */
static int
is_sync(const struct fline *l)
{
	size_t	 n;

	for (n = 0; n < l->len && l->p[n] != ' '; n++)
		;
	return (n == 4 && strncasecmp((const char *)l->p, "DATA", 4) == 0) ||
	    (n == 8 && strncasecmp((const char *)l->p, "STARTTLS", 8) == 0);
}

static void
setup(struct fuzz *f, const uint8_t *h)
{
	static const char *ips[] = { "192.0.2.1", "127.0.0.1", "10.1.2.3",
	    "2001:db8::1" };
	struct smtp_session	*s = &f->s;
	uint32_t		 flags = LISTEN_AUTH;

	conf_defaults(&f->conf);
	strcpy(f->conf.hostname, "mx.test");
	f->conf.smtputf8 = h[0] & 1;
	f->conf.mode = (h[0] & 0x60) == 0x20 ? MODE_DELIVER :
	    (h[0] & 0x60) == 0x40 ? MODE_DEBUG : MODE_RELAY;
	if (h[1] & 0x80) {
		f->conf.max_rcpt = 1 + (h[1] & 3);
		f->conf.max_bad = 1 + ((h[1] >> 2) & 7);
	}
	if (h[1] & 0x40)
		f->conf.max_size = 16 + 64 * (h[1] & 0x3f);
	if (h[0] & 0x10)
		flags |= LISTEN_STARTTLS_REQ;
	smtp_init(s, &f->conf, &ops, f, ips[(h[0] >> 2) & 3], 4242);
	s->policy = &pol;
	s->listen_flags = flags;
	s->loopback = strcmp(s->peer_ip, "127.0.0.1") == 0;
	s->tls_available = (h[0] & 2) != 0;
	s->auth_configured = (h[0] & 0x80) != 0;
	f->rnd = (uint32_t)h[2] << 8 | h[3] | 0x10000;
}

static void
init_once(void)
{
	struct netaddr	 na;

	if (memfd != -1)
		return;
	log_init_child(0, 0, "fuzz", NULL);	/* lines are dropped */
	if ((memfd = memfd_create("spool", 0)) == -1)
		abort();
	policy_init(&pol);
	if (policy_add_domain(&pol, "example.org") == -1 ||
	    policy_add_rcpt(&pol, "bob@example.net") == -1 ||
	    netaddr_parse("10.0.0.0/8", &na) == -1 ||
	    policy_add_net(&pol, &na) == -1)
		abort();
	policy_finish(&pol);
}

/* Split and feed the client's bytes; answer what the engine asks. */
static void
run(struct fuzz *f, struct linebuf *lb)
{
	struct smtp_session	*s = &f->s;
	const uint8_t		*line;
	size_t			 len, start;
	enum line_kind		 kind;
	int			 sync = 0, drain_at = rnd(f) % 64;

	while (s->state != SMTP_CLOSING) {
		if (s->wait == SMTP_WAIT_OPEN || (s->wait != SMTP_WAIT_NONE &&
		    (sync || coin(f)))) {
			answer(f);
			continue;
		}
		sync = 0;
		if (f->nlines == (size_t)drain_at && !s->draining) {
			smtp_drain(s);
			collect(f);
			continue;
		}
		start = lb->pos;
		kind = linebuf_next(lb, s->state == SMTP_DATA &&
		    s->wait == SMTP_WAIT_NONE ? SMTP_TEXT_MAX : SMTP_CMD_MAX,
		    &line, &len);
		if (kind == LINE_NONE)
			break;
		f->lines[f->nlines] = (struct fline){ line, len, kind,
		    f->fed + (lb->pos - start) };
		f->nlines++;
		if (!(s->state == SMTP_DATA && s->wait == SMTP_WAIT_NONE))
			sync = is_sync(&f->lines[f->nlines - 1]);
		feed(f, lb->buf + start, lb->pos - start);
	}
	/* The tail of a last line without its end, then the answers. */
	if (s->state != SMTP_CLOSING && lb->pos < lb->len)
		feed(f, lb->buf + lb->pos, lb->len - lb->pos);
	while (s->state != SMTP_CLOSING) {
		if (s->wait != SMTP_WAIT_NONE)
			answer(f);
		else if (!settle(f))
			break;
	}
	if (!f->closed) {
		/* Every line that wants an answer got it. */
		if (answered_line(f) != NULL)
			abort();
		smtp_drain(s);
		collect(f);
	}
	if (s->state == SMTP_CLOSING) {
		/* Closed: nothing more is read or said. */
		feed(f, (const uint8_t *)"NOOP\r\n", 6);
		smtp_drain(s);
		smtp_process(s);
		collect(f);
	}
	if (f->rlen != 0 || f->rcode != 0)
		abort();	/* a reply left unfinished */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz	*f;
	struct linebuf	 lb;
	uint8_t		*copy;

	if (size < 4)
		return 0;
	init_once();
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (copy = malloc(size)) == NULL ||
	    (f->lines = calloc(size + 1, sizeof(*f->lines))) == NULL ||
	    (f->body = malloc(size + 2)) == NULL)
		abort();
	memcpy(copy, data + 4, size - 4);
	linebuf_init(&lb, copy, size - 4);
	linebuf_fill(&lb, size - 4);
	setup(f, data);
	smtp_greet(&f->s);
	collect(f);
	run(f, &lb);
	smtp_free(&f->s);
	free(f->spool);
	free(f->body);
	free(f->lines);
	free(copy);
	free(f);
	return 0;
}
