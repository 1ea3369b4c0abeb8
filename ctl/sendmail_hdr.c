/*
 * sendmail's reading of a message's header block: the recipients of
 * -t (To:, Cc: and Bcc:, with Bcc: cut out) and whether a field is
 * there.  Apart from sendmail.c so that a fuzzer can drive it
 * (regress/fuzz/fuzz_sendmail_hdr.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpctl.h"

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

/* Whether the field at p, flen bytes long, is the one named (with ':'). */
static int
sm_is_field(const char *p, size_t flen, const char *name)
{
	size_t	 n = strlen(name);

	return flen >= n && strncasecmp(p, name, n) == 0;
}

/*
 * A copy of the field at p with its line breaks taken out (RFC 5322
 * 2.2.3): a recipient never holds one, which would end its line of the
 * request to the daemon.
 */
static char *
sm_unfold(const char *p, size_t len)
{
	char	*v, *o;
	size_t	 i;

	if ((v = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0, o = v; i < len && p[i] != '\0'; i++)
		if (p[i] != '\r' && p[i] != '\n')
			*o++ = p[i];
	*o = '\0';
	return v;
}

/*
 * -t: the recipients of the To:, Cc: and Bcc: fields; the Bcc: fields
 * are cut out of the message.  Returns the new length of msg.
 */
size_t
sm_extract(char *msg, size_t len, char **rcpts, size_t *n)
{
	size_t	 hend = sm_header_end(msg, len), flen, off = 0;
	char	*v;

	while (off < hend) {
		flen = sm_field_len(msg + off, msg + hend);
		if (sm_is_field(msg + off, flen, "to:") ||
		    sm_is_field(msg + off, flen, "cc:") ||
		    sm_is_field(msg + off, flen, "bcc:")) {
			if ((v = sm_unfold(msg + off, flen)) == NULL)
				break;
			sm_addresses(strchr(v, ':') + 1, rcpts, n);
			free(v);
			if (tolower((unsigned char)msg[off]) == 'b') {
				memmove(msg + off, msg + off + flen,
				    len - off - flen);
				len -= flen;
				hend -= flen;
				msg[len] = '\0';
				continue;
			}
		}
		off += flen;
	}
	return len;
}

int
sm_has_field(const char *msg, size_t len, const char *name)
{
	size_t	 hend = sm_header_end(msg, len), off = 0, flen;

	while (off < hend) {
		flen = sm_field_len(msg + off, msg + hend);
		if (sm_is_field(msg + off, flen, name))
			return 1;
		off += flen;
	}
	return 0;
}
