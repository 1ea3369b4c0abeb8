/*
 * The queue's free pool and the spool files made from it (queue.h,
 * queue_int.h).  Every path is relative to the queue's descriptors.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "queue.h"
#include "queue_int.h"

/*
 * The free pool (queue format 2).  A delivered message's two files are
 * renamed back into tmp/ instead of unlinked, and the next message
 * reuses them (overwritten, see pool_open()) instead of creating files:
 * the steady state
 * allocates no inode (ext4's inode allocator, scanning recently deleted
 * inodes, was 60 % of the relay's CPU).  A file handed to a worker may
 * still be open in that worker, so it is only ever reused for the same
 * channel's next message, never as an envelope and never for another
 * worker: QUEUE_OWNER_RELAY is the relay's own (envelopes, bounces),
 * which any use may take, emptied first for a worker.  Files of no known owner (QUEUE_OWNER_NONE: loaded at
 * start, or whose channel is gone) are unlinked.
 */
struct pool_file {
	char		 name[QUEUE_ID_LEN + 5];
	uint32_t	 owner;
	uint64_t	 gen;	/* reusable once this queue sync is done */
};

static struct {
	struct pool_file	 f[QUEUE_POOL_MAX];
	unsigned int		 n;
} pool;

/*
 * Put tmp/name in the pool of owner, or unlink it when there is none;
 * it is not reused before queue sync gen is done.  A file that had a
 * name in queue/ waits for the sync that makes its leaving queue/
 * durable: overwritten before that, a crash could bring the old name
 * back holding another message's bytes (queue_check.c).
 */
void
pool_put_after(const char *name, uint32_t owner, uint64_t gen)
{
	if (owner == QUEUE_OWNER_NONE || pool.n == QUEUE_POOL_MAX) {
		unlinkat(queue_dir.tmpfd, name, 0);
		return;
	}
	strlcpy(pool.f[pool.n].name, name, sizeof(pool.f[0].name));
	pool.f[pool.n].gen = gen;
	pool.f[pool.n++].owner = owner;
}

/* A file that never had a name in queue/: reusable at once. */
void
pool_put(const char *name, uint32_t owner)
{
	pool_put_after(name, owner, 0);
}

/*
 * The newest file owner may use (its own first), out of the pool; with
 * whose it was in *from, if from is not NULL.
 */
static int
pool_get_from(uint32_t owner, char *name, size_t len, uint32_t *from)
{
	unsigned int	 i, pick = pool.n;

	for (i = pool.n; i-- > 0 && pick == pool.n;)
		if (pool.f[i].owner == owner && queue_gen_durable(pool.f[i].gen))
			pick = i;
	for (i = pool.n; owner != QUEUE_OWNER_RELAY && i-- > 0 && pick == pool.n;)
		if (pool.f[i].owner == QUEUE_OWNER_RELAY &&
		    queue_gen_durable(pool.f[i].gen))
			pick = i;
	if (pick == pool.n)
		return -1;
	strlcpy(name, pool.f[pick].name, len);
	if (from != NULL)
		*from = pool.f[pick].owner;
	pool.f[pick] = pool.f[--pool.n];
	return 0;
}

int
pool_get(uint32_t owner, char *name, size_t len)
{
	return pool_get_from(owner, name, len, NULL);
}

/* A worker's channel closed: its files may be open in it, never reuse. */
void
queue_pool_drop(uint32_t owner)
{
	unsigned int	 i;

	for (i = 0; i < pool.n;)
		if (pool.f[i].owner == owner) {
			unlinkat(queue_dir.tmpfd, pool.f[i].name, 0);
			pool.f[i] = pool.f[--pool.n];
		} else
			i++;
}

