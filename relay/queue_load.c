/*
 * The queue at a start: every committed envelope read back, what a
 * crash left settled or set aside (queue.h, queue_check.c).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "queue.h"
#include "queue_int.h"

/*
 * The message file an envelope names in data/ ("file" line), read even
 * from one that does not parse, so that it is set aside with it; ""
 * for none (queue/ID).
 */
static void
env_scan_file(const char *text, size_t len, char *file, size_t filelen)
{
	const char	*p = text, *end = text + len, *nl;
	char		 line[64];

	file[0] = '\0';
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		if ((size_t)(nl - p) >= sizeof(line) ||
		    (size_t)(nl - p) <= 5 || memcmp(p, "file ", 5) != 0)
			continue;
		memcpy(line, p + 5, nl - p - 5);
		line[nl - p - 5] = '\0';
		if (env_unescape(line, file, filelen) == -1 || !valid_id(file))
			file[0] = '\0';
		return;
	}
}

/*
 * What can be read of an envelope that does not parse: its sender and
 * recipients, so that the sender can be told.  NULL when not even the
 * sender can be made out (or it is <>: nobody to tell).
 */
static struct qmsg *
queue_salvage(const char *name, const char *text, size_t len)
{
	struct qmsg	*m, probe;
	struct qrcpt	*r;
	const char	*p = text, *end = text + len, *nl;
	char		 line[2048], *sp;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	memcpy(m->id, name, QUEUE_ID_LEN);
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		if ((size_t)(nl - p) >= sizeof(line) ||
		    memchr(p, '\0', nl - p) != NULL)
			continue;
		memcpy(line, p, nl - p);
		line[nl - p] = '\0';
		if ((sp = strchr(line, ' ')) == NULL)
			continue;
		*sp++ = '\0';
		if (strcmp(line, "from") == 0)
			env_unescape(sp, m->from, sizeof(m->from));
		else if (strcmp(line, "bounce") == 0)
			m->is_bounce = strcmp(sp, "0") != 0;
		else if (strncmp(line, "rcpt-", 5) == 0 &&
		    m->nrcpt < ENV_RCPT_MAX &&
		    env_unescape(sp, probe.from, sizeof(probe.from)) == 0 &&
		    (r = reallocarray(m->rcpts, m->nrcpt + 1,
		    sizeof(*r))) != NULL) {
			m->rcpts = r;
			r = &m->rcpts[m->nrcpt++];
			memset(r, 0, sizeof(*r));
			strlcpy(r->addr, probe.from, sizeof(r->addr));
			r->state = line[5] == RCPT_DONE ? RCPT_DONE :
			    RCPT_PENDING;
		}
	}
	if (m->from[0] == '\0' || m->is_bounce || m->nrcpt == 0) {
		qmsg_free(m);
		return NULL;
	}
	m->created = m->next_try = (int64_t)time(NULL);
	return m;
}

/* The text of queue/name, in *text (to free); NULL why not, in why. */
static char *
env_read(const char *name, size_t *lenp, char *why, size_t whylen)
{
	struct stat	 st;
	char		*text;
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(queue_dir.qfd, name, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "envelope: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > ENVFILE_MAX ||
	    (text = malloc(st.st_size)) == NULL) {
		snprintf(why, whylen, "envelope: empty, too big or "
		    "unreadable");
		close(fd);
		return NULL;
	}
	n = pread(fd, text, st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		snprintf(why, whylen, "envelope: short read");
		free(text);
		return NULL;
	}
	*lenp = (size_t)st.st_size;
	return text;
}

/* text parsed, the envelope of the message its name starts with. */
static struct qmsg *
env_parse_named(const char *name, const char *text, size_t len)
{
	struct qmsg	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    envfile_parse(text, len, m) == -1 ||
	    strncmp(name, m->id, QUEUE_ID_LEN) != 0) {
		qmsg_free(m);
		return NULL;
	}
	return m;
}

/*
 * Load one envelope file.  NULL if it is unusable, with the reason in
 * why and in *salvaged what could be read of it (or NULL).
 */
static struct qmsg *
queue_load_one(const char *name, char *why, size_t whylen,
    struct qmsg **salvaged, char *file, size_t filelen)
{
	struct qmsg	*m;
	char		*text;
	size_t		 len;

	*salvaged = NULL;
	file[0] = '\0';
	if ((text = env_read(name, &len, why, whylen)) == NULL)
		return NULL;
	if ((m = env_parse_named(name, text, len)) == NULL) {
		snprintf(why, whylen, "envelope does not parse");
		*salvaged = queue_salvage(name, text, len);
		env_scan_file(text, len, file, filelen);
	}
	free(text);
	return m;
}

