/*
 * Queue format 4: a relayed message's envelope in the message's own
 * file, after the message, so that its commit writes one file and
 * names nothing (queue.h).  In format 3 every message had a second
 * file, its envelope, renamed into queue/ and out again: two pages a
 * message for each group's syncfs to write, three renames in the
 * directory's journal.
 *
 *	data/FILE	MESSAGE ENVELOPE FOOTER
 *
 * MESSAGE is the size bytes the worker wrote.  ENVELOPE is the envelope
 * text, version 3, whose check line (queue_check.c) hashes its marks as
 * if all were pending: they are rewritten in place (queue_mark()).
 * FOOTER is "smtpd-envelope LLLLLLLL\n", L the envelope's length in hex.
 * A file in data/ is a committed message when no queue/ID.env names it
 * and its footer, envelope and message agree with the check line; a
 * crash before a group's sync returned can leave one that does not,
 * and that one was never answered 250.  When the message is removed
 * its footer is overwritten before the file goes back to the pool.
 *
 * Only a relay writes it: a deliver program reads its message file to
 * its end, so deliver mode keeps the envelope in queue/ID.env.
 */
#include <sys/stat.h>

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "queue_int.h"

#define FOOTER_KEY	"smtpd-envelope "
#define FOOTER_LEN	(sizeof(FOOTER_KEY) - 1 + 8 + 1)

/*
 * Write m's envelope and footer after its message in fd (the message
 * file, written and checked to m->size) and cut the file there; no
 * sync, the caller's.  Its length in m->inline_len.
 */
int
queue_inline_write(struct qmsg *m, int fd)
{
	static const char	 zero[FOOTER_LEN];
	char			*text, *buf;
	size_t			 len;
	ssize_t			 n;

	if ((text = envfile_render(m, 1, &len)) == NULL)
		return -1;
	if (len > ENVFILE_MAX ||
	    (buf = realloc(text, len + FOOTER_LEN + 1)) == NULL) {
		free(text);
		errno = ENOMEM;
		return -1;
	}
	snprintf(buf + len, FOOTER_LEN + 1, FOOTER_KEY "%08zx\n", len);
	n = pwrite(fd, buf, len + FOOTER_LEN, (off_t)m->size);
	free(buf);
	if (n != (ssize_t)(len + FOOTER_LEN)) {
		if (n >= 0)
			errno = ENOSPC;
		return -1;
	}
	if (pool_fit(fd, (off_t)(m->size + len + FOOTER_LEN)) == -1) {
		/* Not committed: a crash must not find it so. */
		if (pwrite(fd, zero, FOOTER_LEN, (off_t)(m->size + len)) !=
		    (ssize_t)FOOTER_LEN)
			log_warn("event=queue-error queue_id=%s op=footer",
			    m->id);
		return -1;
	}
	m->inline_len = len;
	return 0;
}

/*
 * m is no longer queued: its footer is overwritten, so that its file
 * may be reused.  Not synced: a crash before it is written back sends
 * m again, as a crash before any removal does.  -1 if it could not be:
 * the file must then not be reused (the old footer could come back
 * over a new message's bytes that hash to the old check).
 */
int
queue_inline_free(const struct qmsg *m)
{
	static const char	 zero[FOOTER_LEN];
	ssize_t			 n;
	int			 fd;

	if (m->inline_len == 0)
		return 0;
	if ((fd = openat(queue_dir.datafd, m->file, O_WRONLY | O_CLOEXEC)) ==
	    -1)
		return errno == ENOENT ? 0 : -1;
	n = pwrite(fd, zero, FOOTER_LEN, (off_t)(m->size + m->inline_len));
	close(fd);
	return n == (ssize_t)FOOTER_LEN ? 0 : -1;
}

