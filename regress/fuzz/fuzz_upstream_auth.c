/*
 * libFuzzer harness for the upstream-auth file parser (parent/secret.c):
 * "user password" on the first line.  The input is the file, written
 * to a memfd of mode 0600 (0640 when the first byte is odd: then it
 * must be refused) and read as "/proc/self/fd/N".
 *
 * The harness splits the first line its own way (up to the first LF or
 * NUL, less a CR that ends it, at the first space; a first line longer than the parser's
 * buffer is refused) and the parser must agree: the pair it
 * returns is exactly that, accepted if and only if both are non-empty
 * and fit; a refusal is one sentence naming the file, and leaves
 * no piece of a secret behind in the buffers.
 *
 * FUZZ_SRCS: parent/secret.c
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parent/parent.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define USER_MAX	256
#define PASS_MAX	256
#define LINE_MAX_	599	/* parent/secret.c: line[600], by fgets */

static const char *const reasons[] = {
	"readable by others (chmod 600 it)",
	"empty",
	"expected \"user password\"",
	"user or password too long",
	"first line too long",
};

static void
check_err(const char *path, const char *err)
{
	size_t	 n = strlen(path), i;

	if (strncmp(err, "upstream-auth ", 14) != 0 ||
	    strncmp(err + 14, path, n) != 0 || strncmp(err + 14 + n, ": ", 2))
		abort();
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(err + 16 + n, reasons[i]) == 0)
			return;
	abort();
}

/* Untouched (all x) or wiped (all NUL): no piece of a secret. */
static int
clean(const char *p, size_t n)
{
	size_t	 i;

	for (i = 1; i < n; i++)
		if (p[i] != p[0])
			return 0;
	return p[0] == 'x' || p[0] == '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 fd = -1;
	static char	 path[64];
	char		 user[USER_MAX], pass[PASS_MAX], err[256];
	const uint8_t	*line, *end, *sp;
	size_t		 ulen, plen;
	int		 rc, want;

	if (size < 1)
		return 0;
	if (fd == -1) {
		if ((fd = memfd_create("secret", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data + 1, size - 1, 0) !=
	    (ssize_t)(size - 1) || fchmod(fd, data[0] & 1 ? 0640 : 0600) == -1)
		abort();
	memset(user, 'x', sizeof(user));
	memset(pass, 'x', sizeof(pass));
	err[0] = '\0';
	rc = upstream_auth_read("upstream-auth", path, user, sizeof(user),
	    pass, sizeof(pass), err, sizeof(err));
	if (rc != 0 && rc != -1)
		abort();
	if (rc == -1) {
		check_err(path, err);
		if (!clean(user, sizeof(user)) || !clean(pass, sizeof(pass)))
			abort();
	}

	/* The first line as a C string, split at its first space. */
	line = data + 1;
	end = data + size;
	if ((sp = memchr(line, '\n', end - line)) != NULL)
		end = sp;
	if ((sp = memchr(line, '\0', end - line)) != NULL)
		end = sp;
	if (end > line && end[-1] == '\r')
		end--;		/* a CRLF file's */
	sp = memchr(line, ' ', end - line);
	want = !(data[0] & 1) && size > 1 && sp != NULL && sp > line &&
	    sp + 1 < end;
	ulen = sp != NULL ? (size_t)(sp - line) : 0;
	plen = sp != NULL ? (size_t)(end - sp - 1) : 0;
	if (ulen >= USER_MAX || plen >= PASS_MAX)
		want = 0;
	/* More than the parser's line buffer before any LF or NUL: refused
	 * whole, never cut into a shorter password. */
	if (size - 1 > LINE_MAX_ && memchr(data + 1, '\n', LINE_MAX_) == NULL &&
	    memchr(data + 1, '\0', LINE_MAX_) == NULL)
		want = 0;
	if (want != (rc == 0))
		abort();
	if (rc == 0 && (strlen(user) != ulen || memcmp(user, line, ulen) ||
	    strlen(pass) != plen || memcmp(pass, sp + 1, plen)))
		abort();
	return 0;
}
