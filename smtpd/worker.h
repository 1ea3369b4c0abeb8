/*
 * The session worker process: accepts on the inherited listeners and
 * runs many SMTP sessions at once on one event loop.
 */
#ifndef SMTPD_WORKER_H
#define SMTPD_WORKER_H

#include <stdint.h>

#include "event.h"
#include "imsg.h"
#include "proc.h"
#include "smtp.h"
#include "tls.h"

#define WORKER_MAX_LISTENERS	32
#define WORKER_HASH_SIZE	4096
#define WORKER_TLS_MAX		(1024 * 1024)
#define WORKER_PAUSE_MS		1000	/* full: let the others take them */
#define WORKER_DEFER_MS		2	/* slot > 0, empty: slot 0's chance */

/* A listener's proxy-from networks. */
struct listen_proxy {
	struct netaddr		 nets[LISTEN_PROXY_MAX];
	uint32_t		 n;
};

struct session {
	struct worker		*w;		/* the worker it belongs to */
	struct session		*hnext;		/* id hash chain */
	uint32_t		 id;
	int			 fd;
	uint32_t		 relay_gen;	/* relay that gave the spool fd */
	int			 spare_fd;	/* MSG_KEPT, or asked ahead */
	int			 open_ahead;	/* MSG_OPEN sent before DATA */
	int			 slot_asked;	/* the parent counts it */
	struct ev_timer		 timer;
	struct ev_timer		 tls_timer;	/* decrypted input waiting */
	struct ev_timer		 life_timer;	/* session-lifetime */
	struct ev_timer		 rate_timer;	/* the DATA rate floor */
	uint64_t		 data_start;	/* ms: 354 sent; 0: no DATA */
	SSL			*ssl;
	int			 tls_handshaking;
	int			 tls_hs_wants;	/* EV_* the handshake waits for */
	int			 tls_read_wants;	/* EV_WRITE: a read needs it */
	int			 tls_write_wants;
	int			 eof;		/* the client sent all it will */
	int			 timed_out;	/* the 421 went out, or tried */
	int			 proxy_wait;	/* for the PROXY header */
	uint8_t			*proxy_buf;	/* what came of it so far */
	size_t			 proxy_len;
	struct sockaddr_storage	 real;		/* the balancer, with PROXY */
	struct smtp_session	 smtp;
};

struct worker {
	struct smtpd_conf	 conf;
	struct policy		 policy;
	struct imsgbuf		 parent;
	struct proc_chan	 parent_chan;
	struct imsgbuf		*relay;		/* NULL while there is none */
	uint32_t		 relay_gen;
	int			 listeners[WORKER_MAX_LISTENERS];
	uint32_t		 listen_flags[WORKER_MAX_LISTENERS];
	struct listen_proxy	 listen_proxy[WORKER_MAX_LISTENERS];
	unsigned int		 nlisteners;
	SSL_CTX			*tls_ctx;	/* NULL: no TLS configured */
	char			*tls_cert;	/* PEM, until the context is made */
	size_t			 tls_certlen;
	char			*tls_key;
	size_t			 tls_keylen;
	struct session		*sessions[WORKER_HASH_SIZE];
	uint32_t		 nsessions;
	uint32_t		 next_id;
	uint32_t		 idtag;		/* from the parent: see session.c */
	uint32_t		 slot;		/* in the pool: 0 takes first */
	uint64_t		 id_last;	/* the time of the last id, us */
	uint32_t		 reported_load;
	int			 stopping;
	int			 retiring;	/* replaced by a reload */
	int			 paused;	/* full: not listening */
	int			 full_for_long;	/* still full after a pause */
	int			 deferring;	/* empty: slot 0 may take them */
	int			 defer_over;	/* take what waited */
	struct ev_timer		 pause_timer;
	struct ev_timer		 defer_timer;
	struct ev_timer		 load_timer;
	struct ev_timer		 stop_timer;
	struct ev_timer		 retire_timer;
};

int	worker_main(void);
void	session_accept(struct worker *, int, const struct sockaddr_storage *,
	    uint32_t, const struct listen_proxy *);
void	session_slot_answer(struct session *, int);
void	session_auth_result(struct session *, int);
void	worker_parent_send(struct worker *, struct imsg_out *);
void	worker_stat(struct worker *, uint32_t);
void	session_update(struct session *);
void	session_close(struct session *, const char *);
struct session *session_find(struct worker *, uint32_t);
uint64_t session_new_id(struct worker *);
void	worker_relay_send(struct worker *, struct imsg_out *);
void	worker_session_gone(struct worker *);
void	worker_refuse(struct worker *, int, const char *, const char *);
int	worker_is_loopback(const struct sockaddr_storage *);

#endif