/*
 * m's envelope is in queue/ID.env, synced (queue_update(), or a start
 * that found it so): data/FILE is cut to the message, so that no
 * footer of it can come back once that envelope is gone.  If the cut
 * fails, the last bytes are overwritten instead, and the file may run
 * on past the message (file_long).  Not synced: a start cuts again.
 * If it cannot even be opened, it stays as it is, its footer to be
 * overwritten at the removal (inline_len kept).
 */
void
queue_inline_cut(struct qmsg *m)
{
	static const char	 zero[FOOTER_LEN];
	struct stat		 st;
	int			 fd;

	if (m->file[0] == '\0')
		return;
	if ((fd = openat(queue_dir.datafd, m->file, O_RDWR | O_CLOEXEC)) ==
	    -1 || fstat(fd, &st) == -1) {
		if (errno != ENOENT) {
			log_warn("event=queue-error queue_id=%s op=truncate",
			    m->id);
			m->file_long = 1;
		}
		if (fd != -1)
			close(fd);
		return;		/* ENOENT: queue_msg_check() says so */
	}
	m->inline_len = 0;
	if ((uint64_t)st.st_size > m->size &&
	    ftruncate(fd, (off_t)m->size) == -1) {
		log_warn("event=queue-error queue_id=%s op=truncate", m->id);
		m->file_long = 1;
		if ((uint64_t)st.st_size >= m->size + FOOTER_LEN &&
		    pwrite(fd, zero, FOOTER_LEN, st.st_size - (off_t)FOOTER_LEN)
		    != (ssize_t)FOOTER_LEN)
			log_warn("event=queue-error queue_id=%s op=footer",
			    m->id);
	}
	close(fd);
}

/* m's message file for its marks, which end at *end (queue_mark()). */
int
queue_inline_open(const struct qmsg *m, off_t *end)
{
	*end = (off_t)(m->size + m->inline_len);
	return openat(queue_dir.datafd, m->file, O_RDWR | O_CLOEXEC);
}

/*
 * The descriptor of m's file its commit used, kept for its first
 * delivery (queue_msg_take()), which then needs no open and no check:
 * a relayed message (format 4) only, whose descriptor no program gets,
 * and no more than QUEUE_KEEP_MAX at a time (an upstream down).
 */
static unsigned int	 queue_kept;	/* descriptors kept, all messages */

void
queue_msg_keep(struct qmsg *m, int fd)
{
	if (m->inline_len == 0 || queue_kept >= QUEUE_KEEP_MAX) {
		close(fd);
		return;
	}
	m->spool_fd = fd;
	m->spool_kept = 1;
	queue_kept++;
}

/* The kept descriptor of m, now the caller's; -1 if there is none. */
int
queue_msg_take(struct qmsg *m)
{
	if (!m->spool_kept)
		return -1;
	m->spool_kept = 0;
	queue_kept--;
	return m->spool_fd;
}

void
queue_msg_unkeep(struct qmsg *m)
{
	int	 fd = queue_msg_take(m);

	if (fd >= 0)
		close(fd);
}

/*
 * Whether some file in data/ ends in a footer: messages whose check
 * needs the queue's key (queue_check_key_load()).  1 when not known.
 */
