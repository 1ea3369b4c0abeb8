/*
 * sendmail -bs: SMTP on standard input and output, for the programs
 * that would rather speak SMTP to sendmail than pass it arguments.
 * Each message goes through the control socket as sendmail's would.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "smtpctl.h"

#define BS_RCPT_MAX	1000
#define BS_LINE_MAX	1000

struct bs {
	const char	*path;
	char		*from;		/* NULL: no MAIL yet */
	char		*rcpts[BS_RCPT_MAX];
	size_t		 nrcpt;
};

static void
bs_reply(const char *text)
{
	printf("%s\r\n", text);
	fflush(stdout);
}

static void
bs_reset(struct bs *b)
{
	free(b->from);
	b->from = NULL;
	while (b->nrcpt > 0)
		free(b->rcpts[--b->nrcpt]);
}

/* The path of "FROM:<a>" or "TO:<a>", without its brackets. */
static char *
bs_path(const char *arg, const char *kw)
{
	size_t		 n = strlen(kw);
	const char	*lt, *gt;

	if (strncasecmp(arg, kw, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	if ((lt = strchr(arg, '<')) == NULL || (gt = strchr(lt, '>')) == NULL)
		return NULL;
	return strndup(lt + 1, (size_t)(gt - lt - 1));
}

static int
bs_getline(char *line, size_t len)
{
	if (fgets(line, (int)len, stdin) == NULL)
		return -1;
	line[strcspn(line, "\r\n")] = '\0';
	return 0;
}

/* DATA: to the lone ".", dot-stuffing undone; then submitted. */
static void
bs_data(struct bs *b)
{
	char	 line[BS_LINE_MAX + 2], *msg = NULL;
	size_t	 len = 0;
	FILE	*f;
	int	 rc;

	if (b->from == NULL || b->nrcpt == 0) {
		bs_reply("503 5.5.1 MAIL and RCPT first");
		return;
	}
	if ((f = open_memstream(&msg, &len)) == NULL) {
		bs_reply("451 4.3.0 out of memory");
		return;
	}
	bs_reply("354 End data with <CR><LF>.<CR><LF>");
	while (bs_getline(line, sizeof(line)) == 0 && strcmp(line, ".") != 0)
		fprintf(f, "%s\n", line[0] == '.' ? line + 1 : line);
	fclose(f);
	rc = sendmail_submit(b->path, b->from[0] != '\0' ? b->from : NULL,
	    b->rcpts, b->nrcpt, msg, len, 1);
	free(msg);
	bs_reset(b);
	if (rc == EX_OK_)
		bs_reply("250 2.0.0 Ok: queued");
	else if (rc == EX_TEMPFAIL_)
		bs_reply("451 4.3.0 smtpd is not available, try again later");
	else if (rc == EX_NOPERM_)
		bs_reply("550 5.7.1 Sender address not allowed");
	else
		bs_reply("554 5.6.0 Message refused");
}

static void
bs_command(struct bs *b, char *line)
{
	char	*arg = line + strcspn(line, " "), *p;

	if (*arg != '\0')
		*arg++ = '\0';
	if (strcasecmp(line, "HELO") == 0 || strcasecmp(line, "EHLO") == 0)
		bs_reply("250 localhost");
	else if (strcasecmp(line, "MAIL") == 0) {
		if ((p = bs_path(arg, "FROM:")) == NULL)
			bs_reply("501 5.5.4 Syntax: MAIL FROM:<address>");
		else {
			bs_reset(b);
			b->from = p;
			bs_reply("250 2.1.0 Ok");
		}
	} else if (strcasecmp(line, "RCPT") == 0) {
		if (b->from == NULL)
			bs_reply("503 5.5.1 MAIL first");
		else if ((p = bs_path(arg, "TO:")) == NULL || *p == '\0') {
			free(p);
			bs_reply("501 5.5.4 Syntax: RCPT TO:<address>");
		} else if (b->nrcpt >= BS_RCPT_MAX) {
			free(p);
			bs_reply("452 4.5.3 Too many recipients");
		} else {
			b->rcpts[b->nrcpt++] = p;
			bs_reply("250 2.1.5 Ok");
		}
	} else if (strcasecmp(line, "DATA") == 0)
		bs_data(b);
	else if (strcasecmp(line, "RSET") == 0) {
		bs_reset(b);
		bs_reply("250 2.0.0 Ok");
	} else if (strcasecmp(line, "NOOP") == 0)
		bs_reply("250 2.0.0 Ok");
	else
		bs_reply("502 5.5.2 Command not implemented");
}

int
sendmail_bs(const char *path, const char *from)
{
	struct bs	 b;
	char		 line[BS_LINE_MAX + 2];

	(void)from;
	memset(&b, 0, sizeof(b));
	b.path = path;
	bs_reply("220 localhost ESMTP smtpd sendmail -bs");
	while (bs_getline(line, sizeof(line)) == 0) {
		if (strcasecmp(line, "QUIT") == 0) {
			bs_reply("221 2.0.0 Bye");
			bs_reset(&b);
			return EX_OK_;
		}
		bs_command(&b, line);
	}
	bs_reset(&b);
	return EX_OK_;
}
