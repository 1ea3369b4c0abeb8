/*
 * The relay process: owns the spool, hands spool descriptors to the
 * session workers, checks and commits what they send, and delivers.
 */
#ifndef SMTPD_RELAY_H
#define SMTPD_RELAY_H

#include <netinet/in.h>
#include <stdint.h>

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
};

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

/* A committed envelope, checked. */
struct envelope {
	char		 peer_ip[INET6_ADDRSTRLEN];
	uint32_t	 peer_port;
	char		 helo[ENV_HELO_MAX + 1];
	char		 mail_from[ADDR_PATH_MAX + 1];
	uint32_t	 nrcpt;
	char		 (*rcpts)[ADDR_PATH_MAX + 1];
	uint64_t	 size;
	uint32_t	 flags;
	char		 mail_opts[ENV_OPTS_MAX + 1];	/* see envelope.c */
	char		 rcpt_opts[ENV_OPTS_MAX + 1];
};

int	relay_main(void);
int	envelope_decode(struct imsg *, struct envelope *, int smtputf8);
void	envelope_free(struct envelope *);

#endif