/*
 * A file from owner's pool, truncated, or a new one: renamed to
 * tmp/name, -1 with EEXIST if that exists; or, with file, left under its
 * pool name, which goes in file (a rename less a message: the commit
 * renames it into queue/ under the message's id).  With keep, a small
 * file that was owner's own keeps its old bytes, to be overwritten:
 * truncating and refilling a block (an orphan record, a block freed and
 * allocated again) was the costliest call a message made.  Owner had
 * those bytes already; one of the relay's files (an envelope, a DSN:
 * other clients' mail) is always emptied before a worker sees it.
 * Whoever writes a kept file cuts it to its size (queue_spool_fit()).
 */
static int
pool_open(const char *name, uint32_t owner, int keep, char *file,
    size_t filelen)
{
	char		 old[QUEUE_ID_LEN + 5];
	struct stat	 st;
	uint32_t	 from;
	int		 fd, own;

	while (pool_get_from(owner, old, sizeof(old), &from) == 0) {
		own = keep && from == owner;
		if (file == NULL && strcmp(old, name) != 0 &&
		    renameat2(queue_dir.tmpfd, old, queue_dir.tmpfd, name,
		    RENAME_NOREPLACE) == -1) {
			if (errno == EEXIST) {
				pool_put(old, owner);
				return -1;
			}
			continue;	/* gone: a name left by a failure */
		}
		if ((fd = openat(queue_dir.tmpfd, file != NULL ? old : name,
		    O_RDWR | O_CLOEXEC | (own ? 0 : O_TRUNC))) == -1)
			continue;
		if (own && (fstat(fd, &st) == -1 ||
		    st.st_size > QUEUE_REUSE_MAX) && ftruncate(fd, 0) == -1) {
			close(fd);
			continue;
		}
		if (file != NULL)
			strlcpy(file, old, filelen);
		return fd;
	}
	if (file != NULL)
		strlcpy(file, name, filelen);
	return openat(queue_dir.tmpfd, name, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
}

/* Cut fd, written up to len, to len if it was longer (a reused file). */
int
pool_fit(int fd, off_t len)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1)
		return -1;
	if (st.st_size > len && ftruncate(fd, len) == -1)
		return -1;
	return 0;
}

/* Move dir/name into the pool (as tmp/name), or unlink it. */
void
pool_release(int dirfd, const char *name, uint32_t owner)
{
	if (owner != QUEUE_OWNER_NONE && pool.n < QUEUE_POOL_MAX &&
	    renameat2(dirfd, name, queue_dir.tmpfd, name, RENAME_NOREPLACE) == 0) {
		pool_put_after(name, owner, queue_gen_next());
		return;
	}
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		log_warn("event=queue-error file=%s op=unlink", name);
}

/* tmp/ID, empty, for owner to write; the descriptor. */
int
queue_spool_create(const char *id, uint32_t owner)
{
	return pool_open(id, owner, 0, NULL, 0);
}

/*
 * A file in tmp/ (its name in file) for a worker's channel to write the
 * message ID from offset 0, perhaps with an earlier message's bytes
 * after it: queue_spool_fit() before the commit.
 */
int
queue_spool_reuse(const char *id, uint32_t owner, char *file, size_t len)
{
	return pool_open(id, owner, 1, file, len);
}

/*
 * The spool fd as written by its worker: its offset (shared with the
 * worker's descriptor) says what was written; it must be size, the file
 * at least that long, and it is cut to size.  -1 with EINVAL when the
 * worker's write does not match, else -1 with errno as the calls set it.
 */
int
queue_spool_fit(int fd, uint64_t size)
{
	struct stat	 st;
	off_t		 pos;

	if ((pos = lseek(fd, 0, SEEK_CUR)) == -1 || fstat(fd, &st) == -1)
		return -1;
	if ((uint64_t)pos != size || (uint64_t)st.st_size < size) {
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)st.st_size > size && ftruncate(fd, (off_t)size) == -1)
		return -1;
	return 0;
}

/* tmp/FILE will not be committed: back to its owner's pool. */
void
queue_spool_discard(const char *file, uint32_t owner)
{
	pool_put(file, owner);
}
