/*
 * The relay process: owns the spool, hands spool descriptors to the
 * session workers, checks and commits what they send, and delivers.
 */
#ifndef SMTPD_RELAY_H
#define SMTPD_RELAY_H

#include <netinet/in.h>
#include <stdint.h>

#include "envelope.h"
#include "imsg.h"
#include "proto.h"
#include "queue.h"

struct spool {
	struct spool	*next;
	uint32_t	 session;
	int		 fd;
	char		 id[QUEUE_ID_LEN + 1];	/* "" for a memfd */
};

/* A commit waiting for the next group sync of the queue. */
struct pending {
	struct pending	*next;
	uint32_t	 channel;
	uint32_t	 session;
	int		 fd;
	struct qmsg	*msg;
	char		 envname[QUEUE_ENVNAME_MAX];	/* written, in tmp/ */
};

/* commit.c: the group commit. */
typedef void	(*commit_reply_fn)(uint32_t channel, uint32_t session,
		    uint32_t type, const char *text);
void	commit_init(commit_reply_fn, void (*synced)(void));
void	commit_add(struct pending *);

struct channel_auth;

struct channel {
	struct channel	*next;
	uint32_t	 id;
	struct imsgbuf	 ib;
	struct spool	*spools;
	uint32_t	 nspools;
	struct channel_auth *auth;	/* sessions the parent saw authenticate */
	uint32_t	 nauth;
};

struct channel_auth {
	uint32_t	 session;
	char		*user;
};

#define CHANNEL_AUTH_MAX	4096	/* remembered, newest kept */

int	relay_main(void);

#endif
