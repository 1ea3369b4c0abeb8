/*
 * libFuzzer harness for the bounce (DSN) builder, relay/bounce.c.
 *
 * The input is lines (LF): the first byte chooses the host name (a
 * short one or one of 253 octets) and whether the original is there;
 * then the sender's address; then a recipient a line, "SB ADDR REPLY":
 * S its state letter (P, D, F, ...), B 1 if already bounced, ADDR its
 * address, REPLY the upstream's reply line ("550 5.1.1 no such user"),
 * read by the real reply parser (relay/reply.c) as the relay does;
 * then a line "--" and the original message, made into CRLF lines of
 * at most 998 octets as smtp.c spools it.  Addresses go through
 * addr_parse_path() and addr_format() as the queue's do.
 *
 * The DSN must parse as a MIME message (RFC 2045, 2046, 6522, 3464),
 * checked here structurally: CRLF only, lines of at most 998 octets;
 * a header block with From, To (the sender), Subject, Date,
 * Message-ID, Auto-Submitted, MIME-Version and a multipart/report
 * Content-Type with report-type=delivery-status and a boundary of 1-70
 * legal characters; exactly three parts between the delimiters, the
 * close delimiter last: text/plain, message/delivery-status and
 * text/rfc822-headers; in the second a per-message block with
 * Reporting-MTA (dns) and Arrival-Date, then one block per failed,
 * not yet bounced recipient, in order, with Final-Recipient (rfc822;
 * its address), Action: failed, a Status of 5.x.y and a
 * Diagnostic-Code (smtp); the third the original's header block.
 *
 * FUZZ_SRCS: relay/bounce.c relay/queue.c relay/reply.c lib/addr.c
 * FUZZ_SRCS: relay/queue_pool.c relay/queue_check.c relay/queue_load.c relay/queue_inline.c
 * FUZZ_SRCS: lib/log.c lib/proc.c lib/imsg.c lib/event.c
 * FUZZ_SRCS: lib/envelope.c
 * FUZZ_SRCS: lib/imsg_rules.c
 * FUZZ_LIBS: -lcrypto
 */
#include <sys/mman.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "relay/bounce.h"
#include "relay/client.h"
#include "log.h"
#include "relay/queue.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define RCPTS_MAX	64
#define LINE_MAX_LEN	998

/* bounce.c links to it; bounce_write() never calls it. */
void	sched_add(struct qmsg *);
void
sched_add(struct qmsg *m)
{
	(void)m;
	abort();
}

static int	 dsnfd = -1, origfd = -1;

/* An address as the queue holds it; -1 if the relay would not. */
static int
queue_addr(const char *s, size_t len, int allow_null, char *out, size_t outlen)
{
	char		 path[ADDR_PATH_MAX + 3];
	struct mailaddr	 a;
	size_t		 used;
	int		 n;

	n = snprintf(path, sizeof(path), "<%.*s>", (int)len, s);
	if (n < 0 || (size_t)n >= sizeof(path) || memchr(s, '\0', len) ||
	    addr_parse_path(path, n, allow_null, 1, &a, &used) != ADDR_OK ||
	    used != (size_t)n)
		return -1;
	if (a.null) {
		*out = '\0';
		return 0;
	}
	return addr_format(&a, out, outlen);
}

/* One recipient line: "SB ADDR REPLY". */
static int
parse_rcpt(const char *l, size_t len, struct qrcpt *r)
{
	struct reply_parser	 rp;
	struct smtp_reply	 reply;
	const char		*sp;

	if (len < 4 || l[2] != ' ' ||
	    (sp = memchr(l + 3, ' ', len - 3)) == NULL)
		return -1;
	memset(r, 0, sizeof(*r));
	r->state = l[0];
	r->bounced = l[1] == '1';
	if (queue_addr(l + 3, sp - l - 3, 0, r->addr, sizeof(r->addr)) == -1)
		return -1;
	reply_parser_init(&rp);
	if (reply_parse_line(&rp, sp + 1, l + len - sp - 1, &reply) !=
	    REPLY_DONE)
		return -1;
	r->code = reply.code;
	strlcpy(r->text, reply.text, sizeof(r->text));
	return 0;
}

/* The original as smtp.c spools it: CRLF lines of 998 octets at most. */
static void
write_orig(const char *p, size_t len)
{
	const char	*nl, *end = p + len;
	size_t		 n;

	if (ftruncate(origfd, 0) == -1 || lseek(origfd, 0, SEEK_SET) != 0)
		abort();
	for (; p < end; p = nl + 1) {
		/* A bare CR or LF ends a line: smtp.c takes no other. */
		for (nl = p; nl < end && *nl != '\n' && *nl != '\r'; nl++)
			;
		n = nl - p;
		if (nl + 1 < end && nl[0] == '\r' && nl[1] == '\n')
			nl++;
		if (n > LINE_MAX_LEN)
			n = LINE_MAX_LEN;
		if (write(origfd, p, n) != (ssize_t)n ||
		    write(origfd, "\r\n", 2) != 2)
			abort();
	}
}