int
queue_inline_any(void)
{
	struct dirent	*de;
	char		 foot[FOOTER_LEN];
	struct stat	 st;
	DIR		*d;
	int		 dfd, fd, any = 0;

	if ((dfd = dup(queue_dir.datafd)) == -1 || (d = fdopendir(dfd)) ==
	    NULL) {
		if (dfd != -1)
			close(dfd);
		return 1;
	}
	rewinddir(d);
	while (!any && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || (fd = openat(queue_dir.datafd,
		    de->d_name, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		any = fstat(fd, &st) == 0 && st.st_size >= (off_t)FOOTER_LEN &&
		    pread(fd, foot, FOOTER_LEN, st.st_size -
		    (off_t)FOOTER_LEN) == (ssize_t)FOOTER_LEN &&
		    memcmp(foot, FOOTER_KEY, sizeof(FOOTER_KEY) - 1) == 0;
		close(fd);
	}
	closedir(d);
	return any;
}

/*
 * The envelope that fd's footer gives, at *off, in a buffer to free;
 * NULL with *found 0 (no footer), 1 (a footer that makes no sense) or
 * -1 (a read or an allocation failed).
 */
static char *
inline_text(int fd, off_t size, off_t *off, size_t *lenp, int *found)
{
	char		 foot[FOOTER_LEN], *text;
	uint64_t	 v;
	size_t		 len;

	*found = 0;
	if (size < (off_t)FOOTER_LEN)
		return NULL;
	*found = -1;
	if (pread(fd, foot, FOOTER_LEN, size - (off_t)FOOTER_LEN) !=
	    (ssize_t)FOOTER_LEN)
		return NULL;
	*found = 0;
	if (memcmp(foot, FOOTER_KEY, sizeof(FOOTER_KEY) - 1) != 0 ||
	    foot[FOOTER_LEN - 1] != '\n')
		return NULL;
	*found = 1;
	if (queue_check_hex(foot + sizeof(FOOTER_KEY) - 1, 8, &v) == -1 ||
	    (len = (size_t)v) == 0 || len > ENVFILE_MAX ||
	    (off_t)len > size - (off_t)FOOTER_LEN)
		return NULL;
	*found = -1;
	*off = size - (off_t)FOOTER_LEN - (off_t)len;
	if ((text = malloc(len)) == NULL)
		return NULL;
	if (pread(fd, text, len, *off) != (ssize_t)len) {
		free(text);
		return NULL;
	}
	*found = 1;
	*lenp = len;
	return text;
}

/*
 * Whether text (at off in data/name) is the envelope of a commit; NULL
 * if not, or with *found -1 if memory ran out.
 */
static struct qmsg *
inline_parse(const char *name, const char *text, size_t len, off_t off,
    int *found)
{
	struct qmsg	*m;
	int		 rc;

	if (len < 10 || memcmp(text, "version 3\n", 10) != 0)
		return NULL;
	if ((rc = queue_check_env(text, len)) != 0) {
		if (rc == -2)
			*found = -1;	/* not known: it stays */
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		*found = -1;
		return NULL;
	}
	if (envfile_parse(text, len, m) == -1 || !m->has_check ||
	    strcmp(m->file, name) != 0 || m->size != (uint64_t)off) {
		qmsg_free(m);
		return NULL;
	}
	m->inline_len = len;
	return m;
}

/*
 * data/name as a committed message, or NULL: then *found is 0 if it
 * holds no footer (a free file), 1 if it does but is no commit (a
 * crash before its sync returned), with why; -1 if it could not be
 * read (it must stay: it may be a commit).
 */
struct qmsg *
queue_inline_load(const char *name, int *found, char *why, size_t whylen)
{
	struct qmsg	*m = NULL;
	struct stat	 st;
	uint64_t	 h;
	size_t		 len;
	off_t		 off;
	char		*text = NULL;
	int		 fd;

	*found = -1;
	snprintf(why, whylen, "%s", strerror(EIO));
	if ((fd = openat(queue_dir.datafd, name, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && (text = inline_text(fd, st.st_size, &off,
	    &len, found)) != NULL)
		m = inline_parse(name, text, len, off, found);
	if (m == NULL) {
		if (*found == 1)
			snprintf(why, whylen, "envelope does not match its "
			    "check line");
	} else if (queue_body_hash(fd, m->size, &h) == -1) {
		*found = -1;
		snprintf(why, whylen, "%s", strerror(errno));
		qmsg_free(m);
		m = NULL;
	} else if (h != m->body_check) {
		snprintf(why, whylen, "message file does not match its check "
		    "line");
		qmsg_free(m);
		m = NULL;
	}
	free(text);
	close(fd);
	return m;
}