/*
 * Whether queue/name (ID.new) is a committed message: its envelope
 * parses and matches its check line, its message file its size and
 * hash.  Why not, in why.
 */
static int
queue_new_valid(const char *name, char *why, size_t whylen, char *file,
    size_t filelen)
{
	struct qmsg	*m = NULL;
	char		*text;
	size_t		 len;
	int		 rc = -1;

	if ((text = env_read(name, &len, why, whylen)) == NULL)
		return -1;
	env_scan_file(text, len, file, filelen);
	if (queue_check_env(text, len) != 0 ||
	    (m = env_parse_named(name, text, len)) == NULL || !m->has_check)
		snprintf(why, whylen, "envelope does not match its check line");
	else if (queue_check_msg(m, why, whylen) == 0)
		rc = 0;
	qmsg_free(m);
	free(text);
	return rc;
}

/*
 * A group commit's ID.new: renamed to ID.env if it was committed (its
 * sync returned before a crash), else set aside without a DSN: it was
 * never answered 250, and its client still has it.  1 if renamed.
 */
static int
queue_load_new(const char *name)
{
	char		 env[QUEUE_ENVNAME_MAX], why[256];
	struct qmsg	 tmp;
	struct stat	 st;

	memcpy(env, name, QUEUE_ID_LEN);
	memcpy(env + QUEUE_ID_LEN, ".env", 5);
	memset(&tmp, 0, sizeof(tmp));
	memcpy(tmp.id, name, QUEUE_ID_LEN);
	if (queue_new_valid(name, why, sizeof(why), tmp.file,
	    sizeof(tmp.file)) == 0 &&
	    renameat2(queue_dir.qfd, name, queue_dir.qfd, env,
	    RENAME_NOREPLACE) == 0) {
		log_info("event=queue-settled queue_id=%s", tmp.id);
		return 1;
	}
	if (fstatat(queue_dir.qfd, env, &st, 0) == 0) {
		/* Settled already (queue_update() made a new one). */
		unlinkat(queue_dir.qfd, name, 0);
		return 0;
	}
	log_warnx("event=queue-uncommitted queue_id=%s reason=\"%s\" "
	    "action=quarantined dir=queue/corrupt", tmp.id, why);
	quarantine_files(&tmp, name);
	return 0;
}

