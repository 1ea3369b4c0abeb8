/*
 * smtpctl called as sendmail: a message on standard input, queued
 * through the control socket, with the options cron, PHP's mail() and
 * their like use, and sysexits(3) statuses.  The envelope sender is the
 * daemon's to decide (the calling user, from SO_PEERCRED); -f asks for
 * another, which only root and control-group get.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "smtpctl.h"

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

/*
 * An argument with a control character in it: each is one line of the
 * request, or one header field, and a line break would start another.
 */
static int
sm_bad_arg(const char *what, const char *arg)
{
	const unsigned char	*p;

	if (arg == NULL)
		return 0;
	for (p = (const unsigned char *)arg; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(stderr, "sendmail: %s holds a control "
			    "character\n", what);
			return 1;
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
	if (sm_bad_arg("-f", o.from) || sm_bad_arg("-F", o.fullname))
		return EX_USAGE_;
	if (o.smtp)
		return sendmail_bs(path, o.from);
	for (i = optind; i < argc; i++)
		if (sm_bad_arg("a recipient", argv[i]))
			return EX_USAGE_;
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
