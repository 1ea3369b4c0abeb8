/*
 * libFuzzer harness for the control socket's request reader
 * (relay/control_env.c): the words of a command line, and the envelope
 * of a sendmail submission.  The first byte chooses whether the caller
 * is an administrator; the rest is the request, its first line the
 * command, as relay/control.c splits it.
 *
 * What must hold: the words are the line's space-separated non-empty
 * pieces, in order (split here our own way); an envelope taken is at
 * least one recipient, a size within the limit, and addresses that
 * read back as themselves, with no '%', '!' or quoted '@'; a caller
 * who is no administrator keeps its own sender or is told no.
 *
 * FUZZ_SRCS: relay/control_env.c lib/addr.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "proto.h"
#include "relay/control_env.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_SIZE	1000
#define WORDS_MAX	32

/* Whether s is "" (if null_ok) or a mailbox that formats as itself. */
static int
reads_back(const char *s, int null_ok)
{
	struct mailaddr	 a;
	char		 path[ADDR_PATH_MAX + 3], out[ADDR_PATH_MAX + 1];
	size_t		 used;
	int		 n;

	if (*s == '\0')
		return null_ok;
	n = snprintf(path, sizeof(path), "<%s>", s);
	if (n < 0 || (size_t)n >= sizeof(path))
		return 0;
	if (addr_parse_path(path, (size_t)n, 0, 1, &a, &used) != ADDR_OK ||
	    used != (size_t)n || a.flags & (ADDR_F_PERCENT | ADDR_F_BANG |
	    ADDR_F_QUOTED_AT) || addr_format(&a, out, sizeof(out)) == -1)
		return 0;
	return strcmp(out, s) == 0;
}

static void
check_envelope(int admin, char *lines)
{
	struct submit_who	 who = { "alice", "mail.example", MAX_SIZE,
				    admin };
	struct qmsg		 m;
	const char		*why, *denied = NULL;
	uint64_t		 want = UINT64_MAX;
	uint32_t		 i;

	memset(&m, 0, sizeof(m));
	why = submit_envelope(&who, &m, lines, &want, &denied);
	if (why == NULL) {
		if (m.nrcpt == 0 || m.nrcpt > ENV_RCPT_MAX || want > MAX_SIZE)
			abort();
		for (i = 0; i < m.nrcpt; i++)
			if (!reads_back(m.rcpts[i].addr, 0))
				abort();
		if (!reads_back(m.from, 1))
			abort();
		if (!admin && denied == NULL &&
		    strcmp(m.from, "alice@mail.example") != 0)
			abort();
	}
	free(m.rcpts);
}

static void
check_words(const char *line)
{
	char	*copy, *words[WORDS_MAX];
	const char *p = line, *q;
	int	 n, i = 0;

	if ((copy = strdup(line)) == NULL)
		abort();
	n = control_words(copy, words, WORDS_MAX);
	if (n < -1 || n > WORDS_MAX)
		abort();
	for (; n >= 0 && *p != '\0'; p = *q == '\0' ? q : q + 1) {
		if ((q = strchr(p, ' ')) == NULL)
			q = p + strlen(p);
		if (q == p)
			continue;
		if (i >= n || strlen(words[i]) != (size_t)(q - p) ||
		    memcmp(words[i], p, q - p) != 0)
			abort();
		i++;
	}
	if (n >= 0 && i != n)
		abort();
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*req, *rest;

	if (size < 1)
		return 0;
	if ((req = malloc(size)) == NULL)
		abort();
	memcpy(req, data + 1, size - 1);
	req[size - 1] = '\0';
	if ((rest = strchr(req, '\n')) != NULL)
		*rest++ = '\0';
	if (strcmp(req, "submit") == 0)
		check_envelope(data[0] & 1, rest);
	else
		check_words(req);
	free(req);
	return 0;
}
