/* relay/syncer.c: the queue's syncs, in a thread of their own. */
#ifndef SMTPD_SYNCER_H
#define SMTPD_SYNCER_H

#define SYNC_DIR	0
#define SYNC_FS		1
#define SYNC_FILE	2	/* fdatasync of one file */

typedef void	(*syncer_done_fn)(int err, void *arg);

void	syncer_start(void);
void	syncer_init(void);
int	syncer_busy(void);
void	syncer_run(int op, int fd, syncer_done_fn, void *arg);

#endif