struct dsn {
	const char	*p, *end;	/* what is left */
};

/* The next CRLF line of the DSN; NULL at its end. */
static const char *
dsn_line(struct dsn *d, size_t *len)
{
	const char	*l = d->p, *cr;

	if (d->p == d->end)
		return NULL;
	if ((cr = memchr(d->p, '\r', d->end - d->p)) == NULL ||
	    cr + 1 == d->end || cr[1] != '\n')
		abort();
	*len = cr - l;
	d->p = cr + 2;
	return l;
}

/* Whether line l (len) is the header "name: ..." */
static int
is_field(const char *l, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	return len > n && strncasecmp(l, name, n) == 0 && l[n] == ':';
}

/*
 * A header block up to its empty line, unfolded into fields (each a
 * NUL-terminated "Name: value" in buf); the number of fields.
 */
static int
header_block(struct dsn *d, char *buf, size_t size, char **fields, int max)
{
	const char	*l;
	size_t		 len, used = 0, i;
	int		 n = 0;

	while ((l = dsn_line(d, &len)) != NULL && len > 0) {
		if (l[0] == ' ' || l[0] == '\t') {
			/* A continuation: glued to the field before. */
			if (n == 0 || used + len + 1 > size)
				abort();
			memcpy(buf + used - 1, l, len);
			used += len;
			buf[used - 1] = '\0';
			continue;
		}
		for (i = 0; i < len && l[i] != ':'; i++)
			if (l[i] <= ' ' || l[i] > '~')
				abort();	/* not a field name */
		if (i == 0 || i == len || n == max || used + len + 1 > size)
			abort();
		fields[n++] = buf + used;
		memcpy(buf + used, l, len);
		used += len + 1;
		buf[used - 1] = '\0';
	}
	if (l == NULL)
		abort();	/* no empty line after the headers */
	return n;
}

static const char *
field(char **fields, int n, const char *name)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (is_field(fields[i], strlen(fields[i]), name))
			return fields[i] + strlen(name) + 1 +
			    strspn(fields[i] + strlen(name) + 1, " \t");
	abort();
}

/* RFC 2046 5.1.1: 1-70 of bchars, not ending in a space. */
static void
check_boundary(const char *b, size_t n)
{
	size_t	 i;

	if (n < 1 || n > 70 || b[n - 1] == ' ')
		abort();
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)b[i]) &&
		    strchr("'()+_,-./:=? ", b[i]) == NULL)
			abort();
}

/* A Status: class 5, subject and detail of 1-3 digits. */
static void
check_status(const char *s)
{
	size_t	 a, b;

	if (s[0] != '5' || s[1] != '.')
		abort();
	a = strspn(s + 2, "0123456789");
	if (a < 1 || a > 3 || s[2 + a] != '.')
		abort();
	b = strspn(s + 3 + a, "0123456789");
	if (b < 1 || b > 3 || s[3 + a + b] != '\0')
		abort();
}

/* The message/delivery-status part, against the recipients. */
static void
check_status_part(struct dsn *d, const struct qmsg *m, char *buf,
    size_t size)
{
	char		*f[16];
	const char	*v;
	uint32_t	 i;
	int		 n;

	n = header_block(d, buf, size, f, 16);
	v = field(f, n, "Reporting-MTA");
	if (strncmp(v, "dns; ", 5) != 0 || v[5] == '\0')
		abort();
	(void)field(f, n, "Arrival-Date");
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (r->state != RCPT_FAILED || r->bounced)
			continue;
		n = header_block(d, buf, size, f, 16);
		v = field(f, n, "Final-Recipient");
		if (strncmp(v, "rfc822; ", 8) != 0 || strcmp(v + 8, r->addr))
			abort();
		if (strcmp(field(f, n, "Action"), "failed") != 0)
			abort();
		check_status(field(f, n, "Status"));
		if (strncmp(field(f, n, "Diagnostic-Code"), "smtp; ", 6) != 0)
			abort();
	}
}

/* Skip to the delimiter line; 1 for "--b", 2 for "--b--". */
static int
to_delimiter(struct dsn *d, const char *b, size_t blen)
{
	const char	*l;
	size_t		 len;

	while ((l = dsn_line(d, &len)) != NULL) {
		if (len < 2 + blen || l[0] != '-' || l[1] != '-' ||
		    memcmp(l + 2, b, blen) != 0)
			continue;
		if (len == 2 + blen)
			return 1;
		if (len == 4 + blen && l[2 + blen] == '-' &&
		    l[3 + blen] == '-')
			return 2;
		abort();	/* a line that starts like a delimiter */
	}
	abort();
}

