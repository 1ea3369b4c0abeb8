/*
 * One envelope codec: a committed envelope as a session worker sends it
 * (IMSG_MSG_COMMIT) and as the relay decodes and checks it, and the
 * envelope of a deliver run (IMSG_DELIVER_RUN) as the relay sends it
 * and the parent decodes it.  One check of a HELO argument for all.
 */
#ifndef SMTPD_ENVELOPE_H
#define SMTPD_ENVELOPE_H

#include <netinet/in.h>
#include <stdint.h>

#include "addr.h"
#include "imsg.h"
#include "proto.h"

/* What helo_valid() found. */
#define HELO_OK		0
#define HELO_SYNTAX	-1	/* empty, too long, a blank, control or 8-bit */
#define HELO_UTF8	-2	/* bad UTF-8 or a bidirectional control */

/* A recipient of a decoded envelope, parsed once. */
struct env_rcpt {
	char		 path[ADDR_PATH_MAX + 1];	/* as sent, no <> */
	struct mailaddr	 addr;		/* unset for a bare postmaster */
	int		 postmaster;	/* the bare "postmaster" */
};

/* A committed envelope, checked. */
struct envelope {
	char		 peer_ip[INET6_ADDRSTRLEN];
	uint32_t	 peer_port;
	char		 helo[ENV_HELO_MAX + 1];
	char		 mail_from[ADDR_PATH_MAX + 1];
	struct mailaddr	 from;		/* parsed; from.null for <> */
	uint32_t	 nrcpt;
	struct env_rcpt	*rcpts;
	uint64_t	 size;
	uint32_t	 flags;
	char		 mail_opts[ENV_OPTS_MAX + 1];	/* see envelope.c */
	char		 rcpt_opts[ENV_OPTS_MAX + 1];
	char		 tls_proto[ENV_TLS_MAX + 1];	/* "" without TLS */
};

/* What envelope_encode() sends, by reference: no copy of the rcpts. */
struct envelope_ref {
	const char		*peer_ip;
	uint32_t		 peer_port;
	const char		*helo;
	const char		*mail_from;
	uint32_t		 nrcpt;
	const char		*(*rcpt)(const void *arg, uint32_t i);
	const void		*arg;		/* of rcpt() */
	uint64_t		 size;
	uint32_t		 flags;
	const char		*mail_opts;	/* NULL for "" */
	const char		*rcpt_opts;
	const char		*tls_proto;	/* NULL for "" */
};

/* A deliver run's envelope (SMTPD_* of the deliver program). */
struct deliver_env {
	char		 qid[32];
	char		 peer[64];		/* "address:port" */
	char		 helo[ENV_HELO_MAX + 1];
	char		 from[ADDR_PATH_MAX + 1];
	uint32_t	 nrcpt;
	char		*rcpts;			/* "a@b,c@d" */
};

int	helo_valid(const char *, int smtputf8);
void	envelope_encode(struct imsg_out *, const struct envelope_ref *);
int	envelope_decode(struct imsg *, struct envelope *, int smtputf8);
void	envelope_ref(const struct envelope *, struct envelope_ref *);
void	envelope_free(struct envelope *);
void	deliver_env_encode(struct imsg_out *, const char *qid,
	    const struct envelope_ref *);
int	deliver_env_decode(struct imsg *, struct deliver_env *);
void	deliver_env_free(struct deliver_env *);

#endif
