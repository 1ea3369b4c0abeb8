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
 * 16 lowercase hex digits.  After the sync the envelope is renamed to
 * ID.env, which it stays; only ID.new is checked at a restart.
 *
 * Format 4 (queue_inline.c) checks every envelope in a message file at
 * a restart the same way, but E is keyed (the first 64 bits of
 * HMAC-SHA256 under queue.key) and takes every mark as pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "log.h"
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
 * The queue's key (queue.c reads it from queue.key at the start): the
 * first hash of an envelope in its message file (format 4) is keyed
 * with it.  A worker has that file open, and could write an envelope
 * of its own after the one the relay checked; without the key it
 * cannot make one that a start takes as committed.
 */
static int	check_keyed(const char *, size_t, const char *, size_t,
		    uint64_t *);

static struct {
	unsigned char	 key[QUEUE_KEY_LEN];
	int		 set;
} check_key;

int
queue_check_set_key(const unsigned char *key)
{
	uint64_t	 h;

	memcpy(check_key.key, key, sizeof(check_key.key));
	check_key.set = 1;
	/* OpenSSL's first use loads what it needs: before the sandbox. */
	return check_keyed("", 0, "", 0, &h);
}

/*
 * The queue's key, QUEUE_KEY_LEN random bytes in
 * queue.key, made at the first start and durable before any message
 * uses it.  A key of another length is an error: the envelopes in
 * data/ could not be checked.
 */
int
queue_check_key_load(int root)
{
	unsigned char	 key[QUEUE_KEY_LEN + 1];
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(root, "queue.key", O_RDONLY | O_CLOEXEC)) != -1) {
		n = read(fd, key, sizeof(key));
		close(fd);
		if (n != QUEUE_KEY_LEN) {
			log_warnx("queue.key: not a key of %d bytes: a "
			    "damaged queue (see smtpd(8), FILES)",
			    QUEUE_KEY_LEN);
			errno = EINVAL;
			return -1;
		}
		n = queue_check_set_key(key);
		explicit_bzero(key, sizeof(key));
		return (int)n;
	}
	if (errno != ENOENT)
		return -1;
	/* Lost, with messages that need it: they must not be set aside. */
	if (queue_inline_any()) {
		log_warnx("queue.key is missing, and data/ holds messages "
		    "whose check needs it: put it back (see smtpd(8), FILES)");
		errno = ENOENT;
		return -1;
	}
	arc4random_buf(key, QUEUE_KEY_LEN);
	if ((fd = openat(root, "queue.key.tmp", O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) == -1)
		return -1;
	if (write(fd, key, QUEUE_KEY_LEN) != QUEUE_KEY_LEN ||
	    fsync(fd) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	if (renameat(root, "queue.key.tmp", root, "queue.key") == -1 ||
	    fsync(root) == -1)
		return -1;
	n = queue_check_set_key(key);
	explicit_bzero(key, sizeof(key));
	return (int)n;
}

/*
 * The first 64 bits of HMAC-SHA256, under the queue's key, of head and
 * tail ("marks ...\nend\n") with every mark taken as MARK_PENDING: an
 * envelope in its message file has its marks rewritten in place, and
 * its check must stay true.
 */
static int
check_keyed(const char *head, size_t headlen, const char *tail,
    size_t taillen, uint64_t *out)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		*buf;

	if (!check_key.set || (buf = malloc(headlen + taillen + 1)) == NULL)
		return -1;
	memcpy(buf, head, headlen);
	memcpy(buf + headlen, tail, taillen);
	if (taillen >= 11 && memcmp(tail, "marks ", 6) == 0)
		memset(buf + headlen + 6, MARK_PENDING, taillen - 11);
	if (HMAC(EVP_sha256(), check_key.key, sizeof(check_key.key),
	    (unsigned char *)buf, headlen + taillen, md, &mdlen) == NULL ||
	    mdlen < 8) {
		free(buf);
		return -1;
	}
	free(buf);
	*out = 0;
	for (i = 0; i < 8; i++)
		*out = *out << 8 | md[i];
	return 0;
}

/*
 * The first hash of an envelope: head (its text before the check line,
 * the message's 16 hex digits after it) and tail; keyed for one in its
 * message file (inline_env).
 */
static int
check_first(const char *head, size_t headlen, const char *hex,
    const char *tail, size_t taillen, int inline_env, uint64_t *out)
{
	char	*buf;
	int	 rc;

	if (!inline_env) {
		*out = check_hash(check_hash(check_hash(FNV_OFFSET, head,
		    headlen), hex, 16), tail, taillen);
		return 0;
	}
	if ((buf = malloc(headlen + 16)) == NULL)
		return -1;
	memcpy(buf, head, headlen);
	memcpy(buf + headlen, hex, 16);
	rc = check_keyed(buf, headlen + 16, tail, taillen, out);
	free(buf);
	return rc;
}

/*
 * The check line of an envelope whose text before it is head and after
 * it tail ("marks ...\nend\n"), into line (CHECK_LINE_LEN + 1 bytes,
 * without its leading newline, which ends head); inline_env as above.
 */
int
queue_check_line(const char *head, size_t headlen, const char *tail,
    size_t taillen, int inline_env, uint64_t body, char *line, size_t len)
{
	char		 hex[17];
	uint64_t	 h;

	snprintf(hex, sizeof(hex), "%016" PRIx64, body);
	if (check_first(head, headlen, hex, tail, taillen, inline_env,
	    &h) == -1)
		return -1;
	snprintf(line, len, "check %016" PRIx64 " %s\n", h, hex);
	return 0;
}

/* n lowercase hex digits at s (at most 16) into *v; -1 if they are not. */
int
queue_check_hex(const char *s, int n, uint64_t *v)
{
	int	 i;

	*v = 0;
	for (i = 0; i < n; i++) {
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
	    queue_check_hex(line + sizeof(CHECK_KEY) - 1, 16, &want) == -1)
		return -1;
	tail = line + CHECK_LINE_LEN + 1;
	if (check_first(text, line - text + 1, line + CHECK_LINE_LEN - 16,
	    tail, end - tail, len > 10 && memcmp(text, "version 3\n", 10) == 0,
	    &h) == -1)
		return -2;
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
