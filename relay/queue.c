/*
 * Queue files.  Every path is relative to descriptors opened before the
 * sandbox, so the same code runs chrooted into the queue or not.  The
 * envelope format is line-oriented text in which every value is
 * %-escaped: nothing from the network can start a line of its own.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "log.h"
#include "proc.h"
#include "queue.h"

#define ENVFILE_MAX	(1024 * 1024)
#define ENVFILE_VERSION	1

static struct {
	int	tmpfd;
	int	qfd;
} queue = { -1, -1 };

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
	queue.tmpfd = open_subdir(root, "tmp");
	queue.qfd = open_subdir(root, "queue");
	close(root);
	if (queue.tmpfd == -1 || queue.qfd == -1) {
		log_warn("queue subdirectories in %s", path);
		return -1;
	}
	/* Nothing in tmp/ was ever answered 250. */
	if ((fd = dup(queue.tmpfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(queue.tmpfd, de->d_name, 0);
	closedir(d);
	return 0;
}

/* A fresh random queue id. */
int
queue_new_id(char *id)
{
	uint64_t	 r;

	arc4random_buf(&r, sizeof(r));
	snprintf(id, QUEUE_ID_LEN + 1, "%016" PRIX64, r);
	return 0;
}

/* Create tmp/ID for a worker to write; returns the descriptor. */
int
queue_spool_create(const char *id)
{
	return openat(queue.tmpfd, id, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
}

void
queue_spool_discard(const char *id)
{
	unlinkat(queue.tmpfd, id, 0);
}

static int
valid_id(const char *id)
{
	size_t	 i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!isxdigit((unsigned char)id[i]) ||
		    islower((unsigned char)id[i]))
			return 0;
	return id[QUEUE_ID_LEN] == '\0';
}

/* Escape for the envelope file: %XX for space, controls, 8-bit and %. */
static void
env_put(FILE *f, const char *key, const char *val)
{
	const unsigned char	*p;

	fprintf(f, "%s ", key);
	if (*val == '\0')
		fputs("%00", f);
	for (p = (const unsigned char *)val; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

/* Write the envelope of m to fd. */
int
envfile_write(int fd, const struct qmsg *m)
{
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*f;
	uint32_t	 i;
	char		 key[16];
	int		 rc;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return -1;
	fprintf(f, "version %d\n", ENVFILE_VERSION);
	env_put(f, "id", m->id);
	fprintf(f, "created %" PRId64 "\n", m->created);
	fprintf(f, "next-try %" PRId64 "\n", m->next_try);
	fprintf(f, "attempts %u\n", m->attempts);
	env_put(f, "client", m->peer_ip);
	fprintf(f, "client-port %u\n", m->peer_port);
	env_put(f, "helo", m->helo);
	env_put(f, "from", m->from);
	fprintf(f, "size %" PRIu64 "\n", m->size);
	fprintf(f, "flags %u\n", m->flags);
	fprintf(f, "bounce %d\n", m->is_bounce);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qrcpt *r = &m->rcpts[i];

		snprintf(key, sizeof(key), "rcpt-%c", r->state);
		env_put(f, key, r->addr);
		fprintf(f, "code %d\n", r->code);
		env_put(f, "text", r->text);
		fprintf(f, "bounced %d\n", r->bounced);
	}
	fputs("end\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	rc = proc_write_full(fd, buf, len);
	free(buf);
	return rc;
}

/* Undo env_put()'s escaping into out (size len); -1 if malformed. */
static int
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
	"client-port", "helo", "from", "size", "flags", "bounce",
	"code", "text", "bounced",
};
#define ENVFILE_RCPT_KEY	12	/* the first of a recipient's */

/* Parse one "key value" line of an envelope file into m. */
static int
envfile_line(struct qmsg *m, const char *key, const char *val, int *ended,
    unsigned int *seen)
{
	struct qrcpt	*r;
	long long	 v;
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
		return strcmp(val, "1") == 0 ? 0 : -1;
	if (strcmp(key, "id") == 0)
		return env_unescape(val, m->id, sizeof(m->id)) == -1 ||
		    !valid_id(m->id) ? -1 : 0;
	if (strcmp(key, "client") == 0)
		return env_unescape(val, m->peer_ip, sizeof(m->peer_ip));
	if (strcmp(key, "helo") == 0)
		return env_unescape(val, m->helo, sizeof(m->helo));
	if (strcmp(key, "from") == 0)
		return env_unescape(val, m->from, sizeof(m->from));
	if (strncmp(key, "rcpt-", 5) == 0) {
		struct qrcpt *rc;

		if (m->nrcpt >= ENV_RCPT_MAX || strlen(key) != 6 ||
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
	if (strcmp(key, "end") == 0) {
		*ended = 1;
		return 0;
	}
	if (env_num(val, 0, INT64_MAX, &v) == -1)
		return -1;
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
	else if (strcmp(key, "code") == 0 && r != NULL && v <= 599)
		r->code = (int)v;
	else if (strcmp(key, "bounced") == 0 && r != NULL && v <= 1)
		r->bounced = (int)v;
	else
		return -1;
	return 0;
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

/* Write m's envelope to tmp/ID.env and sync it. */
static int
queue_write_env(const struct qmsg *m, char *name, size_t namelen, int sync)
{
	int	 fd;

	snprintf(name, namelen, "%s.env", m->id);
	fd = openat(queue.tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	if (envfile_write(fd, m) == -1 || (sync && fdatasync(fd) == -1)) {
		close(fd);
		unlinkat(queue.tmpfd, name, 0);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Make m durable: its message file (spoolfd, in tmp/) synced, its
 * envelope written and synced, both renamed into queue/ (envelope
 * last).  The caller calls queue_sync() before it answers; with
 * sync_files 0 the file syncs are left to queue_sync(1).
 */
int
queue_commit(struct qmsg *m, int spoolfd, int sync_files)
{
	char	 env[QUEUE_ID_LEN + 8];

	if (sync_files && fdatasync(spoolfd) == -1) {
		log_warn("event=queue-error queue_id=%s op=fdatasync", m->id);
		return -1;
	}
	if (queue_write_env(m, env, sizeof(env), sync_files) == -1) {
		log_warn("event=queue-error queue_id=%s op=envelope", m->id);
		return -1;
	}
	if (renameat(queue.tmpfd, m->id, queue.qfd, m->id) == -1 ||
	    renameat(queue.tmpfd, env, queue.qfd, env) == -1) {
		log_warn("event=queue-error queue_id=%s op=rename", m->id);
		unlinkat(queue.qfd, m->id, 0);
		unlinkat(queue.tmpfd, env, 0);
		return -1;
	}
	return 0;
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
	if ((whole_fs ? syncfs(queue.qfd) : fsync(queue.qfd)) == -1) {
		log_warn("event=queue-error op=fsync-dir");
		return -1;
	}
	return 0;
}

/* Replace m's committed envelope with its current state. */
int
queue_update(const struct qmsg *m)
{
	char	 env[QUEUE_ID_LEN + 8];

	if (queue_write_env(m, env, sizeof(env), 1) == -1 ||
	    renameat(queue.tmpfd, env, queue.qfd, env) == -1 ||
	    queue_sync(0) == -1) {
		log_warn("event=queue-error queue_id=%s op=update", m->id);
		return -1;
	}
	return 0;
}

/* Remove m from the queue: envelope first, so a crash leaves no half. */
void
queue_remove(const struct qmsg *m)
{
	char	 env[QUEUE_ID_LEN + 8];

	snprintf(env, sizeof(env), "%s.env", m->id);
	if (unlinkat(queue.qfd, env, 0) == -1)
		log_warn("event=queue-error queue_id=%s op=unlink", m->id);
	unlinkat(queue.qfd, m->id, 0);
}

/* The committed message file of m, for reading. */
int
queue_msg_open(const struct qmsg *m)
{
	return openat(queue.qfd, m->id, O_RDONLY | O_CLOEXEC);
}

void
qmsg_free(struct qmsg *m)
{
	if (m == NULL)
		return;
	free(m->rcpts);
	free(m);
}

/* Load one envelope file; NULL (and a log line) if it is unusable. */
static struct qmsg *
queue_load_one(const char *name)
{
	struct qmsg	*m;
	struct stat	 st;
	char		*text;
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(queue.qfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > ENVFILE_MAX ||
	    (text = malloc(st.st_size)) == NULL) {
		close(fd);
		return NULL;
	}
	n = pread(fd, text, st.st_size, 0);
	close(fd);
	if ((m = calloc(1, sizeof(*m))) == NULL || n != st.st_size ||
	    envfile_parse(text, st.st_size, m) == -1 ||
	    strncmp(name, m->id, QUEUE_ID_LEN) != 0) {
		free(text);
		qmsg_free(m);
		return NULL;
	}
	free(text);
	return m;
}

/*
 * Read every committed envelope.  A message file without an envelope
 * was never answered 250 and is removed; an envelope without its
 * message, or one that does not parse, is logged and set aside.
 */
struct qmsg *
queue_load(unsigned int *count)
{
	struct qmsg	*head = NULL, *m;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		 env[QUEUE_ID_LEN + 8];
	int		 fd;

	*count = 0;
	if ((fd = dup(queue.qfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return NULL;
	/* The dup shares its offset with qfd: where the last scan ended. */
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len == QUEUE_ID_LEN && valid_id(de->d_name)) {
			memcpy(env, de->d_name, QUEUE_ID_LEN);
			memcpy(env + QUEUE_ID_LEN, ".env", 5);
			if (fstatat(queue.qfd, env, &st, 0) == -1) {
				log_info("event=queue-orphan queue_id=%s "
				    "action=removed", de->d_name);
				unlinkat(queue.qfd, de->d_name, 0);
			}
			continue;
		}
		if (len != QUEUE_ID_LEN + 4 || strcmp(de->d_name +
		    QUEUE_ID_LEN, ".env") != 0)
			continue;
		if ((m = queue_load_one(de->d_name)) == NULL ||
		    fstatat(queue.qfd, m->id, &st, 0) == -1) {
			log_warnx("event=queue-corrupt file=%s action=ignored",
			    de->d_name);
			qmsg_free(m);
			continue;
		}
		m->next = head;
		head = m;
		(*count)++;
	}
	closedir(d);
	return head;
}
