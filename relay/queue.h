/*
 * The durable queue: one message file and one envelope file per queued
 * message, in the relay's queue directory.  A message is queued when
 * its envelope file has been renamed into queue/ and the directory
 * synced; until then it does not exist for a restart.
 *
 *	tmp/QID		message being received
 *	tmp/QID.env	envelope being written
 *	queue/QID	committed message
 *	queue/QID.env	committed envelope (written last: it is the commit)
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
#define QUEUE_TEXT_MAX	256


enum rcpt_state {
	RCPT_PENDING = 'P',
	RCPT_DONE = 'D',
	RCPT_FAILED = 'F',
};

struct qrcpt {
	char		addr[ADDR_PATH_MAX + 1];
	char		state;
	int		code;		/* last reply, 0 if none */
	char		text[QUEUE_TEXT_MAX];
	int		bounced;	/* a DSN was made for it */
};

struct qmsg {
	struct qmsg	*next;		/* all queued messages */
	struct qmsg	*rnext;		/* ready list */
	char		 id[QUEUE_ID_LEN + 1];
	char		 peer_ip[INET6_ADDRSTRLEN];
	uint32_t	 peer_port;
	char		 helo[ENV_HELO_MAX + 1];
	char		 from[ADDR_PATH_MAX + 1];	/* "" for <> */
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
};

#define QMSG_WAITING	0	/* timer armed */
#define QMSG_READY	1	/* on the ready list */
#define QMSG_SENDING	2	/* on a connection */

int		 queue_open(const char *path);
int		 queue_new_id(char *);
int		 queue_spool_create(const char *id);
void		 queue_spool_discard(const char *id);
int		 queue_commit(struct qmsg *, int spoolfd, int sync_files);
int		 queue_sync(int whole_fs);
int		 queue_update(const struct qmsg *);
void		 queue_remove(const struct qmsg *);
int		 queue_msg_open(const struct qmsg *);
struct qmsg	*queue_load(unsigned int *count);
void		 qmsg_free(struct qmsg *);
int		 envfile_write(int fd, const struct qmsg *);
int		 envfile_parse(const char *, size_t, struct qmsg *);

#endif
