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
#include "routes.h"

struct spool {
	struct spool	*next;
	uint32_t	 session;
	uint64_t	 session_id;		/* as logged (MSG_OPEN) */
	int		 fd;
	uint64_t	 base;		/* debug: where the next message starts */
	char		 id[QUEUE_ID_LEN + 1];	/* "" for a memfd */
	char		 file[QUEUE_ID_LEN + 1];	/* its name in data/ */
	int		 file_new;		/* made for it, not reused */
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
void	commit_init(commit_reply_fn, void (*synced)(void),
	    void (*flush)(void));
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
/*
 * The relay's descriptors: a channel for each living worker, a spool
 * file for each of their sessions, the queue's and the upstreams'.  A
 * reload may enlarge the pool and max-sessions, and the old workers
 * drain beside the new ones, all while the relay runs on (and cannot
 * raise its bound again): so the largest bound, not one made of the
 * configuration at its start.  Out of descriptors, a channel cut off on
 * its way from the parent would end the relay.
 */
#define RELAY_MAXFILES		65536

int	relay_main(void);

/* relay/message.c */
void	relay_log_message(const char *qid, const struct spool *,
	    const struct envelope *, const char *user);
struct qmsg *relay_qmsg(const struct spool *, const struct envelope *,
	    const char *user, uint32_t ch_id);

/* A reload's settings, upstreams and routes (relay/reload.c). */
void	relay_reload_begin(void);
int	relay_reload_conf(struct imsg *, const struct smtpd_conf *);
int	relay_reload_route(struct imsg *);
uint32_t relay_reload_nups(void);
int	relay_auth_recv(struct imsg *, uint32_t);
const struct smtpd_conf *relay_conf_larger(const struct smtpd_conf *,
	    const struct smtpd_conf *);
void	relay_reload_end(struct smtpd_conf *, struct smtpd_conf *,
	    struct routes *);

#endif
