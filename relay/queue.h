/*
 * The durable queue, in the relay's queue directory.  A relayed
 * message from a worker is one file, data/FILE: the message, then its
 * envelope and a footer (queue format 4, queue_inline.c), queued once
 * that file is synced.  Every other message has a message file and an
 * envelope file, queued when the envelope has been renamed into queue/
 * and the directory synced; until then it does not exist for a
 * restart.
 *
 *	data/FILE	a worker's message file (with its envelope, format 4)
 *	tmp/QID		message being received
 *	tmp/QID.env	envelope being written
 *	tmp/OLD		a free file, truncated and reused (the pool, queue.c)
 *	queue/QID	committed message
 *	queue/QID.env	committed envelope (written last: it is the commit)
 *	queue/QID.new	envelope of a group commit, durable once its sync
 *			returned, renamed to QID.env then (queue_check.c)
 *	queue/corrupt/	files that could not be used, set aside
 *
 * The envelope's last line but one, "marks", holds a byte per recipient
 * that queue_mark() overwrites in place: no new block is needed, so a
 * full disk cannot lose the record that a recipient was delivered.
 */
#ifndef SMTPD_QUEUE_H
#define SMTPD_QUEUE_H

#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "event.h"
#include "proto.h"

#define QUEUE_ID_LEN	16

/* queue-min-free by default: 5 % of the file system, at most 100 MiB. */
#define QUEUE_MIN_FREE_DEFAULT	(100ULL * 1024 * 1024)
#define QUEUE_MIN_FREE_PCT	5
#define QUEUE_MIN_FREE_INODES	64

/* Free files kept in tmp/ for reuse; their owners (see queue.c). */
#define QUEUE_POOL_MAX		4096
#define QUEUE_OWNER_NONE	0		/* unknown: never reused */
#define QUEUE_OWNER_RELAY	UINT32_MAX	/* no worker had it open */
/* A reused spool file longer than this is emptied before it is handed on. */
#define QUEUE_REUSE_MAX		(64 * 1024)
#define QUEUE_ENVNAME_MAX	(QUEUE_ID_LEN + 8)
/* Descriptors of committed messages kept for their first delivery. */
#define QUEUE_KEEP_MAX		256


enum rcpt_state {
	RCPT_PENDING = 'P',
	RCPT_DONE = 'D',
	RCPT_FAILED = 'F',
};

/* Marks, rewritten in place (queue_mark()): see queue.c. */
#define MARK_PENDING	'P'
#define MARK_DONE	'D'
#define MARK_BOUNCED	'B'

struct qrcpt {
	char		addr[ADDR_PATH_MAX + 1];
	char		state;
	int		code;		/* last reply, 0 if none */
	char		text[REPLY_TEXT_MAX];
	int		bounced;	/* a DSN was made for it */
	int		counted;	/* its outcome is in the metrics */
};

struct qmsg {
	struct qmsg	*next;		/* all queued messages */
	struct qmsg	*prev;		/* (the scheduler's list only) */
	struct qmsg	*rnext;		/* ready list */
	struct qmsg	*rprev;
	int		 rclass;	/* its ready list (scheduler.c) */
	uint64_t	 rseq;		/* when it joined it */
	char		 id[QUEUE_ID_LEN + 1];
	char		 peer_ip[INET6_ADDRSTRLEN];
	uint32_t	 peer_port;
	char		 helo[ENV_HELO_MAX + 1];
	char		 from[ADDR_PATH_MAX + 1];	/* "" for <> */
	char		 auth_user[AUTH_FIELD_MAX + 1];	/* "": not authenticated */
	uint64_t	 size;
	uint32_t	 flags;
	int		 is_bounce;
	int64_t		 created;
	int64_t		 next_try;
	uint32_t	 attempts;
	uint32_t	 nrcpt;
	struct qrcpt	*rcpts;
	struct ev_timer	 timer;
	int		 state;		/* QMSG_* */
	int		 has_marks;	/* its envelope has a marks line */
	int		 quarantined;	/* its files are in queue/corrupt/ */
	int		 held;		/* smtpctl hold: not delivered */
	uint32_t	 owner;		/* the message file's (QUEUE_OWNER_*) */
	char		 file[QUEUE_ID_LEN + 1];	/* data/FILE, "": queue/ID */
	int		 file_new;	/* data/FILE was made for it */
	uint64_t	 body_check;	/* its message's hash (queue_check.c) */
	int		 has_check;	/* body_check is known */
	uint64_t	 settle_gen;	/* the queue sync its ID.env name needs */
	int		 inline_want;	/* commit its envelope into data/FILE */
	size_t		 inline_len;	/* it is there (format 4), this long */
	int		 env_in_queue;	/* queue/ID.env (or ID.new) holds it */
	int		 file_long;	/* data/FILE may run on past size */
	int		 spool_kept;	/* spool_fd: its file, open since its commit */
	int		 spool_fd;
	uint64_t	 routes_tried;	/* this round, by route index */
};

#define QMSG_WAITING	0	/* timer armed */
#define QMSG_READY	1	/* on the ready list */
#define QMSG_SENDING	2	/* on a connection */

int		 queue_open(const char *path);
int		 queue_new_id(char *);
int		 queue_spool_create(const char *id, uint32_t owner);
int		 queue_spool_reuse(const char *id, uint32_t owner, char *file,
		    size_t, int *created);
int		 queue_spool_fit(int fd, uint64_t size, int cut);
void		 queue_spool_discard(const char *file, uint32_t owner);
void		 queue_spool_discard_data(const char *file, uint32_t owner,
		    int created);
void		 queue_pool_drop(uint32_t owner);
int		 queue_commit(struct qmsg *, int spoolfd);
int		 queue_commit_write(struct qmsg *, int spoolfd, int sync_files,
		    char *envname, size_t);
int		 queue_commit_link(struct qmsg *, const char *envname);
int		 queue_commit_link_new(struct qmsg *, const char *envname);
int		 queue_commit_settle(struct qmsg *);
void		 queue_commit_drop(const struct qmsg *);
uint64_t	 queue_sync_begin(void);
void		 queue_sync_end(uint64_t gen);
int		 queue_sync(int whole_fs);
int		 queue_sync_call(int whole_fs);
int		 queue_update(struct qmsg *);
int		 queue_mark(const struct qmsg *);
int		 queue_space_low(uint64_t min_free, uint32_t pct,
		    uint64_t *avail, uint64_t *limit);
void		 queue_quarantine(struct qmsg *, const char *reason);
int		 queue_msg_check(struct qmsg *, char *why, size_t);
void		 queue_lost_mark(struct qmsg *, const char *why);
void		 queue_remove(const struct qmsg *);
void		 queue_msg_release(const struct qmsg *);
int		 queue_msg_open(const struct qmsg *);
void		 queue_msg_keep(struct qmsg *, int fd);
int		 queue_msg_take(struct qmsg *);
void		 queue_msg_unkeep(struct qmsg *);
struct qmsg	*queue_load(unsigned int *count, struct qmsg **lost);
void		 qmsg_free(struct qmsg *);
int		 envfile_write(int fd, const struct qmsg *);
int		 envfile_parse(const char *, size_t, struct qmsg *);

#endif
