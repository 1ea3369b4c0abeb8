/*
 * Queue format 3: the check line of an envelope, and what a restart
 * makes of an envelope that a group commit renamed into queue/ before
 * the sync that made it durable (queue/ID.new).
 *
 * A group commit writes its messages, renames them into queue/ (the
 * envelope as ID.new) and then makes all of it durable with one
 * syncfs(2): one wait on the disk a message instead of two (bytes
 * first, names after).  A crash before that sync returned can leave a
 * name whose bytes are not yet on the disk: a reused file still holding
 * an earlier message's bytes, or part of them.  No such message was
 * answered 250, and the check line tells it from a committed one:
 * "check E M", M the 64-bit FNV-1a hash of the message's bytes, E that
 * of the envelope's other bytes (M's 16 digits in their place), both in
 * 16 lowercase hex digits.  After the sync the envelope is renamed to ID.env, which it
 * stays; only ID.new is checked at a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "queue.h"
#include "queue_int.h"

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL
#define CHECK_KEY	"\ncheck "
#define CHECK_LINE_LEN	(sizeof(CHECK_KEY) - 1 + 16 + 1 + 16)

/* 64-bit FNV-1a of buf, going on from h (FNV_OFFSET to start). */
static uint64_t
check_hash(uint64_t h, const void *buf, size_t len)
{
	const unsigned char	*p = buf;

	while (len-- > 0) {
		h ^= *p++;
		h *= FNV_PRIME;
	}
	return h;
}

/* The hash of the first size bytes of fd, read from offset 0. */
int
queue_body_hash(int fd, uint64_t size, uint64_t *out)
{
	static char	 buf[16384];
	uint64_t	 h = FNV_OFFSET, off = 0;
	ssize_t		 n;

	while (off < size) {
		n = pread(fd, buf, size - off < sizeof(buf) ? size - off :
		    sizeof(buf), (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		h = check_hash(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	*out = h;
	return 0;
}

/*
 * h going on over tail ("marks ...\nend\n"); with no_marks, as if every
 * mark were MARK_PENDING: the marks of an envelope in its message file
 * (format 4) are rewritten in place, and its check must stay true.
 */
static uint64_t
check_hash_tail(uint64_t h, const char *tail, size_t taillen, int no_marks)
{
	static const char	 pending = MARK_PENDING;
	size_t			 i;

	if (!no_marks || taillen < 11 || memcmp(tail, "marks ", 6) != 0)
		return check_hash(h, tail, taillen);
	h = check_hash(h, tail, 6);
	for (i = 6; i < taillen - 5; i++)
		h = check_hash(h, &pending, 1);
	return check_hash(h, tail + taillen - 5, 5);
}

/*
 * The check line of an envelope whose text before it is head and after
 * it tail ("marks ...\nend\n"), into line (CHECK_LINE_LEN + 1 bytes,
 * without its leading newline, which ends head); no_marks as above.
 */
void
queue_check_line(const char *head, size_t headlen, const char *tail,
    size_t taillen, int no_marks, uint64_t body, char *line, size_t len)
{
	char		 hex[17];
	uint64_t	 h;

	snprintf(hex, sizeof(hex), "%016" PRIx64, body);
	h = check_hash(FNV_OFFSET, head, headlen);
	h = check_hash(h, hex, 16);
	h = check_hash_tail(h, tail, taillen, no_marks);
	snprintf(line, len, "check %016" PRIx64 " %s\n", h, hex);
}

/* Sixteen lowercase hex digits at s into *v; -1 if they are not. */
int
queue_check_hex(const char *s, uint64_t *v)
{
	int	 i;

	*v = 0;
	for (i = 0; i < 16; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			*v = *v << 4 | (uint64_t)(s[i] - '0');
		else if (s[i] >= 'a' && s[i] <= 'f')
			*v = *v << 4 | (uint64_t)(s[i] - 'a' + 10);
		else
			return -1;
	}
	return 0;
}

/*
 * Whether the envelope text holds a check line whose first hash is
 * that of its other bytes (the message's hash included).  No value can start a line (every value is
 * escaped), so the last line that starts "check " is the one.
 */
int
queue_check_env(const char *text, size_t len)
{
	const char	*p, *line = NULL, *end = text + len, *tail;
	uint64_t	 h, want;

	for (p = memchr(text, '\n', len); p != NULL && p + 1 < end;
	    p = memchr(p + 1, '\n', end - p - 1))
		if ((size_t)(end - p) > CHECK_LINE_LEN &&
		    memcmp(p, CHECK_KEY, sizeof(CHECK_KEY) - 1) == 0)
			line = p;
	if (line == NULL || line[CHECK_LINE_LEN] != '\n' ||
	    line[CHECK_LINE_LEN - 17] != ' ' ||
	    queue_check_hex(line + sizeof(CHECK_KEY) - 1, &want) == -1)
		return -1;
	tail = line + CHECK_LINE_LEN + 1;
	h = check_hash(FNV_OFFSET, text, line - text + 1);
	h = check_hash(h, line + CHECK_LINE_LEN - 16, 16);
	h = check_hash_tail(h, tail, end - tail, len > 10 &&
	    memcmp(text, "version 3\n", 10) == 0);
	return h == want ? 0 : -1;
}

/*
 * Whether the message file of envelope m (read from ID.new) has
 * the size and the hash its check line gives; why not, in why.
 */
int
queue_check_msg(const struct qmsg *m, char *why, size_t len)
{
	uint64_t	 h;
	const char	*name;
	int		 fd, rc, dir = queue_msg_dir(m, &name);

	if ((fd = openat(dir, name, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, len, "message file: %s", strerror(errno));
		return -1;
	}
	rc = queue_body_hash(fd, m->size, &h);
	close(fd);
	if (rc == -1 || h != m->body_check) {
		snprintf(why, len, "message file does not match its check "
		    "line");
		return -1;
	}
	return 0;
}
