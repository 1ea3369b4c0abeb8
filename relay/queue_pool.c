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
 * The free pool.  A delivered message's files are reused by the next
 * messages (overwritten, see pool_open()) instead of unlinked and
 * created again: the steady state allocates no inode (ext4's inode
 * allocator, scanning recently deleted inodes, was 60 % of the relay's
 * CPU).  A worker's message files live in data/ (queue format 3) and
 * stay there, free or committed: the envelope names its message file,
 * so neither a commit nor a removal renames it (a rename cost as much
 * as the rest of a message's file work).  The relay's own files
 * (envelopes, bounces, control submissions) go between tmp/ and queue/.
 * A file handed to a worker may still be open in that worker, so it is
 * only ever reused for the same channel's next message, never as an
 * envelope and never for another worker; QUEUE_OWNER_RELAY's files in
 * tmp/ any of the relay's own uses may take.  Files of no known owner
 * (QUEUE_OWNER_NONE: loaded at start, or whose channel is gone) are
 * unlinked.
 */
struct pool_file {
	char		 name[QUEUE_ID_LEN + 5];
	uint32_t	 owner;
	int		 data;	/* in data/, else in tmp/ */
	int		 unsynced;	/* a new name no sync has made durable */
	uint64_t	 gen;	/* reusable once this queue sync is done */
};

static struct {
	struct pool_file	 f[QUEUE_POOL_MAX];
	unsigned int		 n;
} pool;

/*
 * Put name (in data/ or tmp/) in the pool of owner, or unlink it when
 * there is none; it is not reused before queue sync gen is done.  A
 * file an envelope named, or that had a name in queue/, waits for the
 * sync that makes that name's end durable: overwritten before that, a
 * crash could bring the old name back over another message's bytes
 * (queue_check.c).
 */
static void
pool_put_in(int data, const char *name, uint32_t owner, uint64_t gen,
    int unsynced)
{
	if (owner == QUEUE_OWNER_NONE || pool.n == QUEUE_POOL_MAX) {
		unlinkat(data ? queue_dir.datafd : queue_dir.tmpfd, name, 0);
		return;
	}
	strlcpy(pool.f[pool.n].name, name, sizeof(pool.f[0].name));
	pool.f[pool.n].data = data;
	pool.f[pool.n].unsynced = unsynced;
	pool.f[pool.n].gen = gen;
	pool.f[pool.n++].owner = owner;
}

void
pool_put_after(const char *name, uint32_t owner, uint64_t gen)
{
	pool_put_in(0, name, owner, gen, 0);
}

/* A file that never had a name in queue/: reusable at once. */
void
pool_put(const char *name, uint32_t owner)
{
	pool_put_in(0, name, owner, 0, 0);
}

/*
 * data/name, which no envelope names any longer; unsynced: its name is
 * new, and no sync has covered it.
 */
void
pool_put_data(const char *name, uint32_t owner, uint64_t gen, int unsynced)
{
	pool_put_in(1, name, owner, gen, unsynced);
}

/*
 * The newest reusable file owner may use out of the pool, in data/ or
 * in tmp/ (there, its own first, then the relay's); whether its name
 * still waits for a sync in *unsynced, if that is not NULL.
 */
static int
pool_get_from(uint32_t owner, int data, char *name, size_t len,
    int *unsynced)
{
	unsigned int	 i, pick = pool.n;

	for (i = pool.n; i-- > 0 && pick == pool.n;)
		if (pool.f[i].owner == owner && pool.f[i].data == data &&
		    queue_gen_durable(pool.f[i].gen))
			pick = i;
	for (i = pool.n; !data && owner != QUEUE_OWNER_RELAY && i-- > 0 &&
	    pick == pool.n;)
		if (pool.f[i].owner == QUEUE_OWNER_RELAY && !pool.f[i].data &&
		    queue_gen_durable(pool.f[i].gen))
			pick = i;
	if (pick == pool.n)
		return -1;
	strlcpy(name, pool.f[pick].name, len);
	if (unsynced != NULL)
		*unsynced = pool.f[pick].unsynced;
	pool.f[pick] = pool.f[--pool.n];
	return 0;
}

int
pool_get(uint32_t owner, char *name, size_t len)
{
	return pool_get_from(owner, 0, name, len, NULL);
}

/* A worker's channel closed: its files may be open in it, never reuse. */
void
queue_pool_drop(uint32_t owner)
{
	unsigned int	 i;

	for (i = 0; i < pool.n;)
		if (pool.f[i].owner == owner) {
			unlinkat(pool.f[i].data ? queue_dir.datafd :
			    queue_dir.tmpfd, pool.f[i].name, 0);
			pool.f[i] = pool.f[--pool.n];
		} else
			i++;
}

/*
 * tmp/name from owner's pool (its own or the relay's), renamed and
 * emptied, or a new one; -1 with EEXIST if tmp/name exists.
 */
static int
pool_open_tmp(const char *name, uint32_t owner)
{
	char	 old[QUEUE_ID_LEN + 5];
	int	 fd;

	while (pool_get_from(owner, 0, old, sizeof(old), NULL) == 0) {
		if (strcmp(old, name) != 0 && renameat2(queue_dir.tmpfd, old,
		    queue_dir.tmpfd, name, RENAME_NOREPLACE) == -1) {
			if (errno == EEXIST) {
				pool_put(old, owner);
				return -1;
			}
			continue;	/* gone: a name left by a failure */
		}
		if ((fd = openat(queue_dir.tmpfd, name, O_RDWR | O_CLOEXEC |
		    O_TRUNC)) != -1)
			return fd;
	}
	return openat(queue_dir.tmpfd, name, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
}

/*
 * A file of owner's in data/ (its name in file), or a new data/ID
 * (*created set); -1 with EEXIST if that exists.  A small one keeps its
 * old bytes, to be overwritten: truncating and refilling a block (an
 * orphan record, a block freed and allocated again) was the costliest
 * call a message made, and owner had those bytes already.  Whoever
 * writes it cuts it to its size (queue_spool_fit()).
 */
static int
pool_open_data(const char *id, uint32_t owner, char *file, size_t len,
    int *created)
{
	struct stat	 st;
	int		 fd;

	*created = 0;
	/* A name no sync covered yet counts as new: the commit syncs it. */
	while (pool_get_from(owner, 1, file, len, created) == 0) {
		if ((fd = openat(queue_dir.datafd, file, O_RDWR |
		    O_CLOEXEC)) == -1)
			continue;
		if ((fstat(fd, &st) == -1 || st.st_size > QUEUE_REUSE_MAX) &&
		    ftruncate(fd, 0) == -1) {
			close(fd);
			continue;
		}
		return fd;
	}
	*created = 0;
	strlcpy(file, id, len);
	if ((fd = openat(queue_dir.datafd, id, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600)) != -1)
		*created = 1;
	return fd;
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
	return pool_open_tmp(id, owner);
}

/*
 * A file in data/ (its name in file, *created if it is new) for a
 * worker's channel to write the message ID from offset 0, perhaps with
 * an earlier message's bytes after it: queue_spool_fit() before the
 * commit.
 */
int
queue_spool_reuse(const char *id, uint32_t owner, char *file, size_t len,
    int *created)
{
	return pool_open_data(id, owner, file, len, created);
}

/*
 * The spool fd as written by its worker: its offset (shared with the
 * worker's descriptor) says what was written; it must be size, the file
 * at least that long, and with cut it is cut to size (else the envelope
 * is written after the message, queue_inline.c, and cuts it there).
 * -1 with EINVAL when the worker's write does not match, else -1 with
 * errno as the calls set it.
 */
int
queue_spool_fit(int fd, uint64_t size, int cut)
{
	struct stat	 st;
	off_t		 pos;

	if ((pos = lseek(fd, 0, SEEK_CUR)) == -1)
		return -1;
	if ((uint64_t)pos != size) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * Without cut, no fstat: a file the worker cut shorter since fails
	 * the read that hashes it for the commit.
	 */
	if (!cut)
		return 0;
	if (fstat(fd, &st) == -1)
		return -1;
	if ((uint64_t)st.st_size < size) {
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
	pool_put_in(0, file, owner, 0, 0);
}

/*
 * data/FILE (queue_spool_reuse()) will not be committed: the same; a
 * file created for it (created) keeps a name no sync has covered.
 */
void
queue_spool_discard_data(const char *file, uint32_t owner, int created)
{
	pool_put_in(1, file, owner, 0, created);
}
