/*
 * Queue files.  Every path is relative to descriptors opened before the
 * sandbox, so the same code runs chrooted into the queue or not.  The
 * envelope format is line-oriented text in which every value is
 * %-escaped: nothing from the network can start a line of its own.
 */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "queue.h"
#include "queue_int.h"

#define ENVFILE_VERSION	2	/* 1: no check line (queue formats 1, 2) */
#define ENVFILE_VERSION_INLINE	3	/* in its message file (format 4) */

struct queue_dirs	queue_dir = { -1, -1, -1, -1 };

static void	msg_release(const struct qmsg *, int unsynced);

static int
open_subdir(int root, const char *name)
{
	int	 fd;

	if (mkdirat(root, name, 0700) == -1 && errno != EEXIST)
		return -1;
	if ((fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return -1;
	return fd;
}

/* Open (and create) the queue directories; clean what a crash left. */
int
queue_open(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	int		 root, fd;

	if ((root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("queue directory %s", path);
		return -1;
	}
	queue_dir.tmpfd = open_subdir(root, "tmp");
	queue_dir.qfd = open_subdir(root, "queue");
	queue_dir.corruptfd = open_subdir(queue_dir.qfd, "corrupt");
	queue_dir.datafd = open_subdir(root, "data");
	if (queue_dir.tmpfd == -1 || queue_dir.qfd == -1 ||
	    queue_dir.corruptfd == -1 || queue_dir.datafd == -1) {
		log_warn("queue subdirectories in %s", path);
		close(root);
		return -1;
	}
	if (queue_check_key_load(root) == -1) {
		log_warn("queue key in %s", path);
		close(root);
		return -1;
	}
	close(root);
	/* Nothing in tmp/ was ever answered 250. */
	if ((fd = dup(queue_dir.tmpfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(queue_dir.tmpfd, de->d_name, 0);
	closedir(d);
	return 0;
}

/* A fresh random queue id. */
int
queue_new_id(char *id)
{
	/*
	 * Drawn 64 at a time: each draw costs libbsd a getpid().  Only the
	 * relay draws, and it forks nothing that draws after it.
	 */
	static uint64_t	 r[64];
	static size_t	 left;

	if (left == 0) {
		arc4random_buf(r, sizeof(r));
		left = sizeof(r) / sizeof(r[0]);
	}
	snprintf(id, QUEUE_ID_LEN + 1, "%016" PRIX64, r[--left]);
	explicit_bzero(&r[left], sizeof(r[left]));
	return 0;
}

int
valid_id(const char *id)
{
	size_t	 i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!isxdigit((unsigned char)id[i]) ||
		    islower((unsigned char)id[i]))
			return 0;
	return id[QUEUE_ID_LEN] == '\0';
}

/* Whether name starts with a queue id (ID.env). */
int
valid_id_prefix(const char *name)
{
	char	 id[QUEUE_ID_LEN + 1];

	memcpy(id, name, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	return valid_id(id);
}

/* Escape for the envelope file: %XX for space, controls, 8-bit and %. */
static void
env_put(FILE *f, const char *key, const char *val)
{
	const unsigned char	*p, *run;

	fputs(key, f);
	fputc(' ', f);
	if (*val == '\0')
		fputs("%00", f);
	/* Runs of plain bytes in one write: most values are all plain. */
	for (p = (const unsigned char *)val; *p != '\0';) {
		for (run = p; *p > ' ' && *p < 0x7f && *p != '%'; p++)
			;
		if (p > run)
			fwrite(run, 1, (size_t)(p - run), f);
		if (*p != '\0')
			fprintf(f, "%%%02X", *p++);
	}
	fputc('\n', f);
}

/*
 * A recipient's mark: what a restart must know even when no new
 * envelope could be written.  P: try it, D: delivered, B: failed and
 * its DSN queued.  Marks only ever go from P to D or B.
 */
static char
rcpt_mark(const struct qrcpt *r)
{
	if (r->state == RCPT_DONE)
		return MARK_DONE;
	if (r->state == RCPT_FAILED && r->bounced)
		return MARK_BOUNCED;
	return MARK_PENDING;
}

/*
 * The envelope of m, in a buffer to free; its check line (format 3)
 * when m's message hash is known, which it is for every message this
 * release committed.  With inline_env, the envelope that follows the
 * message in its own file (format 4, queue_inline.c): version 3, and
 * its check line leaves the marks out (they are rewritten in place).
 */
char *
envfile_render(const struct qmsg *m, int inline_env, size_t *lenp)
{
	char		*buf = NULL, tail[ENV_RCPT_MAX + 16], check[64];
	size_t		 len = 0, headlen;
	FILE		*f;
	uint32_t	 i;
	char		 key[16];

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	fprintf(f, "version %d\n", !m->has_check ? 1 : inline_env ?
	    ENVFILE_VERSION_INLINE : ENVFILE_VERSION);
	env_put(f, "id", m->id);
	fprintf(f, "created %" PRId64 "\n", m->created);
	fprintf(f, "next-try %" PRId64 "\n", m->next_try);
	fprintf(f, "attempts %u\n", m->attempts);
	env_put(f, "client", m->peer_ip);
	fprintf(f, "client-port %u\n", m->peer_port);
	env_put(f, "helo", m->helo);
	env_put(f, "from", m->from);
	if (m->auth_user[0] != '\0')
		env_put(f, "auth-user", m->auth_user);
	if (m->file[0] != '\0')
		env_put(f, "file", m->file);
	fprintf(f, "size %" PRIu64 "\n", m->size);
	fprintf(f, "flags %u\n", m->flags);
	fprintf(f, "bounce %d\n", m->is_bounce);
	if (m->held)
		fputs("held 1\n", f);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		snprintf(key, sizeof(key), "rcpt-%c", r->state);
		env_put(f, key, r->addr);
		fprintf(f, "code %d\n", r->code);
		env_put(f, "text", r->text);
		fprintf(f, "bounced %d\n", r->bounced);
	}
	/* Last but one, so that queue_mark() finds it from the end. */
	memcpy(tail, "marks ", 6);
	for (i = 0; i < m->nrcpt; i++)
		tail[6 + i] = rcpt_mark(&m->rcpts[i]);
	memcpy(tail + 6 + i, "\nend\n", 6);
	if (m->has_check && fflush(f) == 0) {
		headlen = len;
		if (queue_check_line(buf, headlen, tail, 6 + i + 5, inline_env,
		    m->body_check, check, sizeof(check)) == -1) {
			fclose(f);
			free(buf);
			return NULL;
		}
		fputs(check, f);
	}
	fputs(tail, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

/* Write the envelope of m to fd; its length in *lenp if not NULL. */
static int
envfile_write_len(int fd, const struct qmsg *m, off_t *lenp)
{
	char	*buf;
	size_t	 len;
	int	 rc;

	if ((buf = envfile_render(m, 0, &len)) == NULL)
		return -1;
	rc = proc_write_full(fd, buf, len);
	free(buf);
	if (lenp != NULL)
		*lenp = (off_t)len;
	return rc;
}

int
envfile_write(int fd, const struct qmsg *m)
{
	return envfile_write_len(fd, m, NULL);
}

/* Undo env_put()'s escaping into out (size len); -1 if malformed. */
int
env_unescape(const char *in, char *out, size_t len)
{
	size_t		 o = 0;
	unsigned int	 c;

	if (strcmp(in, "%00") == 0) {
		out[0] = '\0';
		return 0;
	}
	for (; *in != '\0'; in++) {
		if (*in == '%') {
			if (!isxdigit((unsigned char)in[1]) ||
			    !isxdigit((unsigned char)in[2]) ||
			    sscanf(in + 1, "%2x", &c) != 1 || c == 0)
				return -1;
			in += 2;
		} else
			c = (unsigned char)*in;
		if (o + 1 >= len)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int
env_num(const char *s, long long min, long long max, long long *v)
{
	const char	*errstr = NULL;

	*v = strtonum(s, min, max, &errstr);
	return errstr == NULL ? 0 : -1;
}

/* The keys that appear once: a message's, then a recipient's. */
static const char *const envfile_keys[] = {
	"version", "id", "created", "next-try", "attempts", "client",
	"client-port", "helo", "from", "size", "flags", "bounce", "check",
	"marks", "code", "text", "bounced",
};
#define ENVFILE_MARKS_KEY	13
#define ENVFILE_RCPT_KEY	14	/* the first of a recipient's */

/* Apply a "marks" line: one mark per recipient, all of them before. */
static int
envfile_marks(struct qmsg *m, const char *val)
{
	uint32_t	 i;

	if (strlen(val) != m->nrcpt)
		return -1;
	for (i = 0; i < m->nrcpt; i++) {
		switch (val[i]) {
		case MARK_PENDING:
			break;
		case MARK_DONE:
			m->rcpts[i].state = RCPT_DONE;
			break;
		case MARK_BOUNCED:
			m->rcpts[i].state = RCPT_FAILED;
			m->rcpts[i].bounced = 1;
			break;
		default:
			return -1;
		}
	}
	m->has_marks = 1;
	return 0;
}

/* A "key number" line of an envelope file into m (or its recipient r). */
static int
envfile_num(struct qmsg *m, struct qrcpt *r, const char *key, long long v)
{
	if (strcmp(key, "created") == 0)
		m->created = v;
	else if (strcmp(key, "next-try") == 0)
		m->next_try = v;
	else if (strcmp(key, "attempts") == 0 && v <= UINT32_MAX)
		m->attempts = (uint32_t)v;
	else if (strcmp(key, "client-port") == 0 && v <= 65535)
		m->peer_port = (uint32_t)v;
	else if (strcmp(key, "size") == 0)
		m->size = (uint64_t)v;
	else if (strcmp(key, "flags") == 0 && v <= ENV_F_MASK)
		m->flags = (uint32_t)v;
	else if (strcmp(key, "bounce") == 0 && v <= 1)
		m->is_bounce = (int)v;
	else if (strcmp(key, "held") == 0 && v <= 1)
		m->held = (int)v;
	else if (strcmp(key, "code") == 0 && r != NULL && v <= 599)
		r->code = (int)v;
	else if (strcmp(key, "bounced") == 0 && r != NULL && v <= 1)
		r->bounced = (int)v;
	else
		return -1;
	return 0;
}

/* Parse one "key value" line of an envelope file into m. */
static int
envfile_line(struct qmsg *m, const char *key, const char *val, int *ended,
    unsigned int *seen)
{
	struct qrcpt	*r;
	long long	 v;
	uint64_t	 v2;
	size_t		 i;

	if (*ended)
		return -1;
	for (i = 0; i < sizeof(envfile_keys) / sizeof(envfile_keys[0]); i++)
		if (strcmp(key, envfile_keys[i]) == 0) {
			if (*seen & (1u << i))
				return -1;
			*seen |= 1u << i;
			break;
		}
	r = m->nrcpt > 0 ? &m->rcpts[m->nrcpt - 1] : NULL;
	if (strcmp(key, "version") == 0)
		return strcmp(val, "1") == 0 || strcmp(val, "2") == 0 ||
		    strcmp(val, "3") == 0 ? 0 : -1;
	/* Optional, once: the message file in data/, by its name. */
	if (strcmp(key, "file") == 0)
		return m->nrcpt > 0 || m->file[0] != '\0' ||
		    env_unescape(val, m->file, sizeof(m->file)) == -1 ||
		    !valid_id(m->file) ? -1 : 0;
	/* Checked by queue_check_env() where it must be (ID.new). */
	if (strcmp(key, "check") == 0) {
		m->has_check = 1;
		return strlen(val) != 33 || val[16] != ' ' ||
		    queue_check_hex(val, 16, &v2) == -1 ||
		    queue_check_hex(val + 17, 16, &m->body_check) == -1 ? -1 : 0;
	}
	if (strcmp(key, "id") == 0)
		return env_unescape(val, m->id, sizeof(m->id)) == -1 ||
		    !valid_id(m->id) ? -1 : 0;
	if (strcmp(key, "client") == 0)
		return env_unescape(val, m->peer_ip, sizeof(m->peer_ip));
	if (strcmp(key, "helo") == 0)
		return env_unescape(val, m->helo, sizeof(m->helo));
	if (strcmp(key, "from") == 0)
		return env_unescape(val, m->from, sizeof(m->from));
	/* Optional, once, before the recipients: routes by user need it. */
	if (strcmp(key, "auth-user") == 0)
		return m->nrcpt > 0 || m->auth_user[0] != '\0' ||
		    env_unescape(val, m->auth_user, sizeof(m->auth_user)) ==
		    -1 || m->auth_user[0] == '\0' ? -1 : 0;
	if (strncmp(key, "rcpt-", 5) == 0) {
		struct qrcpt *rc;

		if (m->nrcpt >= ENV_RCPT_MAX || strlen(key) != 6 ||
		    (*seen & (1u << ENVFILE_MARKS_KEY)) ||
		    (key[5] != RCPT_PENDING && key[5] != RCPT_DONE &&
		    key[5] != RCPT_FAILED))
			return -1;
		rc = reallocarray(m->rcpts, m->nrcpt + 1, sizeof(*rc));
		if (rc == NULL)
			return -1;
		m->rcpts = rc;
		*seen &= (1u << ENVFILE_RCPT_KEY) - 1;
		r = &m->rcpts[m->nrcpt++];
		memset(r, 0, sizeof(*r));
		r->state = key[5];
		return env_unescape(val, r->addr, sizeof(r->addr));
	}
	if (strcmp(key, "text") == 0)
		return r == NULL ? -1 : env_unescape(val, r->text,
		    sizeof(r->text));
	if (strcmp(key, "marks") == 0)
		return envfile_marks(m, val);
	if (strcmp(key, "end") == 0) {
		*ended = 1;
		return 0;
	}
	if (env_num(val, 0, INT64_MAX, &v) == -1)
		return -1;
	return envfile_num(m, r, key, v);
}

/* Parse an envelope file's text into m (zeroed by the caller). */
int
envfile_parse(const char *text, size_t len, struct qmsg *m)
{
	char		 line[2048], *sp;
	const char	*p = text, *end = text + len, *nl;
	unsigned int	 seen = 0;
	int		 ended = 0;

	while (p < end) {
		if ((nl = memchr(p, '\n', end - p)) == NULL ||
		    (size_t)(nl - p) >= sizeof(line) ||
		    memchr(p, '\0', nl - p) != NULL)
			return -1;
		memcpy(line, p, nl - p);
		line[nl - p] = '\0';
		p = nl + 1;
		if ((sp = strchr(line, ' ')) != NULL)
			*sp++ = '\0';
		else
			sp = line + strlen(line);
		if (envfile_line(m, line, sp, &ended, &seen) == -1)
			return -1;
	}
	if (!ended || m->id[0] == '\0' || m->nrcpt == 0 ||
	    m->peer_ip[0] == '\0')
		return -1;
	return 0;
}

/*
 * Write m's envelope to a file in tmp/ and sync it; its name in name.
 * The file is one of the relay's own from the pool (no worker ever had
 * it open), or a new tmp/ID.env.
 */
static int
queue_write_env(const struct qmsg *m, char *name, size_t namelen, int sync)
{
	off_t	 len;
	int	 fd = -1;

	while (fd == -1 && pool_get(QUEUE_OWNER_RELAY, name, namelen) == 0)
		fd = openat(queue_dir.tmpfd, name, O_WRONLY | O_CLOEXEC);
	if (fd == -1) {
		snprintf(name, namelen, "%s.env", m->id);
		fd = openat(queue_dir.tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600);
	}
	if (fd == -1)
		return -1;
	/* A reused file is overwritten, then cut after the new envelope. */
	if (envfile_write_len(fd, m, &len) == -1 || pool_fit(fd, len) == -1 ||
	    (sync && fdatasync(fd) == -1)) {
		close(fd);
		pool_put(name, QUEUE_OWNER_RELAY);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * A commit, in two steps.  queue_commit_write(): m's message hashed
 * for the check line, its file (spoolfd, in tmp/) synced, its envelope
 * written to tmp/ENVNAME and synced; with sync_files 0 (a group) both
 * syncs are left to the group's one syncfs.  Then either
 * queue_commit_link(): both renamed into queue/ (envelope last) after
 * their syncs, the caller syncing the directory before it answers; or,
 * for a group, queue_commit_link_new() before the syncfs and
 * queue_commit_settle() after it (queue_check.c).  Reused files are
 * overwritten in place: a name that a restart takes as committed must
 * never come before the bytes it names are on the disk, or a crash
 * could leave it naming an earlier message's bytes.
 */
int
queue_commit_write(struct qmsg *m, int spoolfd, int sync_files,
    char *envname, size_t len)
{
	if (queue_body_hash(spoolfd, m->size, &m->body_check) == -1) {
		log_warn("event=queue-error queue_id=%s op=read", m->id);
		return -1;
	}
	m->has_check = 1;
	if (m->inline_want && m->file[0] != '\0') {
		/* Format 4: one file, synced by the caller (SYNC_FILE). */
		envname[0] = '\0';
		if (queue_inline_write(m, spoolfd) == 0)
			return 0;
		log_warn("event=queue-error queue_id=%s op=envelope", m->id);
		return -1;
	}
	if (sync_files && fdatasync(spoolfd) == -1) {
		log_warn("event=queue-error queue_id=%s op=fdatasync", m->id);
		return -1;
	}
	if (queue_write_env(m, envname, len, sync_files) == -1) {
		log_warn("event=queue-error queue_id=%s op=envelope", m->id);
		return -1;
	}
	return 0;
}

/* Both files into queue/, the envelope as ENV ("%s.env" or "%s.new"). */
static int
commit_rename(struct qmsg *m, const char *envname, const char *suffix)
{
	char	 env[QUEUE_ENVNAME_MAX];

	m->has_marks = 1;
	if (m->inline_len != 0)
		return 0;	/* in its message file: nothing to name */
	m->env_in_queue = 1;
	snprintf(env, sizeof(env), "%s%s", m->id, suffix);
	/* A worker's message file stays in data/: its envelope names it. */
	if ((m->file[0] == '\0' && renameat(queue_dir.tmpfd, m->id,
	    queue_dir.qfd, m->id) == -1) ||
	    renameat(queue_dir.tmpfd, envname, queue_dir.qfd, env) == -1) {
		log_warn("event=queue-error queue_id=%s op=rename", m->id);
		if (m->file[0] == '\0')
			unlinkat(queue_dir.qfd, m->id, 0);
		pool_put(envname, QUEUE_OWNER_RELAY);
		m->has_marks = m->env_in_queue = 0;
		return -1;
	}
	return 0;
}

int
queue_commit_link(struct qmsg *m, const char *envname)
{
	return commit_rename(m, envname, ".env");
}

/*
 * A group's message into queue/ before its bytes are durable, the
 * envelope as ID.new (queue_check.c); the sync that follows makes it
 * committed, and queue_commit_settle() gives it its lasting name.
 */
int
queue_commit_link_new(struct qmsg *m, const char *envname)
{
	return commit_rename(m, envname, ".new");
}

/*
 * The group's sync returned: ID.new becomes ID.env.  Its marks may be
 * rewritten in place only once that rename is durable (queue_mark()):
 * an ID.new with other marks than it was committed with fails its
 * check at a restart.
 */
int
queue_commit_settle(struct qmsg *m)
{
	char	 from[QUEUE_ENVNAME_MAX], to[QUEUE_ENVNAME_MAX];

	if (!m->env_in_queue)
		return 0;
	snprintf(from, sizeof(from), "%s.new", m->id);
	snprintf(to, sizeof(to), "%s.env", m->id);
	if (renameat(queue_dir.qfd, from, queue_dir.qfd, to) == -1) {
		log_warn("event=queue-error queue_id=%s op=rename", m->id);
		return -1;
	}
	m->settle_gen = queue_gen_next();
	return 0;
}

/* A group's message whose sync failed, or whose settle did: it goes. */
void
queue_commit_drop(const struct qmsg *m)
{
	char	 env[QUEUE_ENVNAME_MAX];

	snprintf(env, sizeof(env), "%s.new", m->id);
	if (m->env_in_queue)
		pool_release(queue_dir.qfd, env, QUEUE_OWNER_RELAY);
	/* A new name in data/ this sync was to make durable still is not. */
	msg_release(m, m->file_new);
}

/* Both steps, each file synced: a commit of its own. */
int
queue_commit(struct qmsg *m, int spoolfd)
{
	char	 name[QUEUE_ENVNAME_MAX];

	if (queue_commit_write(m, spoolfd, 1, name, sizeof(name)) == -1)
		return -1;
	return queue_commit_link(m, name);
}

/*
 * The queue's syncs, counted: a rename into or out of queue/ made while
 * sync N is the last begun is durable once sync N + 1 is done.  A file
 * that left queue/ is reused, and a settled envelope's marks rewritten,
 * only then (pool_put_after(), queue_mark()).
 */
static struct {
	uint64_t	begun;
	uint64_t	done;
} queue_syncs;

uint64_t
queue_sync_begin(void)
{
	return ++queue_syncs.begun;
}

void
queue_sync_end(uint64_t gen)
{
	if (gen > queue_syncs.done)
		queue_syncs.done = gen;
}

uint64_t
queue_gen_next(void)
{
	return queue_syncs.begun + 1;
}

int
queue_gen_durable(uint64_t gen)
{
	return queue_syncs.done >= gen;
}

/*
 * Make the commits before it durable.  One message: its files were
 * synced, so the directory is enough.  Several (a group commit): one
 * syncfs(2) writes their files and the directory in one journal commit,
 * instead of two flushes a message.
 */
int
queue_sync(int whole_fs)
{
	uint64_t	 gen = queue_sync_begin();

	if (queue_sync_call(whole_fs) == -1) {
		log_warn("event=queue-error op=fsync-dir");
		return -1;
	}
	queue_sync_end(gen);
	return 0;
}

/* The same call, no log: the syncer thread's (relay/syncer.c). */
int
queue_sync_call(int whole_fs)
{
	return whole_fs ? syncfs(queue_dir.qfd) : fsync(queue_dir.qfd);
}

/*
 * Replace m's committed envelope with its current state.  No log line:
 * the caller logs, with back-off, what a full disk makes of every try.
 */
int
queue_update(struct qmsg *m)
{
	char	 env[QUEUE_ID_LEN + 8], name[QUEUE_ID_LEN + 8];

	snprintf(env, sizeof(env), "%s.env", m->id);
	if (queue_write_env(m, name, sizeof(name), 1) == -1)
		return -1;
	/* The old envelope comes out of the swap into the pool. */
	if (renameat2(queue_dir.tmpfd, name, queue_dir.qfd, env,
	    RENAME_EXCHANGE) == 0)
		pool_put_after(name, QUEUE_OWNER_RELAY, queue_gen_next());
	else if (renameat(queue_dir.tmpfd, name, queue_dir.qfd, env) == -1) {
		pool_put(name, QUEUE_OWNER_RELAY);
		return -1;
	}
	m->has_marks = m->env_in_queue = 1;
	/* Marks go into it only once its name is durable (queue_mark()). */
	m->settle_gen = queue_gen_next();
	if (queue_sync(0) == -1)
		return -1;
	/* Named by queue/ID.env now, which wins at a start. */
	if (m->inline_len != 0)
		queue_inline_cut(m);
	return 0;
}

/*
 * Overwrite the marks of m's committed envelope in place and sync it.
 * The bytes are in blocks the file already has, so this works on a
 * full disk; each byte stands alone, so a torn write leaves every
 * recipient either as it was or as it is now.
 */
int
queue_mark(const struct qmsg *m)
{
	char		 env[QUEUE_ID_LEN + 8], *tail;
	struct stat	 st;
	size_t		 taillen;
	uint32_t	 i;
	off_t		 off, end = 0;
	int		 fd, rc = -1;

	if (!m->has_marks)
		return -1;
	if (!queue_gen_durable(m->settle_gen) && queue_sync(0) == -1)
		return -1;
	snprintf(env, sizeof(env), "%s.env", m->id);
	if (!m->env_in_queue)
		fd = queue_inline_open(m, &end);
	else if ((fd = openat(queue_dir.qfd, env, O_RDWR | O_CLOEXEC)) != -1)
		end = fstat(fd, &st) == -1 ? 0 : st.st_size;
	if (fd == -1)
		return -1;
	/* The envelope ends "\nmarks " marks "\nend\n": check, then write. */
	taillen = m->nrcpt + 12;
	if ((tail = malloc(taillen)) == NULL || end < (off_t)taillen)
		goto out;
	off = end - (off_t)taillen;
	if (pread(fd, tail, taillen, off) != (ssize_t)taillen ||
	    memcmp(tail, "\nmarks ", 7) != 0 ||
	    memcmp(tail + 7 + m->nrcpt, "\nend\n", 5) != 0)
		goto out;
	for (i = 0; i < m->nrcpt; i++)
		tail[7 + i] = rcpt_mark(&m->rcpts[i]);
	if (pwrite(fd, tail + 7, m->nrcpt, off + 7) != (ssize_t)m->nrcpt ||
	    fdatasync(fd) == -1)
		goto out;
	rc = 0;
out:
	free(tail);
	close(fd);
	return rc;
}

/*
 * Whether the queue's file system is below queue-min-free: min_free
 * bytes if set, else pct per cent of the file system but at most
 * QUEUE_MIN_FREE_DEFAULT.  Few free inodes count as low too.
 */
int
queue_space_low(uint64_t min_free, uint32_t pct, uint64_t *avail,
    uint64_t *limit)
{
	struct statvfs	 sv;
	uint64_t	 size;

	if (fstatvfs(queue_dir.qfd, &sv) == -1)
		return 0;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	size = (uint64_t)sv.f_blocks * sv.f_frsize;
	if (min_free != 0)
		*limit = min_free;
	else {
		*limit = size / 100 * (pct != 0 ? pct : QUEUE_MIN_FREE_PCT);
		if (pct == 0 && *limit > QUEUE_MIN_FREE_DEFAULT)
			*limit = QUEUE_MIN_FREE_DEFAULT;
	}
	if (sv.f_files > 0 && sv.f_favail < QUEUE_MIN_FREE_INODES)
		return 1;
	return *avail < *limit;
}

/*
 * Set m's files aside in queue/corrupt/, once, with the reason: they
 * are never tried again, and an operator can look at them.
 */
/*
 * Where m's message file is: data/FILE (a worker's, queue format 3),
 * queue/ID (the relay's own, and formats 1 and 2), or queue/corrupt/ID
 * once set aside.  The directory's descriptor; its name in *name.
 */
int
queue_msg_dir(const struct qmsg *m, const char **name)
{
	if (m->quarantined) {
		*name = m->id;
		return queue_dir.corruptfd;
	}
	if (m->file[0] != '\0') {
		*name = m->file;
		return queue_dir.datafd;
	}
	*name = m->id;
	return queue_dir.qfd;
}

/* m's message file and queue/ENV into queue/corrupt/, synced. */
void
quarantine_files(const struct qmsg *m, const char *env)
{
	const char	*name;
	int		 dir = queue_msg_dir(m, &name);

	if (renameat(dir, name, queue_dir.corruptfd, m->id) == -1 &&
	    errno != ENOENT)
		log_warn("event=queue-error queue_id=%s op=quarantine", m->id);
	if (renameat(queue_dir.qfd, env, queue_dir.corruptfd, env) == -1 &&
	    errno != ENOENT) {
		log_warn("event=queue-error queue_id=%s op=quarantine", m->id);
		/* It must not come back at the next start either. */
		unlinkat(queue_dir.qfd, env, 0);
	}
	fsync(queue_dir.corruptfd);
	fsync(queue_dir.qfd);
	if (dir == queue_dir.datafd)
		fsync(queue_dir.datafd);
}

void
queue_quarantine(struct qmsg *m, const char *reason)
{
	char	 env[QUEUE_ID_LEN + 8];

	if (m->quarantined)
		return;
	queue_msg_unkeep(m);
	snprintf(env, sizeof(env), "%s.env", m->id);
	quarantine_files(m, env);
	m->quarantined = 1;
	log_warnx("event=queue-corrupt queue_id=%s reason=\"%s\" "
	    "action=quarantined dir=queue/corrupt", m->id, reason);
}

/*
 * Whether m's message file is there and has the size its envelope
 * recorded; why not, in why.  A message that fails this is never
 * forwarded: a truncated file would go out as if it were whole.
 */
int
queue_msg_check(struct qmsg *m, char *why, size_t len)
{
	struct stat	 st;
	const char	*name;
	int		 dir = queue_msg_dir(m, &name), e;

	if (fstatat(dir, name, &st, 0) == -1) {
		e = errno;
		snprintf(why, len, "message file: %s", strerror(e));
		return e == ENOENT ? -1 : 0;
	}
	/* Its envelope may follow (queue_inline.c), or a cut failed. */
	if ((uint64_t)st.st_size < m->size || ((uint64_t)st.st_size !=
	    m->size && m->inline_len == 0 && !m->file_long)) {
		snprintf(why, len, "message file has %lld bytes, the "
		    "envelope says %llu", (long long)st.st_size,
		    (unsigned long long)m->size);
		return -1;
	}
	return 0;
}

/*
 * Remove m from the queue: envelope first, so a crash leaves no half;
 * both files go back to the pool (the message file to its owner's).  A
 * message file in data/ stays where it is: once the envelope is gone,
 * nothing names it.
 */
void
queue_remove(const struct qmsg *m)
{
	char	 env[QUEUE_ID_LEN + 8];

	snprintf(env, sizeof(env), "%s.env", m->id);
	if (m->env_in_queue)
		pool_release(queue_dir.qfd, env, QUEUE_OWNER_RELAY);
	queue_msg_release(m);
}

/*
 * m's message file, no longer named by an envelope, to the pool: after
 * the next queue sync if a name in queue/ named it, at once if only
 * its footer did (a crash that brings the footer back over new bytes
 * fails the check line, or sends m again whole).
 */
static void
msg_release(const struct qmsg *m, int unsynced)
{
	if (m->file[0] != '\0')
		pool_put_data(m->file, queue_inline_free(m) == 0 ? m->owner :
		    QUEUE_OWNER_NONE, m->env_in_queue || m->inline_len == 0 ?
		    queue_gen_next() : 0, unsynced);
	else
		pool_release(queue_dir.qfd, m->id, m->owner);
}

void
queue_msg_release(const struct qmsg *m)
{
	msg_release(m, 0);
}

/* The committed (or quarantined) message file of m, for reading. */
int
queue_msg_open(const struct qmsg *m)
{
	const char	*name;
	int		 dir = queue_msg_dir(m, &name);

	return openat(dir, name, O_RDONLY | O_CLOEXEC);
}

void
qmsg_free(struct qmsg *m)
{
	if (m == NULL)
		return;
	queue_msg_unkeep(m);
	free(m->rcpts);
	free(m);
}

