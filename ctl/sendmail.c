/*
 * smtpctl called as sendmail: a message on standard input, queued
 * through the control socket, with the options cron, PHP's mail() and
 * their like use, and sysexits(3) statuses.  The envelope sender is the
 * daemon's to decide (the calling user, from SO_PEERCRED); -f asks for
 * another, which only root and control-group get.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "smtpctl.h"

#define SM_RCPT_MAX	1000

struct sm_opts {
	int		 extract;	/* -t */
	int		 dot_ok;	/* -i, -oi: a lone "." is text */
	int		 smtp;		/* -bs */
	const char	*from;		/* -f, -r */
	const char	*fullname;	/* -F */
};

/* Standard input, to its end or (without -i) to a line of one ".". */
static char *
sm_read(int dot_ok, size_t *lenp)
{
	char	*buf = NULL, *line = NULL;
	size_t	 len = 0, cap = 0;
	ssize_t	 n;
	FILE	*f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	while ((n = getline(&line, &cap, stdin)) != -1) {
		if (!dot_ok && (strcmp(line, ".\n") == 0 ||
		    strcmp(line, ".\r\n") == 0 || strcmp(line, ".") == 0))
			break;
		fwrite(line, 1, (size_t)n, f);
	}
	free(line);
	if (fclose(f) != 0 || ferror(stdin)) {
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

/* The end of the header block of msg: the offset of its empty line. */
static size_t
sm_header_end(const char *msg, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (msg[i] == '\n' && (i + 1 == len || msg[i + 1] == '\n' ||
		    (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')))
			return i + 1;
	return len;
}

/* The length of the header field at p (continuation lines included). */
static size_t
sm_field_len(const char *p, const char *end)
{
	const char	*q = p;

	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));

		q = nl == NULL ? end : nl + 1;
		if (q >= end || (*q != ' ' && *q != '\t'))
			break;
	}
	return (size_t)(q - p);
}

/* One address of a list item: inside <>, else the item without (). */
static void
sm_item(char *item, char **rcpts, size_t *n)
{
	char	*lt, *gt, *p, *o;
	int	 depth = 0;

	if ((lt = strrchr(item, '<')) != NULL &&
	    (gt = strchr(lt, '>')) != NULL) {
		*gt = '\0';
		item = lt + 1;
	} else {
		for (p = o = item; *p != '\0'; p++) {
			if (*p == '(')
				depth++;
			else if (*p == ')' && depth > 0)
				depth--;
			else if (depth == 0 && !isspace((unsigned char)*p))
				*o++ = *p;
		}
		*o = '\0';
	}
	if (*item != '\0' && *n < SM_RCPT_MAX)
		rcpts[(*n)++] = strdup(item);
}

/* The addresses of a To:, Cc: or Bcc: value (groups included). */
static void
sm_addresses(char *v, char **rcpts, size_t *n)
{
	char	*item = v, *p;
	int	 quoted = 0, angle = 0;

	for (p = v; ; p++) {
		if (*p == '"' && (p == v || p[-1] != '\\'))
			quoted = !quoted;
		else if (!quoted && *p == '<')
			angle = 1;
		else if (!quoted && *p == '>')
			angle = 0;
		else if (!quoted && !angle && *p == ':')
			item = p + 1;	/* a group's name */
		else if (*p == '\0' || (!quoted && !angle && (*p == ',' ||
		    *p == ';'))) {
			int end = *p == '\0';

			*p = '\0';
			sm_item(item, rcpts, n);
			item = p + 1;
			if (end)
				break;
		}
	}
}

/*
 * -t: the recipients of the To:, Cc: and Bcc: fields; the Bcc: fields
 * are cut out of the message.  Returns the new length of msg.
 */
static size_t
sm_extract(char *msg, size_t len, char **rcpts, size_t *n)
{
	size_t	 hend = sm_header_end(msg, len), flen, off = 0;
	char	*v;

	while (off < hend) {
		flen = sm_field_len(msg + off, msg + hend);
		if (strncasecmp(msg + off, "to:", 3) == 0 ||
		    strncasecmp(msg + off, "cc:", 3) == 0 ||
		    strncasecmp(msg + off, "bcc:", 4) == 0) {
			v = strndup(msg + off, flen);
			sm_addresses(strchr(v, ':') + 1, rcpts, n);
			free(v);
			if (tolower((unsigned char)msg[off]) == 'b') {
				memmove(msg + off, msg + off + flen,
				    len - off - flen);
				len -= flen;
				hend -= flen;
				continue;
			}
		}
		off += flen;
	}
	return len;
}

static int
sm_has_field(const char *msg, size_t len, const char *name)
{
	size_t	 hend = sm_header_end(msg, len), off = 0, n = strlen(name);

	while (off < hend) {
		if (strncasecmp(msg + off, name, n) == 0)
			return 1;
		off += sm_field_len(msg + off, msg + hend);
	}
	return 0;
}

/* From: and Date: where the message has none, as cleanup(8) does. */
static char *
sm_complete(const struct sm_opts *o, char *msg, size_t *len)
{
	char		*out = NULL, host[256], date[64];
	size_t		 olen = 0;
	struct passwd	*pw = getpwuid(getuid());
	time_t		 now = time(NULL);
	FILE		*f;

	if ((f = open_memstream(&out, &olen)) == NULL)
		return msg;
	if (gethostname(host, sizeof(host)) == -1)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	if (!sm_has_field(msg, *len, "from:")) {
		if (o->fullname != NULL)
			fprintf(f, "From: \"%s\" ", o->fullname);
		else
			fputs("From: ", f);
		if (o->from != NULL)
			fprintf(f, "<%s>\n", o->from);
		else
			fprintf(f, "<%s@%s>\n", pw != NULL ? pw->pw_name :
			    "nobody", host);
	}
	if (!sm_has_field(msg, *len, "date:")) {
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
		    localtime(&now));
		fprintf(f, "Date: %s\n", date);
	}
	fwrite(msg, 1, *len, f);
	if (fclose(f) != 0)
		return msg;
	free(msg);
	*len = olen;
	return out;
}

/* The envelope and the message to the daemon; a sysexits status. */
int
sendmail_submit(const char *path, const char *from, char **rcpts,
    size_t nrcpt, const char *msg, size_t len, int quiet)
{
	struct ctl_answer	 a;
	char			*hdr = NULL;
	size_t			 hlen = 0, i;
	FILE			*f;
	int			 rc;

	if ((f = open_memstream(&hdr, &hlen)) == NULL)
		return EX_SOFTWARE_;
	fputs("submit\n", f);
	if (from != NULL)
		fprintf(f, "from %s\n", from);
	for (i = 0; i < nrcpt; i++)
		fprintf(f, "rcpt %s\n", rcpts[i]);
	fprintf(f, "size %zu", len);
	if (fclose(f) != 0)
		return EX_SOFTWARE_;
	rc = ctl_request(path, hdr, msg, len, &a);
	free(hdr);
	if (rc == 0) {
		ctl_answer_free(&a);
		return EX_OK_;
	}
	if (!quiet)
		fprintf(stderr, "sendmail: %s\n", a.text != NULL ? a.text :
		    "failed");
	switch (a.status) {
	case CTL_DOWN:
	case CTL_TEMPFAIL:
		rc = EX_TEMPFAIL_;
		break;
	case CTL_DENIED:
		rc = EX_NOPERM_;
		break;
	default:
		rc = EX_DATAERR_;
	}
	ctl_answer_free(&a);
	return rc;
}

static int
sm_option(struct sm_opts *o, int ch, const char *arg)
{
	switch (ch) {
	case 't':
		o->extract = 1;
		break;
	case 'i':
		o->dot_ok = 1;
		break;
	case 'f':
	case 'r':
		o->from = arg;
		break;
	case 'F':
		o->fullname = arg;
		break;
	case 'o':
		/* -oi is -i; every other -o option is ignored. */
		if (strcmp(arg, "i") == 0)
			o->dot_ok = 1;
		break;
	case 'b':
		if (strcmp(arg, "s") == 0)
			o->smtp = 1;
		else if (strcmp(arg, "m") != 0) {
			fprintf(stderr, "sendmail: -b%s is not supported\n",
			    arg);
			return -1;
		}
		break;
	case 'v':
		break;
	default:
		fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] "
		    "[-F name] [-bm | -bs] [-o option] [recipient ...]\n");
		return -1;
	}
	return 0;
}

