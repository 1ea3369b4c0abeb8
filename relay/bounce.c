/*
 * Bounces.  For the recipients of a message that failed for good (and
 * were not reported yet) a new message is queued from <> to the sender:
 * a multipart/report (RFC 6522) with a human-readable part, a
 * message/delivery-status part (RFC 3464) and the original headers.
 * A bounce is never sent for a bounce or for a null sender.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bounce.h"
#include "log.h"
#include "proc.h"
#include "scheduler.h"

static void
rfc5322_date(int64_t t, char *buf, size_t len)
{
	time_t		 tt = (time_t)t;
	struct tm	 tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/*
 * Whether t starts with an enhanced status code (RFC 3463): class 4 or
 * 5, subject and detail of 1-3 digits (no sign, no blank: sscanf's %d
 * alone took "5.1.-1"), then a space or the end.
 */
static int
is_enhanced(const char *t)
{
	size_t	 a, b;

	if ((t[0] != '4' && t[0] != '5') || t[1] != '.')
		return 0;
	a = strspn(t + 2, "0123456789");
	if (a < 1 || a > 3 || t[2 + a] != '.')
		return 0;
	b = strspn(t + 3 + a, "0123456789");
	return b >= 1 && b <= 3 && (t[3 + a + b] == ' ' ||
	    t[3 + a + b] == '\0');
}

/* The enhanced status code in a reply text, or a default for code. */
static void
status_of(const struct qrcpt *r, char *buf, size_t len)
{
	int	 a, b, c;

	if (is_enhanced(r->text) &&
	    sscanf(r->text, "%1d.%3d.%3d", &a, &b, &c) == 3) {
		snprintf(buf, len, "5.%d.%d", b, c);
		return;
	}
	snprintf(buf, len, "%s", r->code >= 500 ? "5.0.0" : "4.0.0");
	if (r->code < 500)
		buf[0] = '5';	/* it failed for good in the end */
}

/*
 * A NUL in the original's headers would end the text in many a reader
 * of the DSN (RFC 5322 2.1 allows none): it is left out.
 */
static void
write_text(FILE *out, const char *buf, size_t n)
{
	const char	*p = buf, *end = buf + n, *nul;

	while (p < end) {
		if ((nul = memchr(p, '\0', end - p)) == NULL)
			nul = end;
		fwrite(p, 1, nul - p, out);
		p = nul + 1;
	}
}

/*
 * Copy the original's header block (up to its empty line, within its
 * size bytes: its envelope may follow, queue_inline.c) to out.
 */
static void
copy_headers(FILE *out, int origfd, uint64_t size)
{
	char	*buf, *end;
	ssize_t	 n;

	if ((buf = malloc(BOUNCE_HEADERS_MAX + 1)) == NULL)
		return;
	if ((n = pread(origfd, buf, size < BOUNCE_HEADERS_MAX ? size :
	    BOUNCE_HEADERS_MAX, 0)) <= 0) {
		free(buf);
		return;
	}
	buf[n] = '\0';
	if (n >= 2 && buf[0] == '\r' && buf[1] == '\n')
		n = 0;
	else if ((end = memmem(buf, n, "\r\n\r\n", 4)) != NULL)
		n = end - buf + 2;
	else if ((end = memrchr(buf, '\n', n)) != NULL)
		n = end - buf + 1;	/* whole lines only */
	write_text(out, buf, n);
	free(buf);
}

/* Write the DSN for m's newly failed recipients to fd. */
int
bounce_write(int fd, const struct qmsg *m, const char *id,
    const char *hostname, int origfd)
{
	char		*text = NULL, date[64], arrival[64], status[32];
	char		 b[71];
	size_t		 len = 0;
	FILE		*f;
	uint32_t	 i;
	int		 rc;

	if ((f = open_memstream(&text, &len)) == NULL)
		return -1;
	/* At most 70 characters (RFC 2046 5.1.1), whatever the host name. */
	snprintf(b, sizeof(b), "%s/%s", id, hostname);
	rfc5322_date(time(NULL), date, sizeof(date));
	rfc5322_date(m->created, arrival, sizeof(arrival));
	fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.bounce@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n"
	    "--%s\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is the mail system at host %s.\r\n\r\n"
	    "Your message could not be delivered to one or more "
	    "recipients.\r\n\r\n",
	    hostname, m->from, date, id, hostname, b, b, hostname);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (r->state == RCPT_FAILED && !r->bounced)
			fprintf(f, "<%s>: %d %s\r\n", r->addr, r->code,
			    r->text);
	}
	fprintf(f, "\r\n--%s\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Smtpd-Queue-ID: %s\r\n"
	    "Arrival-Date: %s\r\n", b, hostname, m->id, arrival);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		if (r->state != RCPT_FAILED || r->bounced)
			continue;
		status_of(r, status, sizeof(status));
		fprintf(f, "\r\nFinal-Recipient: rfc822; %s\r\n"
		    "Action: failed\r\n"
		    "Status: %s\r\n"
		    "Diagnostic-Code: smtp; %d %s\r\n", r->addr, status,
		    r->code, r->text);
	}
	fprintf(f, "\r\n--%s\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n", b);
	if (origfd != -1)
		copy_headers(f, origfd, m->size);
	fprintf(f, "\r\n--%s--\r\n", b);
	if (fclose(f) != 0) {
		free(text);
		return -1;
	}
	rc = proc_write_full(fd, text, len);
	free(text);
	return rc;
}

/* Queue a DSN to m's sender for its newly failed recipients. */
int
bounce_create(const struct qmsg *m, const struct smtpd_conf *conf)
{
	struct qmsg	*b;
	struct stat	 st;
	int		 fd, origfd;

	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->rcpts = calloc(1, sizeof(*b->rcpts))) == NULL) {
		qmsg_free(b);
		return -1;
	}
	do {
		queue_new_id(b->id);
	} while ((fd = queue_spool_create(b->id, QUEUE_OWNER_RELAY)) == -1 &&
	    errno == EEXIST);
	if (fd == -1) {
		qmsg_free(b);
		return -1;
	}
	origfd = queue_msg_open(m);
	if (bounce_write(fd, m, b->id, conf->hostname, origfd) == -1 ||
	    fstat(fd, &st) == -1) {
		if (origfd != -1)
			close(origfd);
		close(fd);
		queue_spool_discard(b->id, QUEUE_OWNER_RELAY);
		qmsg_free(b);
		return -1;
	}
	if (origfd != -1)
		close(origfd);
	strlcpy(b->peer_ip, "127.0.0.1", sizeof(b->peer_ip));
	strlcpy(b->helo, conf->hostname, sizeof(b->helo));
	b->from[0] = '\0';
	b->size = (uint64_t)st.st_size;
	b->flags = ENV_F_ESMTP;
	b->is_bounce = 1;
	b->created = b->next_try = (int64_t)time(NULL);
	b->nrcpt = 1;
	strlcpy(b->rcpts[0].addr, m->from, sizeof(b->rcpts[0].addr));
	b->rcpts[0].state = RCPT_PENDING;
	b->owner = QUEUE_OWNER_RELAY;
	if (queue_commit(b, fd) == -1 || queue_sync(0) == -1) {
		close(fd);
		queue_spool_discard(b->id, QUEUE_OWNER_RELAY);
		qmsg_free(b);
		return -1;
	}
	close(fd);
	/* The original's id in a field that its grep of queue_id= finds. */
	log_info("event=bounce queue_id=%s original_queue_id=%s to=%s", b->id,
	    m->id, log_qpath(m->from));
	sched_add(b);
	return 0;
}
