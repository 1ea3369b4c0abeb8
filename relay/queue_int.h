/*
 * What the files of the queue share: queue.c (the queue's files, the
 * envelope format, load) and queue_pool.c (the pool of free files and
 * the spool files made from it).  Nothing else includes this.
 */
#ifndef SMTPD_QUEUE_INT_H
#define SMTPD_QUEUE_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

struct queue_dirs {
	int	tmpfd;
	int	qfd;
	int	corruptfd;
};

extern struct queue_dirs	queue_dir;

void	pool_put(const char *name, uint32_t owner);
int	pool_get(uint32_t owner, char *name, size_t len);
int	pool_fit(int fd, off_t len);
void	pool_release(int dirfd, const char *name, uint32_t owner);

#endif