int
sendmail_main(int argc, char **argv, const char *path)
{
	struct sm_opts	 o;
	char		*rcpts[SM_RCPT_MAX], *msg;
	size_t		 n = 0, len;
	int		 ch, rc, i;

	memset(&o, 0, sizeof(o));
	while ((ch = getopt(argc, argv, "+tif:r:F:o:b:v")) != -1)
		if (sm_option(&o, ch, optarg) == -1)
			return EX_USAGE_;
	if (o.from != NULL && (*o.from == '\0' || strcmp(o.from, "<>") == 0))
		o.from = "";
	if (o.smtp)
		return sendmail_bs(path, o.from);
	for (i = optind; i < argc && n < SM_RCPT_MAX; i++)
		rcpts[n++] = strdup(argv[i]);
	if ((msg = sm_read(o.dot_ok, &len)) == NULL) {
		fprintf(stderr, "sendmail: reading the message: %s\n",
		    strerror(errno));
		return EX_SOFTWARE_;
	}
	if (o.extract)
		len = sm_extract(msg, len, rcpts, &n);
	if (n == 0) {
		fprintf(stderr, "sendmail: no recipients\n");
		free(msg);
		return EX_USAGE_;
	}
	msg = sm_complete(&o, msg, &len);
	rc = sendmail_submit(path, o.from, rcpts, n, msg, len, 0);
	free(msg);
	while (n > 0)
		free(rcpts[--n]);
	return rc;
}