static void
check_dsn(const char *text, size_t len, const struct qmsg *m)
{
	static char	 buf[1 << 16];
	struct dsn	 d = { text, text + len };
	char		*f[32], want[ADDR_PATH_MAX + 3];
	const char	*ct, *bp, *q;
	char		 b[80];
	size_t		 i, blen, n = 0;
	int		 nf;

	for (i = 0; i < len; i++) {
		/* A NUL can only come from the original, as it came. */
		if ((text[i] == '\n' && (i == 0 ||
		    text[i - 1] != '\r')) || (text[i] == '\r' &&
		    (i + 1 == len || text[i + 1] != '\n')))
			abort();
		if (text[i] == '\n')
			n = 0;
		else if (++n > LINE_MAX_LEN + 1)
			abort();
	}
	nf = header_block(&d, buf, sizeof(buf), f, 32);
	(void)field(f, nf, "From");
	(void)field(f, nf, "Subject");
	(void)field(f, nf, "Date");
	(void)field(f, nf, "Message-ID");
	snprintf(want, sizeof(want), "<%s>", m->from);
	if (strcmp(field(f, nf, "To"), want) != 0 ||
	    strcmp(field(f, nf, "Auto-Submitted"), "auto-replied") != 0 ||
	    strcmp(field(f, nf, "MIME-Version"), "1.0") != 0)
		abort();
	ct = field(f, nf, "Content-Type");
	if (strncasecmp(ct, "multipart/report;", 17) != 0 ||
	    strstr(ct, "report-type=delivery-status") == NULL ||
	    (bp = strstr(ct, "boundary=\"")) == NULL ||
	    (q = strchr(bp + 10, '"')) == NULL)
		abort();
	blen = q - bp - 10;
	if (blen >= sizeof(b))
		abort();
	memcpy(b, bp + 10, blen);
	check_boundary(b, blen);

	/* The preamble, then three parts. */
	if (to_delimiter(&d, b, blen) != 1)
		abort();
	nf = header_block(&d, buf, sizeof(buf), f, 32);
	if (strncasecmp(field(f, nf, "Content-Type"), "text/plain", 10))
		abort();
	if (to_delimiter(&d, b, blen) != 1)
		abort();
	nf = header_block(&d, buf, sizeof(buf), f, 32);
	if (strcasecmp(field(f, nf, "Content-Type"),
	    "message/delivery-status") != 0)
		abort();
	check_status_part(&d, m, buf, sizeof(buf));
	if (to_delimiter(&d, b, blen) != 1)
		abort();
	nf = header_block(&d, buf, sizeof(buf), f, 32);
	if (strcasecmp(field(f, nf, "Content-Type"),
	    "text/rfc822-headers") != 0)
		abort();
	if (to_delimiter(&d, b, blen) != 2 || d.p != d.end)
		abort();
}

static void
init_once(void)
{
	if (dsnfd != -1)
		return;
	log_init_child(0, 0, "fuzz", NULL);
	if ((dsnfd = memfd_create("dsn", 0)) == -1 ||
	    (origfd = memfd_create("orig", 0)) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 longhost[254];
	const char	*p = (const char *)data + 1, *end = p + size - 1, *nl;
	struct qmsg	 m;
	char		 id[QUEUE_ID_LEN + 1], *text;
	off_t		 len;
	int		 have_orig = 0;

	if (size < 1)
		return 0;
	init_once();
	memset(longhost, 'h', 253);
	memset(&m, 0, sizeof(m));
	if ((m.rcpts = calloc(RCPTS_MAX, sizeof(*m.rcpts))) == NULL)
		abort();
	strlcpy(m.id, "0123456789ABCDEF", sizeof(m.id));
	m.created = 1700000000 + (int64_t)(data[0] >> 2) * 86400 * 365;
	if ((nl = memchr(p, '\n', end - p)) == NULL ||
	    queue_addr(p, nl - p, 0, m.from, sizeof(m.from)) == -1)
		goto done;
	for (p = nl + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		if (nl - p == 2 && p[0] == '-' && p[1] == '-') {
			write_orig(nl + 1, nl + 1 < end ? end - nl - 1 : 0);
			have_orig = (data[0] & 2) == 0;
			break;
		}
		if (m.nrcpt < RCPTS_MAX &&
		    parse_rcpt(p, nl - p, &m.rcpts[m.nrcpt]) == 0)
			m.nrcpt++;
	}
	queue_new_id(id);
	if (ftruncate(dsnfd, 0) == -1 || lseek(dsnfd, 0, SEEK_SET) != 0 ||
	    bounce_write(dsnfd, &m, id, data[0] & 1 ? longhost : "mx.test",
	    have_orig ? origfd : -1) == -1 ||
	    (len = lseek(dsnfd, 0, SEEK_END)) <= 0 ||
	    (text = malloc(len)) == NULL ||
	    pread(dsnfd, text, len, 0) != len)
		abort();
	check_dsn(text, len, &m);
	free(text);
done:
	free(m.rcpts);
	return 0;
}
