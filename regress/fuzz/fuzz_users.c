/*
 * libFuzzer harness for the users file parser of parent/auth.c
 * ("name crypt-hash" a line, blank lines and # comments allowed).  The
 * input is the file, written to a memfd of mode 0600 (0644 when the
 * first byte is odd: then it must be refused as readable by others)
 * and read as "/proc/self/fd/N".
 *
 * The harness reads the file its own way, a line up to each LF (a C
 * string: up to a NUL), and the parser must agree with it: one
 * "path:N: expected ..." line on errs for each bad line N, in order
 * ("path:N: line too long" past 1022 octets and the LF), and 0
 * returned if and only if there is none.
 *
 * FUZZ_SRCS: parent/auth.c lib/log.c lib/imsg.c lib/event.c
 * FUZZ_LIBS: -lcrypt -lcrypto
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parent/parent.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define LINE_MAX_LEN	1023

/* What auth.c links to and never calls while loading a file. */
struct child *
parent_child_by_pid(struct parent *p, pid_t pid)
{
	(void)p;
	(void)pid;
	abort();
}

void
parent_child_send(struct child *c, struct imsg_out *out)
{
	(void)c;
	(void)out;
	abort();
}

static int	 fd = -1;
static char	 path[64];

/* Whether line (len octets, no LF) is a good entry, a blank or comment. */
static int
line_ok(const uint8_t *l, size_t len)
{
	size_t	 i = 0;
	void	*nul;

	if ((nul = memchr(l, '\0', len)) != NULL)
		len = (const uint8_t *)nul - l;
	while (i < len && (l[i] == ' ' || l[i] == '\t'))
		i++;
	if (i == len || l[i] == '#')
		return 1;
	while (i < len && l[i] != ' ' && l[i] != '\t')
		i++;
	while (i < len && (l[i] == ' ' || l[i] == '\t'))
		i++;
	return i < len && l[i] == '$';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*p, *end, *nl;
	char		*errs = NULL, want[128], *e;
	size_t		 errlen = 0, lineno = 0, off = 0, n;
	FILE		*ef;
	int		 rc, bad = 0;

	if (size < 1)
		return 0;
	if (fd == -1) {
		log_init_child(0, 0, "fuzz", NULL);
		if ((fd = memfd_create("users", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data + 1, size - 1, 0) !=
	    (ssize_t)(size - 1) || fchmod(fd, data[0] & 1 ? 0644 : 0600) == -1)
		abort();
	if ((ef = open_memstream(&errs, &errlen)) == NULL)
		abort();
	rc = parent_users_load(path, ef);
	if (fclose(ef) != 0)
		abort();
	if (data[0] & 1) {
		snprintf(want, sizeof(want), "%s: readable by others (chmod "
		    "600 it)\n", path);
		if (rc != -1 || strcmp(errs, want) != 0)
			abort();
		free(errs);
		return 0;
	}
	end = data + size;
	for (p = data + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		lineno++;
		/* 1022 octets and the LF (1023 on a last line without). */
		if (nl - p > LINE_MAX_LEN || (nl - p == LINE_MAX_LEN && nl < end))
			n = snprintf(want, sizeof(want), "%s:%zu: line too "
			    "long\n", path, lineno);
		else if (line_ok(p, nl - p))
			continue;
		else
			n = snprintf(want, sizeof(want), "%s:%zu: expected "
			    "\"name crypt-hash\"\n", path, lineno);
		bad++;
		if (off + n > errlen || memcmp(errs + off, want, n) != 0)
			abort();
		off += n;
	}
	if (off != errlen || (rc == 0) != (bad == 0) || (rc != 0 && rc != -1))
		abort();
	e = errs;
	free(e);
	return 0;
}
