/*
 * The server side of fuzz_body.c: what the body writer sent, read by
 * the real engine (smtpd/smtp.c) in DATA after a real transaction.  A
 * file of its own: the server's and the client's headers cannot meet.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "smtpd/smtp.h"

void	body_server_check(const char *, size_t, const char *, size_t, int);

static int	 enginefd = -1;

struct server {
	struct smtpd_conf	 conf;
	struct smtp_session	 s;
	int			 commits;
};

static void
s_open(struct smtp_session *s)
{
	if (enginefd == -1 && (enginefd = memfd_create("engine", 0)) == -1)
		abort();
	if (ftruncate(enginefd, 0) == -1 || lseek(enginefd, 0, SEEK_SET) != 0)
		abort();
	smtp_open_done(s, dup(enginefd));
}

static void
s_commit(struct smtp_session *s)
{
	((struct server *)s->owner)->commits++;
}

static const struct smtp_ops s_ops = { s_open, s_commit, NULL, NULL };

static void
s_feed(struct server *sv, const char *p, size_t n)
{
	uint8_t	*space;
	size_t	 avail, k;

	while (n > 0) {
		if ((space = smtp_input_space(&sv->s, &avail)) == NULL ||
		    avail == 0)
			abort();
		k = n < avail ? n : avail;
		memcpy(space, p, k);
		smtp_input_fill(&sv->s, k);
		smtp_process(&sv->s);
		buf_drain(&sv->s.out, buf_left(&sv->s.out));
		p += k;
		n -= k;
	}
}

/* The engine reads w; clean: the message must be exp. */
void
body_server_check(const char *w, size_t wlen, const char *exp, size_t explen,
    int clean)
{
	static const char	 txn[] = "EHLO relay.test\r\nMAIL FROM:<a@b.test>"
	    "\r\nRCPT TO:<c@d.test>\r\nDATA\r\n";
	struct server		*sv;
	char			*got;
	off_t			 n;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		abort();
	conf_defaults(&sv->conf);
	sv->conf.mode = MODE_DEBUG;
	sv->conf.max_size = UINT64_MAX / 2;
	strcpy(sv->conf.hostname, "mx.test");
	smtp_init(&sv->s, &sv->conf, &s_ops, sv, "127.0.0.1", 25);
	sv->s.loopback = 1;
	s_feed(sv, txn, sizeof(txn) - 1);
	if (sv->s.state != SMTP_DATA)
		abort();
	/* All but the last octet: the data must not have ended. */
	s_feed(sv, w, wlen - 1);
	if (sv->s.state != SMTP_DATA || sv->s.wait != SMTP_WAIT_NONE)
		abort();
	s_feed(sv, w + wlen - 1, 1);
	if (sv->s.state == SMTP_DATA && sv->s.wait == SMTP_WAIT_NONE)
		abort();
	if (sv->s.in.buf != NULL && linebuf_pending(&sv->s.in) != 0)
		abort();
	if (clean) {
		if (sv->commits != 1 || (n = lseek(enginefd, 0, SEEK_END)) < 0 ||
		    (size_t)n != explen || (got = malloc(explen + 1)) == NULL ||
		    pread(enginefd, got, explen, 0) != (ssize_t)explen ||
		    memcmp(got, exp, explen) != 0)
			abort();
		free(got);
	}
	smtp_free(&sv->s);
	free(sv);
}