/* Settle every ID.new a crash left, before the envelopes are read. */
static void
queue_load_news(void)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd, renamed = 0;

	if ((fd = dup(queue_dir.qfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return;
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == QUEUE_ID_LEN + 4 &&
		    strcmp(de->d_name + QUEUE_ID_LEN, ".new") == 0 &&
		    valid_id_prefix(de->d_name))
			renamed |= queue_load_new(de->d_name);
	closedir(d);
	if (renamed)
		(void)queue_sync(0);
}

/* What the DSN says of each recipient of a message that was lost. */
void
queue_lost_mark(struct qmsg *m, const char *why)
{
	char		 text[REPLY_TEXT_MAX];
	uint32_t	 i;

	snprintf(text, sizeof(text), "5.3.0 the message could not be "
	    "recovered from the queue (%s)", why);
	for (i = 0; i < m->nrcpt; i++) {
		struct qrcpt *r = &m->rcpts[i];

		if (r->state == RCPT_PENDING) {
			r->state = RCPT_FAILED;
			r->code = 554;
			strlcpy(r->text, text, sizeof(r->text));
		}
	}
}

/* An envelope that cannot be used: aside, and on the lost list. */
static void
queue_load_bad(const char *name, const char *why, struct qmsg *salvaged,
    struct qmsg **lost, const char *file)
{
	struct qmsg	 tmp;

	if (salvaged == NULL) {
		memset(&tmp, 0, sizeof(tmp));
		memcpy(tmp.id, name, QUEUE_ID_LEN);
		strlcpy(tmp.file, file, sizeof(tmp.file));
		queue_quarantine(&tmp, why);
		return;
	}
	strlcpy(salvaged->file, file, sizeof(salvaged->file));
	queue_quarantine(salvaged, why);
	queue_lost_mark(salvaged, why);
	salvaged->next = *lost;
	*lost = salvaged;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A file in data/ that no envelope file names: a committed message
 * whose envelope is in it (format 4, queue_inline.c), onto *head; one
 * whose footer is there but whose check fails (a crash before its
 * sync returned: it was never answered 250) set aside; else a free
 * file (a crash left it in the pool, or a worker's spool) removed.
 * 1 if it was removed.
 */
static int
queue_load_inline(const char *name, struct qmsg **head, unsigned int *count)
{
	struct qmsg	*m;
	char		 why[256];
	int		 found;

	if ((m = queue_inline_load(name, &found, why, sizeof(why))) != NULL) {
		m->next = *head;
		*head = m;
		(*count)++;
		return 0;
	}
	if (found == 0)
		return unlinkat(queue_dir.datafd, name, 0) == 0;
	if (found == -1) {
		/* It may be a commit: it stays for the next start. */
		log_warnx("event=queue-error file=%s op=load reason=\"%s\" "
		    "action=kept", name, why);
		return 0;
	}
	log_warnx("event=queue-uncommitted file=%s reason=\"%s\" "
	    "action=quarantined dir=queue/corrupt", name, why);
	if (renameat2(queue_dir.datafd, name, queue_dir.corruptfd, name,
	    RENAME_NOREPLACE) == -1 && errno != EEXIST)
		unlinkat(queue_dir.datafd, name, 0);
	fsync(queue_dir.corruptfd);
	fsync(queue_dir.datafd);
	return 0;
}

/* Every file in data/ that no envelope file names: as above. */
static void
queue_load_data(struct qmsg **head, unsigned int *count)
{
	const struct qmsg	*m;
	struct dirent		*de;
	DIR			*d;
	char			**names = NULL, *key, **nn;
	size_t			 n = 0, removed = 0;
	int			 fd;

	for (m = *head; m != NULL; m = m->next) {
		if (m->file[0] == '\0')
			continue;
		if ((nn = reallocarray(names, n + 1, sizeof(*names))) == NULL) {
			free(names);
			return;		/* keep them all: they cost space only */
		}
		names = nn;
		names[n++] = (char *)m->file;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	if ((fd = dup(queue_dir.datafd)) == -1 || (d = fdopendir(fd)) == NULL) {
		free(names);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		key = de->d_name;
		if (n == 0 || bsearch(&key, names, n, sizeof(*names),
		    name_cmp) == NULL)
			removed += queue_load_inline(de->d_name, head, count);
	}
	closedir(d);
	free(names);
	if (removed > 0)
		log_info("event=queue-free-files dir=data removed=%zu", removed);
}

/*
 * Read every committed envelope, those in queue/ and those in their
 * message files in data/.  A message file with neither was never
 * answered 250 and is removed.  An envelope that cannot be
 * read or parsed, or whose message file is missing or of another size,
 * is set aside in queue/corrupt/; those whose sender is known go on
 * the lost list, for a DSN.
 */
struct qmsg *
queue_load(unsigned int *count, struct qmsg **lost)
{
	struct qmsg	*head = NULL, *m, *salvaged;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		 env[QUEUE_ID_LEN + 8], why[256];
	char		 file[QUEUE_ID_LEN + 1];
	int		 fd;

	*count = 0;
	*lost = NULL;
	queue_load_news();
	if ((fd = dup(queue_dir.qfd)) == -1 || (d = fdopendir(fd)) == NULL)
		return NULL;
	/* The dup shares its offset with qfd: where the last scan ended. */
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len == QUEUE_ID_LEN && valid_id(de->d_name)) {
			memcpy(env, de->d_name, QUEUE_ID_LEN);
			memcpy(env + QUEUE_ID_LEN, ".env", 5);
			if (fstatat(queue_dir.qfd, env, &st, 0) == -1) {
				log_info("event=queue-orphan queue_id=%s "
				    "action=removed", de->d_name);
				unlinkat(queue_dir.qfd, de->d_name, 0);
			}
			continue;
		}
		if (len != QUEUE_ID_LEN + 4 || strcmp(de->d_name +
		    QUEUE_ID_LEN, ".env") != 0 || !valid_id_prefix(de->d_name))
			continue;
		if ((m = queue_load_one(de->d_name, why, sizeof(why),
		    &salvaged, file, sizeof(file))) == NULL) {
			queue_load_bad(de->d_name, why, salvaged, lost, file);
			continue;
		}
		m->env_in_queue = 1;
		/* What a crash left of its envelope in its file goes. */
		if (m->file[0] != '\0')
			queue_inline_cut(m);
		if (queue_msg_check(m, why, sizeof(why)) == -1) {
			queue_quarantine(m, why);
			queue_lost_mark(m, why);
			m->next = *lost;
			*lost = m;
			continue;
		}
		m->next = head;
		head = m;
		(*count)++;
	}
	closedir(d);
	queue_load_data(&head, count);
	return head;
}
