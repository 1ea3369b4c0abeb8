/*
 * The words of a control request and the envelope of a submission,
 * read with nothing but the request and who sent it: apart from the
 * socket and the queue so that a fuzzer can drive them
 * (regress/fuzz/fuzz_control.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "addr.h"
#include "control_env.h"

/* An address of the request into out: -1 if it is no mailbox. */
static int
submit_addr(const char *hostname, const char *val, int allow_null, char *out,
    size_t len)
{
	struct mailaddr		 a;
	char			 path[ADDR_PATH_MAX + 8];
	size_t			 used;
	int			 bad;

	/* cron writes to "root": a local name is at our hostname. */
	if (strchr(val, '@') == NULL && val[0] != '\0')
		snprintf(path, sizeof(path), "<%s@%s>", val, hostname);
	else
		snprintf(path, sizeof(path), "<%s>", val);
	if (addr_parse_path(path, strlen(path), allow_null, 1, &a,
	    &used) != ADDR_OK || used != strlen(path))
		return -1;
	bad = ADDR_F_PERCENT | ADDR_F_BANG | ADDR_F_QUOTED_AT;
	if (a.flags & bad)
		return -1;
	if (a.null) {
		out[0] = '\0';
		return 0;
	}
	return addr_format(&a, out, len) == -1 ? -1 : 0;
}

static int
submit_rcpt(const char *hostname, struct qmsg *m, const char *val)
{
	struct qrcpt	*r;

	if (m->nrcpt >= ENV_RCPT_MAX)
		return -1;
	if ((r = reallocarray(m->rcpts, m->nrcpt + 1, sizeof(*r))) == NULL)
		return -1;
	m->rcpts = r;
	r = &m->rcpts[m->nrcpt];
	memset(r, 0, sizeof(*r));
	r->state = RCPT_PENDING;
	if (submit_addr(hostname, val, 0, r->addr, sizeof(r->addr)) == -1)
		return -1;
	m->nrcpt++;
	return 0;
}

/*
 * The envelope lines of a submission into m, and the size that follows
 * into want; NULL if good, else why not.  A sender that who may not set
 * is named in denied.
 */
const char *
submit_envelope(const struct submit_who *who, struct qmsg *m, char *lines,
    uint64_t *want, const char **denied)
{
	char			*line, *val, own[ADDR_PATH_MAX + 1];
	const char		*errstr = NULL;
	int			 from = 0, size = 0;

	if ((size_t)snprintf(own, sizeof(own), "%.64s@%.190s", who->user,
	    who->hostname) >= sizeof(own))
		return "host name too long";
	strlcpy(m->from, own, sizeof(m->from));
	while (lines != NULL && (line = strsep(&lines, "\n")) != NULL) {
		if (*line == '\0')
			continue;
		if ((val = strchr(line, ' ')) == NULL)
			return "bad request line";
		*val++ = '\0';
		if (strcmp(line, "from") == 0 && !from++) {
			if (submit_addr(who->hostname, val, 1, m->from,
			    sizeof(m->from)) == -1)
				return "bad sender address";
		} else if (strcmp(line, "rcpt") == 0) {
			if (submit_rcpt(who->hostname, m, val) == -1)
				return "bad recipient address";
		} else if (strcmp(line, "size") == 0 && !size++) {
			*want = strtonum(val, 0, who->max_size, &errstr);
			if (errstr != NULL)
				return "message too big";
		} else
			return "bad request line";
	}
	if (!size || m->nrcpt == 0)
		return "no recipients";
	if (!who->admin && strcmp(m->from, own) != 0)
		*denied = "only root and control-group may set the sender";
	return NULL;
}

/* A request's first line into its words; their number, -1 if too many. */
int
control_words(char *line, char **words, int max)
{
	int	 n = 0;

	while ((words[n] = strsep(&line, " ")) != NULL)
		if (*words[n] != '\0' && ++n == max)
			return line == NULL ? n : -1;
	return n;
}
